// gemm_n's dp4a path, device side (included by kernels/gemm_n.cu only): shared-memory word
// reads, the per-lane unit decode of a staged weight chunk (RowUnit / load_unit), the Q8_1
// activation loads in both column layouts (load_unit_x) and the plan's per-unit terms
// (unit_terms). Numerics: kernels/gemm_n_plan.h.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"
#include "kernels/gemm_n_plan.h"

namespace kiln::gemm_n_dev {

namespace plan = gemm_n_plan;

// Unaligned little-endian reads from shared memory (buffers are padded by one word).
template <int NW>
__device__ __forceinline__ void lds_words(const uint8_t* base, int off, uint32_t (&out)[NW]) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(base) + (off >> 2);
  const uint32_t sh = uint32_t(off & 3) * 8;
  uint32_t a[NW + 1];
#pragma unroll
  for (int i = 0; i <= NW; ++i) a[i] = w[i];
#pragma unroll
  for (int i = 0; i < NW; ++i) out[i] = __funnelshift_r(a[i], a[i + 1], sh);
}
__device__ __forceinline__ uint32_t lds_u16(const uint8_t* base, int off) {
  return uint32_t(base[off]) | (uint32_t(base[off + 1]) << 8);
}
__device__ __forceinline__ float h2f(uint32_t h) { return __half2float(__ushort_as_half((unsigned short)h)); }

// Signed x unsigned byte dot product: the Q4_K high nibbles are used in place (q & 0xf0 = 16 x
// nibble, up to 240 -- unsigned), saving a shift per word; the sum is exactly 16x.
__device__ __forceinline__ int dp4a_us(uint32_t a_unsigned, int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a_unsigned), "r"(b), "r"(c));
  return d;
}

// (a & m) | (b & ~m) as one LOP3: written as C, ptxas splits it into two when it can prove b's
// bits (the Q6_K decode: 2 LOP3 per quant word instead of 1).
__device__ __forceinline__ uint32_t bit_select(uint32_t m, uint32_t a, uint32_t b) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(d) : "r"(a), "r"(b), "r"(m));  // F(a, b, c) = a & c | b & ~c
  return d;
}

// One lane's unit of one row, decoded from the staged chunk: int8x4 quants of slice 0 in q[0..8)
// and of slice 1 in q[8..16) (Q8_0: one slice). f: Q8_0 {d}; Q4_K {d*sc, dmin*mn} per slice, as
// plan::unit_q4_k forms them; Q6_K {d}. sc: Q6_K, the scales of the four 16-element halves.
// Q6_K quants stay unsigned (0..63): the kernel subtracts 32 * sum(x) per half (same integers).
struct RowUnit {
  uint32_t q[16];
  float f[4];
  int sc[4];
};

// Q4_K unit j (sub-blocks 2j, 2j + 1) of a super-block with header words hd (d, dmin | scales):
// f = {d*sc, dmin*mn} per sub-block, as plan::unit_q4_k forms them. Both sub-blocks at once in
// the two low bytes, without a branch (the 6-bit packing q4k_scale_min documents): sub-blocks
// 0-3 (j < 2) keep their 6 bits in scale bytes 0-3 / 4-7; 4-7 take 4 bits from bytes 8-11 and
// the top 2 bits of bytes 0-3 / 4-7.
__device__ __forceinline__ void q4k_unit_scales(const uint32_t (&hd)[4], int j, float (&f)[4]) {
  const float d = h2f(hd[0] & 0xffffu), dmin = h2f(hd[0] >> 16);
  const uint32_t sh = 16u * uint32_t(j & 1);
  const uint32_t A = hd[1] >> sh, B = hd[2] >> sh, C = hd[3] >> sh;
  const bool hi = j >= 2;
  const uint32_t scp = hi ? (C & 0x0f0fu) | ((A >> 2) & 0x3030u) : A & 0x3f3fu;
  const uint32_t mnp = hi ? ((C >> 4) & 0x0f0fu) | ((B >> 2) & 0x3030u) : B & 0x3f3fu;
  f[0] = d * float(int(scp & 0xffu));
  f[1] = dmin * float(int(mnp & 0xffu));
  f[2] = d * float(int((scp >> 8) & 0xffu));
  f[3] = dmin * float(int((mnp >> 8) & 0xffu));
}

// b: the row's staged chunk; off: its misalignment (the chunk's global address mod 16).
// pairs: kQ6Pairs (Params::q6_pairs, kernels/gemm_n.cu).
__device__ __forceinline__ void load_unit(DType type, const uint8_t* b, int off, int lane, uint32_t pairs,
                                          RowUnit& u) {
  if (type == DType::Q8_0) {
    const int bo = off + 34 * lane;
    uint32_t q[8];
    lds_words<8>(b, bo + 2, q);
#pragma unroll
    for (int i = 0; i < 8; ++i) u.q[i] = q[i];
    u.f[0] = h2f(lds_u16(b, bo));
    return;
  }
  const int j = lane & 3;  // unit of the super-block
  if (type == DType::Q4_K) {
    const int bo = off + 144 * (lane >> 2);
    uint32_t hd[4], q[8];  // header: d, dmin | scales[12]; qs bytes 32j..32j+31
    if (off == 0) {  // 144-byte blocks keep 16-byte alignment: vector reads
      const uint4 h = *reinterpret_cast<const uint4*>(b + bo);
      const uint4* qv = reinterpret_cast<const uint4*>(b + bo + 16 + 32 * j);
      const uint4 qa = qv[0], qb = qv[1];
      hd[0] = h.x, hd[1] = h.y, hd[2] = h.z, hd[3] = h.w;
      q[0] = qa.x, q[1] = qa.y, q[2] = qa.z, q[3] = qa.w, q[4] = qb.x, q[5] = qb.y, q[6] = qb.z, q[7] = qb.w;
    } else {
      lds_words<4>(b, bo, hd);
      lds_words<8>(b, bo + 16 + 32 * j, q);
    }
    q4k_unit_scales(hd, j, u.f);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      u.q[i] = q[i] & 0x0f0f0f0fu;
      u.q[8 + i] = q[i] & 0xf0f0f0f0u;  // 16 x the high nibbles (dp4a_us)
    }
    return;
  }
  // Q6_K: half hh, quarters pq and pq + 2 (low/high nibbles of the same ql bytes). Blocks are
  // 210 bytes on 16-byte-aligned rows, so every offset is even and a word window starts 0 or 16
  // bits into an aligned word: one funnel shift per word picks the window, and folds in the
  // nibble shift (ql: + 4 for the high nibbles) and the bit-pair shift (qh: + 2 pq). Then one
  // bit-select per quant word: low/high nibble of ql under 0x0f0f0f0f, the qh pair above it.
  const int bo = off + 210 * (lane >> 2), hh = j >> 1, pq = j & 1;
  const int lo = bo + 64 * hh + 32 * pq, ho = bo + 128 + 32 * hh;
  const uint32_t* lw = reinterpret_cast<const uint32_t*>(b) + (lo >> 2);
  const uint32_t* hw = reinterpret_cast<const uint32_t*>(b) + (ho >> 2);
  const uint32_t ls = uint32_t(lo & 3) * 8, hs = uint32_t(ho & 3) * 8 + 2 * uint32_t(pq);
  uint32_t l[9], h[9];
#pragma unroll
  for (int i = 0; i < 9; ++i) l[i] = lw[i], h[i] = hw[i];
  constexpr uint32_t kNib = 0x0f0f0f0fu;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t p = __funnelshift_r(h[i], h[i + 1], hs) & pairs;  // pairs at bits 0-1, 4-5
    u.q[i] = bit_select(kNib, __funnelshift_r(l[i], l[i + 1], ls), p << 4);
    u.q[8 + i] = bit_select(kNib, __funnelshift_r(l[i], l[i + 1], ls + 4), p);
  }
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + bo + 192 + 8 * hh + 2 * pq);
  u.sc[0] = sc[0], u.sc[1] = sc[1], u.sc[2] = sc[4], u.sc[3] = sc[5];
  u.f[0] = h2f(*reinterpret_cast<const uint16_t*>(b + bo + 208));
}

// One Q8_1 block of an activation column: from the shared-memory stage (xs) or global memory.
struct XSlice {
  int q[8];
  float d, s;
};
__device__ __forceinline__ void load_x(const BlockQ8_1* col, const uint32_t* xs, int slice, XSlice& v) {
  uint32_t ds;
  if (xs) {
    const uint32_t* xw = xs + 9 * slice;
    ds = xw[0];
#pragma unroll
    for (int i = 0; i < 8; ++i) v.q[i] = int(xw[1 + i]);
  } else {
    const int* xw = reinterpret_cast<const int*>(col + slice);  // 36-byte blocks: 4-byte aligned only
    ds = uint32_t(__ldg(xw));
#pragma unroll
    for (int i = 0; i < 8; ++i) v.q[i] = __ldg(xw + 1 + i);
  }
  v.d = h2f(ds & 0xffffu);
  v.s = h2f(ds >> 16);
}

// Q4_K's two slices of a unit are adjacent Q8_1 blocks: 72 bytes at an 8-byte-aligned offset
// (column starts are 16-byte aligned when K is a multiple of 256, in the stage and in global
// memory, where launch requires x 16-byte aligned), so 9 64-bit loads. From global memory
// (kGlobal) this halves the L1 requests of 4-byte loads: a warp's lanes read 72 bytes apart, so
// every load instruction touches 18 lines whatever its width. H100, session 36: qwen3-8b decode
// +2.8 % (369.5 -> 379.7 tok/s), Q4_K N = 1 / 2 rows 2-14 % faster (the 2560 x 262144 head 1 %
// slower). Five 128-bit loads around the pair did no better; the same idea for Q8_0 / Q6_K blocks
// (four 64-bit + one 32-bit load, selects by alignment) slowed Q8_0 by 1-4 % (gemma4-e4b decode
// -1.0 %), so their blocks keep 32-bit loads (load_x).
template <bool kGlobal>
__device__ __forceinline__ void load_x_pair(const uint32_t* xs, int slice, XSlice& a, XSlice& b) {
  const uint2* v = reinterpret_cast<const uint2*>(xs + 9 * slice);
  uint32_t w[18];
#pragma unroll
  for (int i = 0; i < 9; ++i) {
    const uint2 t = kGlobal ? __ldg(v + i) : v[i];
    w[2 * i] = t.x, w[2 * i + 1] = t.y;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) a.q[i] = int(w[1 + i]), b.q[i] = int(w[10 + i]);
  a.d = h2f(w[0] & 0xffffu), a.s = h2f(w[0] >> 16);
  b.d = h2f(w[9] & 0xffffu), b.s = h2f(w[9] >> 16);
}

// Interleaved columns (Q8Layout::Interleaved, kernels/common/blocks.h): word i of block b at
// cw[q8_1i_base(b) + i * q8_1i_stride(b, nb)], so the lanes of a warp -- consecutive blocks of
// one group -- read adjacent words. kGlobal: cw is global memory (else the stage).
template <bool kGlobal>
__device__ __forceinline__ void load_x_il(const uint32_t* cw, int nb, int slice, XSlice& v) {
  const int base = q8_1i_base(slice), G = q8_1i_stride(slice, nb);
  uint32_t w[kQ8Words];
#pragma unroll
  for (int i = 0; i < kQ8Words; ++i) w[i] = kGlobal ? __ldg(cw + base + i * G) : cw[base + i * G];
#pragma unroll
  for (int i = 0; i < 8; ++i) v.q[i] = int(w[1 + i]);
  v.d = h2f(w[0] & 0xffffu), v.s = h2f(w[0] >> 16);
}
// Q4_K's slice pair (slice even, both in one group; K % 256 == 0 keeps base, G and the column
// start even): word i of both slices in one 64-bit load.
template <bool kGlobal>
__device__ __forceinline__ void load_x_pair_il(const uint32_t* cw, int nb, int slice, XSlice& a, XSlice& b) {
  const int base = q8_1i_base(slice), G = q8_1i_stride(slice, nb);
  uint2 w[kQ8Words];
#pragma unroll
  for (int i = 0; i < kQ8Words; ++i) {
    const uint2* p = reinterpret_cast<const uint2*>(cw + base + i * G);
    w[i] = kGlobal ? __ldg(p) : *p;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) a.q[i] = int(w[1 + i].x), b.q[i] = int(w[1 + i].y);
  a.d = h2f(w[0].x & 0xffffu), a.s = h2f(w[0].x >> 16);
  b.d = h2f(w[0].y & 0xffffu), b.s = h2f(w[0].y >> 16);
}

// The activations of one unit (its slices sl0, sl1 of one column) and, for Q6_K, the sums of
// their four 16-element halves. xst: the column's shared-memory stage, or null (global memory).
// IL: the column is Q8Layout::Interleaved (nb blocks), else Blocks.
struct UnitX {
  XSlice x0, x1;
  int hs[4];
};
template <bool IL>
__device__ __forceinline__ void load_unit_x(DType type, const BlockQ8_1* xcol, const uint8_t* xst, int nb,
                                            uint32_t ug, UnitX& ux) {
  const int sl0 = int(plan::slice_of(type, ug, 0)), sl1 = int(plan::slice_of(type, ug, 1));
  const uint32_t* xs =  // the stage keeps the column's misalignment
      xst ? reinterpret_cast<const uint32_t*>(xst + (reinterpret_cast<uintptr_t>(xcol) & 15)) : nullptr;
  const uint32_t* xg = reinterpret_cast<const uint32_t*>(xcol);
  if (IL) {
    if (type == DType::Q4_K) {  // sl1 = sl0 + 1
      if (xs)
        load_x_pair_il<false>(xs, nb, sl0, ux.x0, ux.x1);
      else
        load_x_pair_il<true>(xg, nb, sl0, ux.x0, ux.x1);
    } else {
      if (xs)
        load_x_il<false>(xs, nb, sl0, ux.x0);
      else
        load_x_il<true>(xg, nb, sl0, ux.x0);
      if (type != DType::Q8_0) {
        if (xs)
          load_x_il<false>(xs, nb, sl1, ux.x1);
        else
          load_x_il<true>(xg, nb, sl1, ux.x1);
      }
    }
  } else if (type == DType::Q4_K) {  // sl1 = sl0 + 1
    if (xs)
      load_x_pair<false>(xs, sl0, ux.x0, ux.x1);
    else
      load_x_pair<true>(xg, sl0, ux.x0, ux.x1);
  } else {
    load_x(xcol, xs, sl0, ux.x0);
    if (type != DType::Q8_0) load_x(xcol, xs, sl1, ux.x1);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) ux.hs[i] = 0;
  if (type == DType::Q6_K) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      ux.hs[0] = __dp4a(0x01010101, ux.x0.q[i], ux.hs[0]);
      ux.hs[1] = __dp4a(0x01010101, ux.x0.q[4 + i], ux.hs[1]);
      ux.hs[2] = __dp4a(0x01010101, ux.x1.q[i], ux.hs[2]);
      ux.hs[3] = __dp4a(0x01010101, ux.x1.q[4 + i], ux.hs[3]);
    }
  }
}

// The plan's slice terms (gemm_n_plan.h step 3) of one decoded row unit against one unit of
// activations: t[0], and t[1] for the K-quants (a Q8_0 unit is one slice).
__device__ __forceinline__ void unit_terms(DType type, const RowUnit& w, const UnitX& ux, float (&t)[2]) {
  int d[4];  // dot products of the four 16-element halves
#pragma unroll
  for (int h = 0; h < 4; ++h) {
    d[h] = 0;
    if (h >= 2 && type == DType::Q8_0) continue;
    const XSlice& xv = h < 2 ? ux.x0 : ux.x1;
#pragma unroll
    for (int i = 0; i < 4; ++i)
      d[h] = h >= 2 && type == DType::Q4_K ? dp4a_us(w.q[4 * h + i], xv.q[4 * (h & 1) + i], d[h])
                                           : __dp4a(int(w.q[4 * h + i]), xv.q[4 * (h & 1) + i], d[h]);
  }
  const int* hs = ux.hs;
  if (type == DType::Q8_0) {
    t[0] = plan::unit_q8_0(w.f[0], ux.x0.d, d[0] + d[1]);
    t[1] = 0.f;
  } else if (type == DType::Q4_K) {  // == plan::unit_q4_k with f = d*sc, dmin*mn folded per row
    t[0] = ((w.f[0] * ux.x0.d) * float(d[0] + d[1])) - w.f[1] * ux.x0.s;
    t[1] = ((w.f[2] * ux.x1.d) * float((d[2] + d[3]) >> 4)) - w.f[3] * ux.x1.s;  // 16x exact
  } else {  // unsigned 6-bit quants: (q - 32) . x = q . x - 32 * sum(x), exact in int
    t[0] = plan::unit_q6_k(w.f[0], ux.x0.d, w.sc[0] * (d[0] - 32 * hs[0]) + w.sc[1] * (d[1] - 32 * hs[1]));
    t[1] = plan::unit_q6_k(w.f[0], ux.x1.d, w.sc[2] * (d[2] - 32 * hs[2]) + w.sc[3] * (d[3] - 32 * hs[3]));
  }
}

}  // namespace kiln::gemm_n_dev
