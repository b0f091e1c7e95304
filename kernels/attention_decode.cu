// Decode attention: split-K flash-decoding, CUDA cores, bit-exact with
// ref::attention_decode_split (order documented in reference/attention.h).
//
// attn_decode_split_kernel: grid (n_splits, n_head_kv), kDecodeWarps warps. The CTA serves all G
// query heads of its kv head (each K/V byte read once per group). Warp w owns tiles w, w+W, ...
// of 32 positions. Scores: lanes split head_dim (lane l holds E = hd/32 consecutive dims),
// butterfly-reduced; lane j keeps score j, so each exponential is computed once. P.V: lanes split
// head_dim again, p_j broadcast by shuffle. Warps merge through shared memory; partial (m, l, O)
// per (head, split) go to the workspace; attn_decode_merge_kernel combines the splits.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/math.h"

namespace kiln {
namespace {

constexpr int W = attn::kDecodeWarps;
constexpr int TILE = attn::kDecodeTile;
static_assert(TILE == 32, "one position per lane");

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// E consecutive FP16 values -> float (exact).
template <int E>
struct Row {
  static constexpr int N4 = E >= 8 ? E / 8 : 0;  // uint4 loads
  static constexpr int N2 = E >= 8 ? 0 : E / 4;  // uint2 loads
  uint4 a[N4 > 0 ? N4 : 1];
  uint2 b[N2 > 0 ? N2 : 1];
  __device__ __forceinline__ void load(const uint16_t* p) {
    if constexpr (N4 > 0) {
#pragma unroll
      for (int i = 0; i < N4; ++i) a[i] = __ldg(reinterpret_cast<const uint4*>(p) + i);
    } else {
#pragma unroll
      for (int i = 0; i < N2; ++i) b[i] = __ldg(reinterpret_cast<const uint2*>(p) + i);
    }
  }
  __device__ __forceinline__ void to_float(float (&f)[E]) const {
    const uint32_t* w;
    if constexpr (N4 > 0)
      w = reinterpret_cast<const uint32_t*>(a);
    else
      w = reinterpret_cast<const uint32_t*>(b);
#pragma unroll
    for (int i = 0; i < E / 2; ++i) {
      __half2 h = *reinterpret_cast<const __half2*>(&w[i]);
      const float2 x = __half22float2(h);
      f[2 * i] = x.x;
      f[2 * i + 1] = x.y;
    }
  }
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = v + __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <int HD, int G>
__global__ void __launch_bounds__(W * 32)
    attn_decode_split_kernel(const float* __restrict__ q, int64_t q_stride,
                             const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc,
                             int cap, int n_head_kv, float scale, int window,
                             const int32_t* __restrict__ pos, int S, float* __restrict__ part_o,
                             float2* __restrict__ part_ml) {
  constexpr int E = HD / 32;
  constexpr int U = E >= 16 ? 4 : 8;  // rows in flight per lane
  __shared__ float sm_acc[W][G][HD];
  __shared__ float sm_m[W][G], sm_l[W][G];

  asm volatile("griddepcontrol.wait;" ::: "memory");  // q / pos / cache come from earlier kernels
  const int s = blockIdx.x, kh = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int qp = *pos;

  float qr[G][E], acc[G][E], m[G], l[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const float* qh = q + int64_t(kh * G + g) * HD + lane * E;
#pragma unroll
    for (int i = 0; i < E; i += 4) {
      const float4 x = *reinterpret_cast<const float4*>(qh + i);
      qr[g][i] = x.x, qr[g][i + 1] = x.y, qr[g][i + 2] = x.z, qr[g][i + 3] = x.w;
    }
#pragma unroll
    for (int i = 0; i < E; ++i) acc[g][i] = 0.f;
    m[g] = neg_inf();
    l[g] = 0.f;
  }

  int b = 0, e = 0;
  if (qp >= 0) {
    const int lo = window > 0 ? max(0, qp - window + 1) : 0;
    const int n = qp - lo + 1;
    const int chunk = (n + S - 1) / S;
    b = min(lo + s * chunk, qp + 1);  // s * chunk < n + S <= 2^31 for int32 positions
    e = min(b + chunk, qp + 1);
  }
  const int64_t rs = int64_t(n_head_kv) * HD;
  const uint16_t* kb = kc + int64_t(kh) * HD + lane * E;
  const uint16_t* vb = vc + int64_t(kh) * HD + lane * E;

  for (int t0 = b + warp * TILE; t0 < e; t0 += W * TILE) {
    const int nvalid = min(TILE, e - t0);
    const int row0 = t0 % cap;
    float my_s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) my_s[g] = neg_inf();
    for (int jj = 0; jj < nvalid; jj += U) {
      Row<E> r[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = jj + u;
        if (j < nvalid) {
          int row = row0 + j;
          if (row >= cap) row -= cap;
          if (row >= cap) row %= cap;
          r[u].load(kb + int64_t(row) * rs);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = jj + u;
        if (j < nvalid) {
          float kf[E];
          r[u].to_float(kf);
#pragma unroll
          for (int g = 0; g < G; ++g) {
            float part = 0.f;
#pragma unroll
            for (int i = 0; i < E; ++i) part = fmaf(qr[g][i], kf[i], part);
            const float sc = warp_sum(part) * scale;
            if (lane == j) my_s[g] = sc;
          }
        }
      }
    }
    float my_p[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float mt = warp_max(my_s[g]);
      const float mn = fmaxf(m[g], mt);
      const float c = kexp(m[g] - mn);
      const float p = lane < nvalid ? kexp(my_s[g] - mn) : 0.f;
      l[g] = l[g] * c + warp_sum(p);
      m[g] = mn;
      my_p[g] = p;
#pragma unroll
      for (int i = 0; i < E; ++i) acc[g][i] = acc[g][i] * c;
    }
    for (int jj = 0; jj < nvalid; jj += U) {
      Row<E> r[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = jj + u;
        if (j < nvalid) {
          int row = row0 + j;
          if (row >= cap) row -= cap;
          if (row >= cap) row %= cap;
          r[u].load(vb + int64_t(row) * rs);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = jj + u;
        if (j < nvalid) {
          float vf[E];
          r[u].to_float(vf);
#pragma unroll
          for (int g = 0; g < G; ++g) {
            const float pj = __shfl_sync(0xffffffffu, my_p[g], j);
#pragma unroll
            for (int i = 0; i < E; ++i) acc[g][i] = fmaf(pj, vf[i], acc[g][i]);
          }
        }
      }
    }
  }

  // Let the merge kernel's CTAs start launching (they wait for this grid's completion).
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");

#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int i = 0; i < E; ++i) sm_acc[warp][g][lane * E + i] = acc[g][i];
    if (lane == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += W * 32) {
    const int g = idx / HD, d = idx % HD;
    float M = neg_inf();
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, sm_m[w][g]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float mw = sm_m[w][g];
      const float f = mw == neg_inf() ? 0.f : kexp(mw - M);
      L = L + sm_l[w][g] * f;
      O = O + sm_acc[w][g][d] * f;
    }
    const int h = kh * G + g;
    part_o[(int64_t(h) * S + s) * HD + d] = O;
    if (d == 0) part_ml[int64_t(h) * S + s] = make_float2(M, L);
  }
}

// One CTA per query head: out[h][d] = (sum_s O_s[d] f_s) / (sum_s l_s f_s), s in order.
__global__ void __launch_bounds__(256)
    attn_decode_merge_kernel(const float* __restrict__ part_o, const float2* __restrict__ part_ml,
                             int S, int hd, float* __restrict__ out) {
  extern __shared__ float sm[];  // f[S], l[S]
  __shared__ float red[8];
  asm volatile("griddepcontrol.wait;" ::: "memory");
  const int h = blockIdx.x;
  const float2* ml = part_ml + int64_t(h) * S;
  float M = neg_inf();
  for (int s = threadIdx.x; s < S; s += blockDim.x) M = fmaxf(M, ml[s].x);
  M = warp_max(M);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = M;
  __syncthreads();
  M = red[0];
  for (int w = 1; w < int(blockDim.x >> 5); ++w) M = fmaxf(M, red[w]);
  float* f = sm;
  float* lv = sm + S;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const float2 x = ml[s];
    f[s] = x.x == neg_inf() ? 0.f : kexp(x.x - M);
    lv[s] = x.y;
  }
  __syncthreads();
  float L = 0.f;
  for (int s = 0; s < S; ++s) L = L + lv[s] * f[s];
  const float* po = part_o + int64_t(h) * S * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float O = 0.f;
    int s = 0;
    for (; s + 4 <= S; s += 4) {
      const float o0 = po[int64_t(s) * hd + d], o1 = po[int64_t(s + 1) * hd + d];
      const float o2 = po[int64_t(s + 2) * hd + d], o3 = po[int64_t(s + 3) * hd + d];
      O = O + o0 * f[s];
      O = O + o1 * f[s + 1];
      O = O + o2 * f[s + 2];
      O = O + o3 * f[s + 3];
    }
    for (; s < S; ++s) O = O + po[int64_t(s) * hd + d] * f[s];
    out[int64_t(h) * hd + d] = O / L;
  }
}

template <class K, class... Args>
void launch_pdl(K kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

template <int HD, int G>
void launch_split(dim3 grid, cudaStream_t st, const float* q, int64_t q_stride, const uint16_t* kc,
                  const uint16_t* vc, int cap, int n_head_kv, float scale, int window,
                  const int32_t* pos, int S, float* po, float2* pml) {
  launch_pdl(attn_decode_split_kernel<HD, G>, grid, dim3(W * 32), 0, st, q, q_stride, kc, vc, cap,
             n_head_kv, scale, window, pos, S, po, pml);
}

template <int HD>
void dispatch_group(int G, dim3 grid, cudaStream_t st, const float* q, int64_t q_stride,
                    const uint16_t* kc, const uint16_t* vc, int cap, int n_head_kv, float scale,
                    int window, const int32_t* pos, int S, float* po, float2* pml) {
  switch (G) {
    case 1: return launch_split<HD, 1>(grid, st, q, q_stride, kc, vc, cap, n_head_kv, scale, window, pos, S, po, pml);
    case 2: return launch_split<HD, 2>(grid, st, q, q_stride, kc, vc, cap, n_head_kv, scale, window, pos, S, po, pml);
    case 4: return launch_split<HD, 4>(grid, st, q, q_stride, kc, vc, cap, n_head_kv, scale, window, pos, S, po, pml);
    default:
      if constexpr (HD * 8 <= attn::kDecodeMaxGroupDims)
        if (G == 8) return launch_split<HD, 8>(grid, st, q, q_stride, kc, vc, cap, n_head_kv, scale, window, pos, S, po, pml);
      fail("attention_decode: GQA group ", G, " with head_dim ", HD, " not supported (group in {1,2,4",
           HD * 8 <= attn::kDecodeMaxGroupDims ? ",8" : "", "})");
  }
}

}  // namespace

size_t attention_decode_workspace_bytes(int n_head, int hd, int n_splits) {
  // part_ml (float2 per head x split) first, then part_o (256-byte aligned)
  const size_t ml = (size_t(n_head) * n_splits * sizeof(float2) + 255) / 256 * 256;
  return ml + size_t(n_head) * n_splits * hd * sizeof(float);
}

int attention_decode_splits(int n_head_kv, int64_t max_ctx, int sm_count) {
  // about 4 CTAs per SM at long contexts; no more splits than tiles of one warp each
  const int64_t want = (int64_t(4) * sm_count + n_head_kv - 1) / n_head_kv;
  const int64_t tiles = (max_ctx + TILE - 1) / TILE;
  return int(std::max<int64_t>(1, std::min<int64_t>(std::min(want, tiles), 1024)));
}

void attention_decode(const float* q, int64_t q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, int64_t cap, int n_head, int n_head_kv, int hd,
                      float scale, int window, const int32_t* pos, int n_splits, void* workspace,
                      size_t workspace_bytes, float* out, cudaStream_t s) {
  KILN_REQUIRE(hd == 128 || hd == 256 || hd == 512, "attention_decode: head_dim ", hd,
               " not in {128, 256, 512}");
  KILN_REQUIRE(n_head_kv > 0 && n_head > 0 && n_head % n_head_kv == 0, "attention_decode: n_head ",
               n_head, " not a multiple of n_head_kv ", n_head_kv);
  KILN_REQUIRE(cap > 0 && cap <= INT32_MAX && window >= 0, "attention_decode: cap ", cap,
               " window ", window);
  KILN_REQUIRE(n_splits >= 1 && n_splits <= 65535, "attention_decode: n_splits ", n_splits);
  KILN_REQUIRE(workspace_bytes >= attention_decode_workspace_bytes(n_head, hd, n_splits),
               "attention_decode: workspace of ", workspace_bytes, " bytes, need ",
               attention_decode_workspace_bytes(n_head, hd, n_splits));
  KILN_REQUIRE(q_stride == 0, "attention_decode: one token: q_stride must be 0");
  KILN_REQUIRE(((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k_cache) |
                 reinterpret_cast<uintptr_t>(v_cache) | reinterpret_cast<uintptr_t>(workspace)) & 15) == 0,
               "attention_decode: q, caches and workspace need 16-byte alignment");
  const int G = n_head / n_head_kv;
  auto* pml = static_cast<float2*>(workspace);
  auto* po = reinterpret_cast<float*>(static_cast<char*>(workspace) +
                                      (size_t(n_head) * n_splits * sizeof(float2) + 255) / 256 * 256);
  const dim3 grid{unsigned(n_splits), unsigned(n_head_kv)};
  const int c = int(cap);
  switch (hd) {
    case 128: dispatch_group<128>(G, grid, s, q, 0, k_cache, v_cache, c, n_head_kv, scale, window, pos, n_splits, po, pml); break;
    case 256: dispatch_group<256>(G, grid, s, q, 0, k_cache, v_cache, c, n_head_kv, scale, window, pos, n_splits, po, pml); break;
    default: dispatch_group<512>(G, grid, s, q, 0, k_cache, v_cache, c, n_head_kv, scale, window, pos, n_splits, po, pml); break;
  }
  const size_t smem = size_t(2) * n_splits * sizeof(float);
  if (smem > 48 * 1024) {
    KILN_CUDA_CHECK(cudaFuncSetAttribute(attn_decode_merge_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }
  launch_pdl(attn_decode_merge_kernel, dim3(unsigned(n_head)), dim3(std::min(256, hd)), smem, s,
             static_cast<const float*>(po), static_cast<const float2*>(pml), n_splits, hd, out);
}

}  // namespace kiln
