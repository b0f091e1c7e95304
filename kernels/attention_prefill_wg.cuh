// Internal to kernels/attention_prefill*.cu: the warpgroup-MMA (wgmma, sm_90a) prefill kernel
// (kernels/attention_prefill_wg.cu), which attention_prefill dispatches to.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::detail {

// True if this build holds sm_90a code (CMAKE_CUDA_ARCHITECTURES has 90a), the current device is
// compute capability 9.0 and the kernel has an instantiation for head_dim hd.
bool prefill_wg_supported(int hd);

// Key splits (CTAs per row tile, a cluster) prefill_wg launches for this shape here:
// attn::prefill_splits on this device's resident CTAs, at most 2.
int prefill_wg_splits(int T, int n_head, int hd, int window, bool split);
// Whether prefill_wg runs this shape persistent here (unsplit, more CTAs than resident slots).
bool prefill_wg_persistent(int T, int n_head, int hd, int window, bool split);

// attention_prefill's arguments after its validation; scale_log2 = scale * log2(e); split:
// PrefillPrecision::Split (else Half).
void prefill_wg(const float* q, int64_t q_stride, int T, const int32_t* pos, const uint16_t* kc,
                const uint16_t* vc, int cap, int n_head, int n_head_kv, int hd, float scale_log2, int window,
                bool split, float* out, cudaStream_t s);

}  // namespace kiln::detail
