// gemm_n numerics plan, shared bit for bit by the kernels (kernels/gemm_n*.cu) and the float
// reference (reference/gemm_n.cpp). CUDA-free on purpose: the reference includes it.
//
// Every output y[n][m] = sum_k W[m][k] x[n][k] is computed as follows (one row m, one column n):
//
//  1. The row is cut into UNITS, one lane's share of a chunk. Quantized weights: a unit is one
//     32-element SLICE (the span of one Q8_1 activation block) for Q8_0, and two slices for the
//     K-quants -- the two whose quants share bytes, so one lane loads them once:
//       Q4_K: slices 2j and 2j+1 of a super-block (low and high nibbles of the same 32 qs bytes);
//       Q6_K: slices q and q+2 of a 128-element half (low and high nibbles of the same 32 ql
//             bytes, bit pairs of the same 32 qh bytes) -- elements 32q.. and 32q+64.. of the half.
//     slice_of() gives the order. Float weights (F32/F16/BF16): a unit is 8 elements (the last one
//     may be partial). Units are grouped in CHUNKS of 32 consecutive units.
//  2. S = gemm_n_split(type, M, K) warps share a row (split-K; a function of the matrix shape
//     only, never of N or of the device, so N columns equal N matvecs bit for bit). Unit u
//     belongs to chunk c = u / 32, lane l = u % 32, warp w = c % S: "virtual thread" (w, l).
//  3. Each virtual thread keeps one float accumulator per (row, column), starting at +0.f, and
//     visits its units in increasing u, and the slices of a unit in slice_of order, adding one
//     term per slice:
//       Q8_0: acc += (d_w * d_x) * float(isum)               isum = sum q_w * q_x (exact int)
//       Q4_K: acc += ((d*sc) * d_x) * float(isum) - (dmin*m) * s_x
//             (sc, m: the sub-block's 6-bit scale/min; s_x: the Q8_1 block's f16 sum field)
//       Q6_K: acc += (d * d_x) * float(sc_a * isum_a + sc_b * isum_b)   (isum_a/b: sums of
//             (q_w - 32) * q_x over the slice's two 16-element halves; the int combination is exact)
//       float: acc = fmaf(w_k, x_k, acc) for k of the unit in increasing order
//  4. Lanes of a warp combine by a butterfly: for o = 16, 8, 4, 2, 1: a[l] = a[l] + a[l ^ o]
//     (float + is commutative, so every lane holds the same value); warps combine in order:
//     t = r_0; t = t + r_1; ... t = t + r_{S-1}.
//  5. Epilogue: store y = t, or add y = y_old + t.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.h"
#include "kernels/common/hd.h"

namespace kiln::gemm_n_plan {

constexpr int kLanes = 32;         // units per chunk (one per lane)
constexpr int kSlice = 32;         // elements per slice, quantized weights (= QK8_1)
constexpr int kFloatUnit = 8;      // elements per unit, float weights
constexpr int kWarpsPerCta = 4;    // integer and float kernels: 128 threads
constexpr int kMaxSplit = 4;

KILN_HD bool is_quant(DType t) { return t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K; }
KILN_HD bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Slices per unit (quantized weights), units per 256-element super-block (K-quants).
KILN_HD int slices_per_unit(DType t) { return t == DType::Q8_0 ? 1 : 2; }
// Slice (index of its 32 elements in the row, = its Q8_1 block) of slice o of unit u.
// I: the index type (the kernel's is uint32_t: u / 4 is a shift there, not a 64-bit division).
template <class I>
KILN_HD I slice_of(DType t, I u, int o) {
  if (t == DType::Q8_0) return u;
  const I b = u / 4;  // super-block
  const int j = int(u % 4);
  if (t == DType::Q4_K) return 8 * b + I(2 * j + o);
  return 8 * b + I(4 * (j >> 1) + (j & 1) + 2 * o);  // Q6_K: half j >> 1, quarters (j & 1) and (j & 1) + 2
}

// Units per row.
KILN_HD int64_t units_per_row(DType t, int64_t K) {
  return is_quant(t) ? K / kSlice / slices_per_unit(t) : (K + kFloatUnit - 1) / kFloatUnit;
}
KILN_HD int64_t chunks_per_row(DType t, int64_t K) { return (units_per_row(t, K) + kLanes - 1) / kLanes; }

// Split-K factor S (1, 2 or 4): more warps per row when the matrix has few rows, so that small
// matrices still put enough bytes in flight on every SM. Depends on the shape only.
KILN_HD int gemm_n_split(DType t, int64_t M, int64_t K) {
  int s = M >= 6144 ? 1 : (M >= 1536 ? 2 : 4);
  const int64_t chunks = chunks_per_row(t, K);
  while (s > 1 && s > chunks) s /= 2;
  return s;
}

// Per-unit float contributions (step 3), shared by kernel and reference.
KILN_HD float unit_q8_0(float dw, float dx, int isum) { return (dw * dx) * float(isum); }
KILN_HD float unit_q4_k(float d, float dmin, int sc, int mn, float dx, float sx, int isum) {
  return ((d * float(sc)) * dx) * float(isum) - (dmin * float(mn)) * sx;
}
KILN_HD float unit_q6_k(float d, float dx, int isc) { return (d * dx) * float(isc); }

}  // namespace kiln::gemm_n_plan
