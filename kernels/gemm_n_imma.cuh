// gemm_n's int8 MMA path, device side (included by kernels/gemm_n.cu only): Q4_K at N > 2 and
// Q6_K at N > 4 take their integer dot products from block-diagonal mma.sync tiles; the tiling's
// maps are host-testable in kernels/gemm_n_mma.h. Numerics: kernels/gemm_n_plan.h.
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"
#include "kernels/gemm_n_dp4a.cuh"
#include "kernels/gemm_n_mma.h"
#include "kernels/gemm_n_plan.h"

namespace kiln::gemm_n_dev {

namespace mma = gemm_n_mma;

// ---- int8 MMA for Q4_K at N > 2 and Q6_K at N > 4 (same numerics plan, bit for bit; Q6_K:
// m16n8k16 per 16-element half, since each half has its own scale). A warp's chunk is computed
// in 8 groups of 4 consecutive units v of its R = 4 rows: a group is one super-block, unit v its
// qs bytes 32v.. (slices 2v and 2v + 1: low and high nibbles). One m16n8k32 per column pair and
// slice takes A row i = (unit, row) = (0, i), (1, i - 4), (3, i - 8), (2, i - 12) and B column
// j = (unit, n') = (0,0) (1,0) (2,0) (3,0) (0,1) (2,1) (1,1) (3,1); only entries whose units
// agree are used (the others pair one unit's weights with another unit's activations). With
// this order each thread (g, t) holds exactly one used entry per MMA, always the same (row g & 3,
// column n' = t >> 1, unit used_unit(g, t)), so its 32 accumulators are the plan's
// per-virtual-lane accumulators (lane 4 * group + unit), fed in the plan's unit order with the
// same terms; the int32 sum of the MMA is the exact slice dot product.
// The same tiling for Q8_0 (one slice per unit, s8 x s8) was slower than Q8_0's dp4a path
// (H200, N = 8, 4096 x 12288: 27.9 -> 31.1 us), so Q8_0 keeps dp4a (docs/perf-notes.md,
// session 16). N = 3 runs as 4 columns (2 pairs) with the fourth masked.

// D = A . B in int32 (C = 0), A unsigned (the nibbles), B the Q8_1 quants. Not volatile: a pure
// function of its operands, so the scheduler may interleave the groups.
__device__ __forceinline__ void mma_u8s8(uint32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

// This thread's fixed roles in the tiling, and its activation pointers for one chunk. Every
// per-group offset below is a compile-time constant (groups are unrolled), so loads take
// immediate offsets from these bases; a group's IMMA results are consumed only after all its
// MMAs are issued, and selects (not branches) pick the used entry and mask invalid ones (the
// first version did neither and ran at half the dp4a speed: each IMMA's latency was exposed).
template <int TT, int N>
struct MmaLane {
  static constexpr int kK = (N + 1) / 2;  // column pairs
  // A unit's two slices (gemm_n_plan.h slice_of) relative to the group's first Q8_1 block:
  // Q4_K 2v and 2v + 1; Q6_K 4 (v / 2) + v % 2 and that + 2. kGap: words between the two.
  static constexpr bool kQ6 = TT == int(DType::Q6_K);
  static constexpr int kGap = kQ6 ? 18 : 9;
  __device__ static int slice0(int v) { return kQ6 ? 4 * (v >> 1) + (v & 1) : 2 * v; }
  int t, r, vm;
  bool s0, s1;        // the used D register: 2 * s1 + s0 (used_reg)
  int vj, va, vb;     // B column unit; units of A rows g and g + 8
  const int* xb[kK];  // B fragments: column nj + 2k, slice slice0(vj) of group 0 (clamped to a valid column)
  const int* xm[kK];  // d/s words: column t / 2 + 2k, slice slice0(vm) of group 0
  bool okb[kK], okm[kK];  // the columns exist
  // Slices of chunk c: super-block 8c + grp, unit v -> Q8_1 blocks 64c + 8 grp + slice0(v) (+ gap).
  __device__ MmaLane(int lane, const BlockQ8_1* x, int64_t x_stride, int c) {
    const int g = lane >> 2;
    t = lane & 3, r = g & 3, vm = mma::used_unit(g, t);
    const int sel = mma::used_reg(g, t);
    s0 = sel & 1, s1 = sel >> 1;
    vj = mma::b_unit(g), va = mma::a_unit_lo(g), vb = mma::a_unit_hi(g);
    const int nj = g >> 2;
#pragma unroll
    for (int k = 0; k < kK; ++k) {
      const int nb = nj + 2 * k, n = (t >> 1) + 2 * k;
      okb[k] = nb < N, okm[k] = n < N;
      xb[k] = reinterpret_cast<const int*>(x + int64_t(okb[k] ? nb : 0) * x_stride + 64 * int64_t(c) + slice0(vj));
      xm[k] = reinterpret_cast<const int*>(x + int64_t(okm[k] ? n : 0) * x_stride + 64 * int64_t(c) + slice0(vm));
    }
  }
  __device__ int pick(const uint32_t (&d)[4]) const { return int(s1 ? (s0 ? d[3] : d[2]) : (s0 ? d[1] : d[0])); }
};
// One group's activation words: B fragments (per column pair k: two per slice) and the d/s word
// per slice of this thread's own (unit, column). Group grp is 8 * grp blocks further on.
template <int TT, int N>
struct MmaX {
  uint32_t b[MmaLane<TT, N>::kK][4];
  uint32_t ds[MmaLane<TT, N>::kK][2];
};
template <int TT, int N>
__device__ __forceinline__ void mma_load_x(const MmaLane<TT, N>& L, int grp, int nunits, MmaX<TT, N>& f) {
  constexpr int kGap = MmaLane<TT, N>::kGap;
  const int gw = 72 * grp;  // 8 blocks of 9 words per group
  const bool okj = 4 * grp + L.vj < nunits, okm = 4 * grp + L.vm < nunits;
#pragma unroll
  for (int k = 0; k < MmaLane<TT, N>::kK; ++k) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // the unit's two slices
      const bool ob = okj && L.okb[k], om = okm && L.okm[k];
      f.b[k][2 * i] = ob ? uint32_t(__ldg(L.xb[k] + gw + kGap * i + 1 + L.t)) : 0u;
      f.b[k][2 * i + 1] = ob ? uint32_t(__ldg(L.xb[k] + gw + kGap * i + 5 + L.t)) : 0u;
      f.ds[k][i] = om ? uint32_t(__ldg(L.xm[k] + gw + kGap * i)) : 0u;
    }
  }
}
// D = A . B over one 16-element half (m16n8k16), both signed: Q6_K's (q - 32) and the Q8_1 quants.
__device__ __forceinline__ void mma_s8_k16(uint32_t (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}
// Q6_K unit v of super-block bo (staged bytes; 210-byte blocks, so 2-byte aligned): thread t's
// word of each 16-element half h of its two slices, as signed q - 32 (per byte, exact).
__device__ __forceinline__ void q6k_unit_words(const uint8_t* rb, int bo, int v, int t, uint32_t (&w)[2][2]) {
  const int hh = v >> 1, pq = v & 1;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    uint32_t ql[1], qh[1];
    lds_words<1>(rb, bo + 64 * hh + 32 * pq + 4 * (4 * h + t), ql);
    lds_words<1>(rb, bo + 128 + 32 * hh + 4 * (4 * h + t), qh);
    const uint32_t hb = qh[0] >> (2 * pq);
    w[0][h] = __vsub4((ql[0] & 0x0f0f0f0fu) | ((hb & 0x03030303u) << 4), 0x20202020u);
    w[1][h] = __vsub4(((ql[0] >> 4) & 0x0f0f0f0fu) | (((hb >> 4) & 0x03030303u) << 4), 0x20202020u);
  }
}
// One Q6_K group: per column pair, 4 MMAs (2 slices x 2 halves); the plan's term per slice is
// (d * d_x) * float(sc_a * isum_a + sc_b * isum_b), the same integers as the dp4a path's
// q . x - 32 * sum(x) form.
template <int N, class Lane, class X>
__device__ __forceinline__ void mma_group_q6_k(const uint8_t* rb, int o, int grp, int nunits, const Lane& L,
                                               const X& f, float (&acc)[8][4]) {
  const bool ok = 4 * grp + L.vm < nunits;
  const int bo = o + 210 * grp;  // o: the row's staging offset (Q6_K rows need not be 16-byte aligned)
  uint32_t wa[2][2], wb[2][2];
  q6k_unit_words(rb, bo, L.va, L.t, wa);
  q6k_unit_words(rb, bo, L.vb, L.t, wb);
  const int8_t* sc = reinterpret_cast<const int8_t*>(rb + bo + 192 + 8 * (L.vm >> 1) + 2 * (L.vm & 1));
  const int s0 = sc[0], s1 = sc[1], s2 = sc[4], s3 = sc[5];
  const float d = h2f(lds_u16(rb, bo + 208));
#pragma unroll
  for (int k = 0; k < (N + 1) / 2; ++k) {
    uint32_t e[2][2][4];  // slice, half
#pragma unroll
    for (int sl = 0; sl < 2; ++sl)
#pragma unroll
      for (int h = 0; h < 2; ++h) mma_s8_k16(e[sl][h], wa[sl][h], wb[sl][h], f.b[k][2 * sl + h]);
    float v = acc[grp][k];
    v = v + plan::unit_q6_k(d, h2f(f.ds[k][0] & 0xffffu), s0 * L.pick(e[0][0]) + s1 * L.pick(e[0][1]));
    v = v + plan::unit_q6_k(d, h2f(f.ds[k][1] & 0xffffu), s2 * L.pick(e[1][0]) + s3 * L.pick(e[1][1]));
    acc[grp][k] = ok && L.okm[k] ? v : acc[grp][k];
  }
}
// One group: A fragments from this thread's staged row rb (Q4_K rows are whole 144-byte blocks
// of a 16-byte-aligned base, so staged chunks are aligned and o = 0), the MMAs, then the plan's
// two slice terms added to this thread's accumulator of (group, column pair). Q6_K: above.
template <int TT, int N>
__device__ __forceinline__ void mma_group(const uint8_t* rb, int o, int grp, int nunits, const MmaLane<TT, N>& L,
                                          const MmaX<TT, N>& f, float (&acc)[8][4]) {
  constexpr int kK = MmaLane<TT, N>::kK;
  if constexpr (TT == int(DType::Q6_K)) {
    mma_group_q6_k<N>(rb, o, grp, nunits, L, f, acc);
    return;
  }
  const bool ok = 4 * grp + L.vm < nunits;
  const uint32_t* q = reinterpret_cast<const uint32_t*>(rb + 144 * grp + 16);
  const uint32_t w0 = q[8 * L.va + L.t], w1 = q[8 * L.vb + L.t], w2 = q[8 * L.va + 4 + L.t], w3 = q[8 * L.vb + 4 + L.t];
  const uint32_t lo[4] = {w0 & 0x0f0f0f0fu, w1 & 0x0f0f0f0fu, w2 & 0x0f0f0f0fu, w3 & 0x0f0f0f0fu};
  const uint32_t hi[4] = {(w0 >> 4) & 0x0f0f0f0fu, (w1 >> 4) & 0x0f0f0f0fu, (w2 >> 4) & 0x0f0f0f0fu,
                          (w3 >> 4) & 0x0f0f0f0fu};
  const uint4 h = *reinterpret_cast<const uint4*>(rb + 144 * grp);
  const uint32_t hd[4] = {h.x, h.y, h.z, h.w};
  float sc[4];
  q4k_unit_scales(hd, L.vm, sc);
  uint32_t d0[kK][4], d1[kK][4];
#pragma unroll
  for (int k = 0; k < kK; ++k) {
    mma_u8s8(d0[k], lo, f.b[k][0], f.b[k][1]);
    mma_u8s8(d1[k], hi, f.b[k][2], f.b[k][3]);
  }
#pragma unroll
  for (int k = 0; k < kK; ++k) {
    const uint32_t x0 = f.ds[k][0], x1 = f.ds[k][1];
    float v = acc[grp][k];  // == plan::unit_q4_k per slice, with d*sc and dmin*mn folded in sc
    v = v + (((sc[0] * h2f(x0 & 0xffffu)) * float(L.pick(d0[k]))) - sc[1] * h2f(x0 >> 16));
    v = v + (((sc[2] * h2f(x1 & 0xffffu)) * float(L.pick(d1[k]))) - sc[3] * h2f(x1 >> 16));
    acc[grp][k] = ok && L.okm[k] ? v : acc[grp][k];
  }
}
// One staged chunk c (units [0, nunits)) of rows buf + r * rowbuf, activations prefetched one
// group ahead.
template <int TT, int N>
__device__ __forceinline__ void mma_chunk(const uint8_t* buf, int rowbuf, int o, int c, int nunits, const BlockQ8_1* x,
                                          int64_t x_stride, int lane, float (&acc)[8][4]) {
  const MmaLane<TT, N> L(lane, x, x_stride, c);
  const uint8_t* rb = buf + L.r * rowbuf;
  MmaX<TT, N> f[2];
  mma_load_x<TT, N>(L, 0, nunits, f[0]);
#pragma unroll
  for (int grp = 0; grp < 8; ++grp) {
    if (grp + 1 < 8) mma_load_x<TT, N>(L, grp + 1, nunits, f[(grp + 1) & 1]);
    mma_group<TT, N>(rb, o, grp, nunits, L, f[grp & 1], acc);
  }
}
// The plan's lane butterfly on that layout: virtual lane l = 4 * group + unit, so o = 16, 8, 4
// pair groups inside the thread and o = 2, 1 pair units held by the partner lanes of
// gemm_n_mma.h (checked by the GemmNMma test). Afterwards the
// thread holds the (row g & 3, column (t >> 1) + 2k) totals in acc[0][k] (g = lane / 4, t = lane % 4).
template <int N>
__device__ __forceinline__ void mma_fold(int lane, float (&acc)[8][4]) {
  const int s2 = mma::partner2(lane), s1 = mma::partner1(lane);
#pragma unroll
  for (int k = 0; k < (N + 1) / 2; ++k) {
    const float a0 = acc[0][k] + acc[4][k], a1 = acc[1][k] + acc[5][k];
    const float a2 = acc[2][k] + acc[6][k], a3 = acc[3][k] + acc[7][k];
    const float b0 = a0 + a2, b1 = a1 + a3;
    float v = b0 + b1;
    v = v + __shfl_sync(0xffffffffu, v, s2);
    v = v + __shfl_sync(0xffffffffu, v, s1);
    acc[0][k] = v;
  }
}

}  // namespace kiln::gemm_n_dev
