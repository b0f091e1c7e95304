// Reference for kernels/gemm_n.cuh: y[n*M + m] = sum_k W[m][k] * x[n][k] for n < N.
// W: M rows of K in GGUF block layout of type wt (row m at byte m * row_bytes(wt, K)).
//
// Two modes:
//  - gemm_n_q8_1 (mirrors the GPU integer path): quantized weights (Q8_0, Q4_K, Q6_K) times
//    activations in Q8_1 blocks, column n at x + n*(K/32). Integer dot products per 32-element
//    unit, then float combination.
//      T=float  follows the kernel's combination order bit for bit (kernels/gemm_n_plan.h);
//      T=double the same per-unit products (exact integers, the f16 scales, the Q8_1 s field for
//               Q4_K's min term) combined in double: the Q8_1-mode value without float rounding.
//    Float weight types are rejected here: the GPU float path takes float activations (gemm_n_f).
//  - gemm_n_f (exact mode): float activations x[n*K + k], weights decoded with decode_row.
//      F32/F16/BF16 weights, T=float: follows the GPU float kernel bit for bit (fmaf chains per
//        8-element unit, kernels/gemm_n_plan.h).
//      Quantized weights, T=float: sequential float sum of w*x (no GPU counterpart).
//      T=double: sequential double sum of double(w) * double(x) — the precision oracle.
//
// Error of the Q8_1 path against the exact one (stated for kernels/gemm_n.cuh, tested on the CPU
// in tests/gemm_n_test.cpp). Per activation block b (32 values, amax_b = max|x_i|), the Q8_1 rule
// gives d_b = amax_b/127, q_i = round(x_i / d_b), stored D_b = f16(d_b). With xhat_i = D_b q_i:
//     |xhat_i - x_i| <= e_b := d_b (0.5 + 2^-15) + 127 * max(2^-11 d_b, 2^-25)
// (half a quantization step, the float rounding of x_i * (1/d_b), and the f16 rounding of d_b).
// Q8_0 and Q6_K: the integer path computes sum_i w_i xhat_i exactly per unit, so
//     |y_q8_1 - y_exact| <= sum_b e_b * sum_{i in b} |w_i|  + float rounding (below).
// Q4_K (w_i = A q_i - B, A = d*sc, B = dmin*m) takes sum_i x_i from s_b = f16(d_b * sum q_i), so
// per unit the bound gains B * |sum_i xhat_i - s_b|:
//     e_b * sum_i |w_i|  +  B * (max(2^-11 d_b, 2^-25) |sum q_i| + 2^-11 d_b |sum q_i| + 2^-25).
// Float rounding of the T=float combination: at most (units + 40) * 2^-23 * sum_u |c_u| where c_u
// is the unit's contribution (each term passes through <= 4 roundings and log2 of the tree).
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"

namespace kiln::ref {

template <class T>
void gemm_n_q8_1(DType wt, const void* w, int64_t M, int64_t K, const BlockQ8_1* x, int64_t N, T* y);

template <class T>
void gemm_n_f(DType wt, const void* w, int64_t M, int64_t K, const float* x, int64_t N, T* y);

}  // namespace kiln::ref
