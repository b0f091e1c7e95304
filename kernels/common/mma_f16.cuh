// FP16 tensor-core pieces shared by the attention kernels (prefill and the tensor-core decode):
// the m16n8k16 MMA with F32 accumulation, the hi/lo FP16 split of float operands, and the 8x8
// fragment transpose. Device-only.
#pragma once

#include <cuda_fp16.h>

#include <climits>
#include <cmath>
#include <cstdint>

namespace kiln::mmadev {

// C += A . B, A 16x16 row-major (a0..a3), B 16x8 column-major (b0, b1), FP16 operands, F32 C.
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Splits the pair (a, b) into FP16 halves: hi = fp16 (a, b) rounded to nearest, lo = fp16 of the
// remainders, so a ~= hi.x + lo.x, b ~= hi.y + lo.y to 2^-22 relative (or 2^-25 absolute where lo
// is an FP16 subnormal). a - float(hi.x) is exact in float (a and hi.x are within half an FP16
// ulp of each other).
__device__ __forceinline__ void split_half2(float a, float b, uint32_t& hi, uint32_t& lo) {
  const __half2 h = __floats2half2_rn(a, b);
  const float2 hf = __half22float2(h);
  const __half2 l = __floats2half2_rn(a - hf.x, b - hf.y);
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&l);
}

// Q's staging in the prefill kernels: N pieces of 8 floats per thread, piece k at index first +
// k * step; src(index) gives its address (null: a row past T, zeros), store(index, hi, lo) puts
// its split_half2 halves in shared memory. The loads go out in batches of up to 8 pieces before
// any is converted: a load-convert-store loop waits one global round trip per piece (8-16 in a
// row in every CTA's prologue while its tensor cores idle); 8 bounds the registers (64 floats).
template <int N, class Src, class Store>
__device__ __forceinline__ void stage_split(int first, int step, Src src, Store store) {
  constexpr int B = N < 8 ? N : 8;
  static_assert(N % B == 0, "whole batches");
#pragma unroll
  for (int b = 0; b < N; b += B) {
    float4 v[B][2];
#pragma unroll
    for (int k = 0; k < B; ++k) {
      const float* p = src(first + (b + k) * step);
      v[k][0] = v[k][1] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (p) v[k][0] = *reinterpret_cast<const float4*>(p), v[k][1] = *reinterpret_cast<const float4*>(p + 4);
    }
#pragma unroll
    for (int k = 0; k < B; ++k) {
      uint4 hi, lo;
      split_half2(v[k][0].x, v[k][0].y, hi.x, lo.x);
      split_half2(v[k][0].z, v[k][0].w, hi.y, lo.y);
      split_half2(v[k][1].x, v[k][1].y, hi.z, lo.z);
      split_half2(v[k][1].z, v[k][1].w, hi.w, lo.w);
      store(first + (b + k) * step, hi, lo);
    }
  }
}

// Transpose of an 8x8 FP16 matrix held as an MMA fragment (thread (g, t) = (lane / 4, lane % 4)
// holds row g, columns 2t and 2t + 1): afterwards it holds row g of the transpose.
__device__ __forceinline__ uint32_t transpose8x8(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// P = kPScale exp2(x - m) <= 32768 < 65504 in the softmax of both attention kernels: the lo half
// of its split stays out of FP16's subnormals down to 2^-40 in units of p (l carries the same
// factor, which the final 1 / l cancels).
constexpr float kPScale = 32768.f;
constexpr float kPScaleLog2 = 15.f;  // prefill folds the factor into exp2's argument
// (x - (m - kPScaleLog2); online_softmax: one FFMA per key forms scale s + kPScaleLog2 - m)
static_assert(kPScale == float(1 << 15) && kPScaleLog2 == 15.f, "kPScale is 2^kPScaleLog2");
constexpr float kLog2e = 1.4426950408889634f;  // scores to the exp2 domain

// 2^x on the special-function unit alone. exp2f without -ftz (kiln builds without fast math)
// compiles to MUFU.EX2 plus a range test and two predicated multiplies that keep subnormal
// results: four instructions where one does. Results below 2^-126 flush to 0 here; in the
// softmax those are probabilities 2^-141 below the row's largest, far under any contract.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// The causal / window / kv_hi mask of one warp's score tile in the m16n8 accumulator layout (NB
// groups of 8 keys; s[4 n + e] is row g + 8 (e >> 1), key kb + 8 n + 2 t + (e & 1)): a masked
// score becomes -inf. Row r keeps the keys kb + 2 t + c with c in [lo[r], hi[r]] -- c = 8 n +
// (e & 1) is a compile-time offset, so a score costs two compares and a select. Callers run it
// behind a warp-uniform branch on tiles that need it: folded into the softmax's max loop, ptxas
// if-converted the test into every tile's scores (ncu, H100, wgmma hd 128 Half T 8192: ISETP
// 18 % of the kernel's instructions; static SASS 4992 -> 3600 instructions without it).
template <int NB>
__device__ __forceinline__ void mask_scores(float* s, int kb, int qpos0, int kv_hi, int window, int t) {
  int lo[2], hi[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int qp = qpos0 + 8 * r, base = kb + 2 * t;
    hi[r] = min(qp, kv_hi) - base;                           // kp <= qp and kp <= kv_hi
    lo[r] = window == 0 ? INT_MIN : qp - window + 1 - base;  // qp - kp < window
  }
#pragma unroll
  for (int n = 0; n < NB; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int c = n * 8 + (e & 1);
      if (c > hi[e >> 1] || c < lo[e >> 1]) s[4 * n + e] = -INFINITY;
    }
}

// Masked online softmax of one consumer warp's score tile in place (the wgmma prefill kernel's;
// attention_prefill.cu says why the mma.sync kernel keeps its own loop). The tile is NB groups
// of 8 key columns in the m16n8 accumulator layout: s[4 n + e] is row g + 8 (e >> 1), key
// kb + 8 n + 2 t + (e & 1) (g = lane / 4, t = lane % 4; the thread's rows are at positions qpos0
// and qpos0 + 8). Raw scores q.k in; P = kPScale 2^(scale_log2 s - m) out, with m the row's
// running max in the exp2 domain (mrow), l (lrow, this thread's columns only) updated and
// corr = 2^(m_old - m_new), O's factor, returned. A key is kept iff it is at or before the
// query, at most kv_hi, and inside the window; `full` says every key of the tile is kept for
// every row of the warp (no mask work).
// Per score: a max, one FFMA and one MUFU (was: a multiply, a max, a subtract and exp2f's four).
// The max is taken over the raw scores and scaled once per row: for scale_log2 > 0 (the entry
// point requires it) rounding is monotone, so max(s) * c == max(round(s * c)) exactly. The FFMA
// forms c s + (kPScaleLog2 - m) with one rounding, so the largest exponent is kPScaleLog2 plus at
// most half an ulp of m plus the rounding of kPScaleLog2 - m: P < 2^15.5 < 65504 (FP16's
// largest) while |m| < 2^22, i.e. |scale q.k| < 2.9e6 -- the old subtract-then-exp2 had the same
// kind of limit (kPScaleLog2 - m rounds once |m| >= 2^24).
// The scalars are taken by reference: by value, ptxas spilled 64-76 bytes of the kernel's
// prologue scalars at hd 128 (the inlined body is the same; the allocation is not).
template <int NB>
__device__ __forceinline__ void online_softmax(float (&s)[4 * NB], const bool& full, const int& kb, const int& qpos0,
                                               const int& kv_hi, const int& window, const int& t,
                                               const float& scale_log2, float (&mrow)[2], float (&lrow)[2],
                                               float (&corr)[2]) {
  if (!full) mask_scores<NB>(s, kb, qpos0, kv_hi, window, t);
  float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < NB; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) mt[e >> 1] = fmaxf(mt[e >> 1], s[4 * n + e]);
  float nm[2];  // kPScaleLog2 - m: the FFMA's addend
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
    mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
    const float mn = fmaxf(mrow[r], mt[r] * scale_log2);
    nm[r] = mn == -INFINITY ? 0.f : mn;  // a row with every key masked so far: P = 0
    corr[r] = exp2_ftz(mrow[r] - nm[r]);
    nm[r] = kPScaleLog2 - nm[r];
    mrow[r] = mn;
  }
  float ls[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < NB; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e)  // masked: -inf -> 0
      s[4 * n + e] = exp2_ftz(fmaf(s[4 * n + e], scale_log2, nm[e >> 1]));
    ls[0] += s[4 * n] + s[4 * n + 1];
    ls[1] += s[4 * n + 2] + s[4 * n + 3];
  }
  lrow[0] = lrow[0] * corr[0] + ls[0];
  lrow[1] = lrow[1] * corr[1] + ls[1];
}

// Whether O needs no rescaling this tile: no row of the warp moved its max (corr = exp2(0) = 1
// exactly), so the warp skips its O multiplies together.
__device__ __forceinline__ bool warp_corr_is_one(const float (&corr)[2]) {
  return __all_sync(0xffffffffu, corr[0] == 1.f && corr[1] == 1.f);
}

}  // namespace kiln::mmadev
