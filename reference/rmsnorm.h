// Reference for kernels/rmsnorm.cu (the RMSNorm family) and the reduction order every kiln norm
// shares. T=float follows the kernels bit for bit; T=double is the precision oracle.
//
// Canonical sum of squares (sum_sq_ordered, `warps` = W, L = 32*W lanes):
//   1. Elements are grouped in chunks of 4 consecutive elements (chunk c = elements 4c..4c+3,
//      the last chunk may be short). Lane j (0 <= j < L) owns chunks j, j+L, j+2L, ... and keeps
//      one accumulator: acc = fma(x_i, x_i, acc) over its chunks in increasing order, elements
//      within a chunk in increasing order, starting from +0.
//   2. Within each warp (lanes 32w..32w+31): halving tree, p[l] = p[l] + p[l+h] for h = 16,8,4,2,1
//      (what a __shfl_xor butterfly computes; float addition is commutative, so every lane ends
//      with the same bits).
//   3. Across warps: the W warp sums combined by the same halving tree (h = W/2 .. 1).
// Then rinv = 1 / sqrt(ss / n + eps) (krsqrt) and y_i = (x_i * rinv) * w_i (w absent: x_i * rinv).
// Users: rmsnorm family and embed (W = 8), head_norm_dual and ple_proj_norm (W = 1).
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln::ref {

constexpr int kRmsnormWarps = 8;   // rmsnorm family + embed's fused norm: 256 threads per row
constexpr int kSliceNormWarps = 1; // head_norm_dual, ple_proj_norm: one warp per head / slice

// The canonical sum of squares above, over x[0..n).
template <class T>
T sum_sq_ordered(const T* x, int64_t n, int warps);
// Steps 2-3 alone: the canonical sum of 32 * warps lane partials p[0..32*warps) (p is clobbered).
// Also the cross-lane order of persistent_chain's dot products.
template <class T>
T lanes_sum_ordered(T* p, int warps);

// 1 / sqrt(ss / n + eps) in T (float: kiln::krsqrt, bit-identical to the device).
template <class T>
T rms_inv(T ss, int64_t n, float eps);

// out[r*n + i] = x[r*n + i] * (1 / sqrt(mean_i(x^2) + eps)) * (w ? w[i] : 1)   (W = 8 order)
template <class T>
void rmsnorm(const T* x, const float* w, int64_t rows, int64_t n, float eps, T* out);

// The fused family, per row (all optional pieces null = absent); mirrors kiln::RmsnormOp:
//   y' = norm_y ? rmsnorm(y) * (w_y ? w_y : 1) : y
//   x_new = y ? (x + y') * scale : x * scale  [* 1 is exact: the plain norm sees x as is]
//   x := x_new                                when y != null or scale != 1
//   out   = rmsnorm(x_new) * (w ? w : 1)      (if out)
//   out_q = Q8_1(rmsnorm(x_new) * w)          (if out_q; n % 32 == 0)
//   x_q   = Q8_1(x_new)                       (if x_q; n % 32 == 0)
// Q8_1 bytes follow quantize_block_q8_1 on the float values (T=double: rounded to float first).
template <class T>
void rmsnorm_fused(T* x, const T* y, bool norm_y, const float* w_y, float scale, const float* w,
                   int64_t rows, int64_t n, float eps, T* out, BlockQ8_1* out_q, BlockQ8_1* x_q);

}  // namespace kiln::ref
