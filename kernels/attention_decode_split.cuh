// Internal to kernels/attention_decode*.cu: a decode split kernel instantiation, resolved from
// (head_dim, GQA group, path) on the host. Every split kernel has the same signature and writes
// the same partials (per (head, split): O unnormalized [hd] and (m, l) in the natural-log
// domain), which attn_decode_merge_kernel combines.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common/blocks.h"

namespace kiln::detail {

// The one place that maps a runtime (head_dim, GQA group) to compile-time instantiations: calls
// f(std::integral_constant<int, HD>{}, std::integral_constant<int, G>{}) for HD in {64, 128, 256,
// 512} and G in {1, 2, 4, 8}, and returns R{} (the "unsupported" value) for anything else.
template <class R, class F>
R dispatch_hd_group(int hd, int G, F&& f) {
  auto by_group = [&](auto h) -> R {
    switch (G) {
      case 1: return f(h, std::integral_constant<int, 1>{});
      case 2: return f(h, std::integral_constant<int, 2>{});
      case 4: return f(h, std::integral_constant<int, 4>{});
      case 8: return f(h, std::integral_constant<int, 8>{});
      default: return R{};
    }
  };
  switch (hd) {
    case 64: return by_group(std::integral_constant<int, 64>{});
    case 128: return by_group(std::integral_constant<int, 128>{});
    case 256: return by_group(std::integral_constant<int, 256>{});
    case 512: return by_group(std::integral_constant<int, 512>{});
    default: return R{};
  }
}

struct DecodeSplitKernel {
  const void* fn = nullptr;
  int smem = 0;
  void (*launch)(dim3 grid, cudaStream_t st, const float* q, const uint16_t* kc, const uint16_t* vc, int cap,
                 int n_head_kv, float scale, int window, const int32_t* pos, int S, int settled, float* part_o,
                 float2* part_ml) = nullptr;
};

// The tensor-core split kernel (kernels/attention_decode_tc.cu); fn == nullptr if (hd, G) is
// not supported.
DecodeSplitKernel decode_split_tc(int hd, int G);

// The same kernel with the merge fused (attention.cuh, DecodeMerge): the grid's n_splits <=
// attn::kDecodeClusterMax CTAs of a kv head form one thread-block cluster and merge their
// partials through distributed shared memory, writing out (and out_q) themselves.
using DecodeClusterLaunch = void (*)(dim3 grid, cudaStream_t st, const float* q, const uint16_t* kc,
                                     const uint16_t* vc, int cap, int n_head_kv, float scale, int window,
                                     const int32_t* pos, int S, int settled, float* out, void* out_q,
                                     Q8Layout out_q_layout);
DecodeClusterLaunch decode_cluster_tc(int hd, int G);

#ifdef __CUDACC__
// Device helpers of both split kernels.
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
// Cache row of position p >= 0 in a cache of cap rows (a ring when positions pass cap): one
// subtraction covers p < 2 cap, the modulo any larger p.
__device__ __forceinline__ int ring_row(int p, int cap) {
  if (p >= cap) p -= cap;
  if (p >= cap) p %= cap;
  return p;
}
#endif

}  // namespace kiln::detail
