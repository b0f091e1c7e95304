// GGML block formats shared by host and device: layouts, half/bfloat16 conversion and per-block
// decode. Bit-compatible with GGML (ggml-common.h defines the same byte layouts); the decode
// functions here are the one definition of each format's meaning in kiln — models/quant.cpp
// builds row encode/decode on them, kernels call them for gathers (embedding rows).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "hd.h"

namespace kiln {

// ---- scalar conversions (exact, software; identical on host and device) --------------------

KILN_HD uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
KILN_HD float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN).
KILN_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    // subnormal: normalize
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    return bits_f32(sign | uint32_t(127 - 15 - e) << 23 | ((man & 0x3ffu) << 13));
  }
  return bits_f32(sign | (exp + 112u) << 23 | (man << 13));
}

// binary32 -> binary16, round to nearest even, overflow to inf, NaN stays NaN.
KILN_HD uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (a < 0x38800000u) {                                  // result is subnormal or zero
    if (a < 0x33000000u) return sign;                     // < half the smallest subnormal
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24 + 1 extra so m>>shift has 10 bits
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return uint16_t(sign | r);
  }
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits, ties to even
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

KILN_HD float bf16_to_f32(uint16_t b) { return bits_f32(uint32_t(b) << 16); }

// binary32 -> bfloat16, round to nearest even; NaN stays (quiet) NaN.
KILN_HD uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// ---- block layouts ------------------------------------------------------------------------

constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK_K = 256;

struct BlockQ8_0 {  // 34 bytes, 32 weights: w = d * qs
  uint16_t d;       // f16 scale
  int8_t qs[QK8_0];
};

struct BlockQ8_1 {  // 36 bytes, 32 activations: x = d * qs; s = d * sum(qs) (both f16)
  uint16_t d;
  uint16_t s;
  int8_t qs[QK8_1];
};

struct BlockQ4K {          // 144 bytes, 256 weights in 8 sub-blocks of 32
  uint16_t d;              // f16 super-scale for the 6-bit sub-block scales
  uint16_t dmin;           // f16 super-scale for the 6-bit sub-block mins
  uint8_t scales[12];      // 8 scales + 8 mins, 6 bits each, packed (see q4k_scale_min)
  uint8_t qs[QK_K / 2];    // 4-bit quants: byte j of 32-byte group g holds sub-blocks 2g (low), 2g+1 (high)
};

struct BlockQ6K {          // 210 bytes, 256 weights in 16 sub-blocks of 16
  uint8_t ql[QK_K / 2];    // low 4 bits
  uint8_t qh[QK_K / 4];    // high 2 bits
  int8_t scales[QK_K / 16];  // 8-bit signed sub-block scales
  uint16_t d;              // f16 super-scale
};

static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block layout");
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block layout");
static_assert(sizeof(BlockQ4K) == 144, "Q4_K block layout");
static_assert(sizeof(BlockQ6K) == 210, "Q6_K block layout");

// Q4_K packs sub-block j's 6-bit scale and min into 12 bytes: j < 4 use the low 6 bits of bytes
// j and j+4; j >= 4 take their low 4 bits from byte j+4 (scale: low nibble, min: high nibble) and
// their top 2 bits from the spare top bits of bytes j-4 (scale) and j (min).
KILN_HD void q4k_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Integer quant of element i (0..255) of a Q4_K block, 0..15; sub-block of i is i / 32.
KILN_HD int q4k_quant(const BlockQ4K& b, int i) {
  const int g = i / 64, r = i % 64;
  const uint8_t byte = b.qs[32 * g + (r % 32)];
  return r < 32 ? (byte & 0x0f) : (byte >> 4);
}

// Integer quant of element i (0..255) of a Q6_K block, -32..31; sub-block scale is scales[i / 16].
KILN_HD int q6k_quant(const BlockQ6K& b, int i) {
  const int h = i / 128, r = i % 128;  // half of the block (128 weights each)
  const int quarter = r / 32, l = r % 32;
  const uint8_t* ql = b.ql + 64 * h;
  const uint8_t* qh = b.qh + 32 * h;
  const int lo = (quarter & 1) ? ql[l + 32] : ql[l];
  const int low4 = (quarter < 2) ? (lo & 0x0f) : (lo >> 4);
  const int high2 = (qh[l] >> (2 * quarter)) & 3;
  return (low4 | (high2 << 4)) - 32;
}

// ---- per-block decode (float, the reference meaning of each format) -----------------------
// Each multiplies in the order GGML's dequantizers do: Q8_0 d*q; Q4_K (d*sc)*q - (dmin*m);
// Q6_K (d*sc)*q.

KILN_HD void decode_q8_0(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < QK8_0; ++i) y[i] = d * float(b.qs[i]);
}

KILN_HD void decode_q8_1(const BlockQ8_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < QK8_1; ++i) y[i] = d * float(b.qs[i]);
}

KILN_HD void decode_q4_k(const BlockQ4K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    q4k_scale_min(b.scales, j, sc, mn);
    const float ds = d * float(sc), dm = dmin * float(mn);
    for (int l = 0; l < 32; ++l) y[32 * j + l] = ds * float(q4k_quant(b, 32 * j + l)) - dm;
  }
}

KILN_HD void decode_q6_k(const BlockQ6K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < QK_K; ++i) y[i] = (d * float(b.scales[i / 16])) * float(q6k_quant(b, i));
}

// ---- Q8_1 activation column layouts ---------------------------------------------------------
// A column of nb Q8_1 blocks (36 bytes = 9 words each: word 0 = d | s << 16, words 1..8 = qs)
// is stored in one of two layouts of the same bytes:
//  - Blocks: GGUF order, block b at words 9b..9b+8 (what every consumer reads by default).
//  - Interleaved: blocks in groups of kQ8Group; in the group starting at block g0 (G = its size,
//    kQ8Group except a short last group), word w of block b sits at word 9 * g0 + w * G + (b - g0).
//    Consecutive blocks' same words are adjacent, so a warp whose lanes read consecutive blocks
//    (gemm_n's dp4a lanes: 32 Q8_0 blocks or 64 K-quant slices per chunk = one group) touches 1-2
//    cache lines per load instead of 9-18 (lanes 36 or 72 bytes apart). Decode steps (N <= 2)
//    write and read it; see kernels/gemm_n.cuh.
enum class Q8Layout : int { Blocks = 0, Interleaved = 1 };
KILN_HD bool q8_layout_valid(Q8Layout l) { return l == Q8Layout::Blocks || l == Q8Layout::Interleaved; }
constexpr int kQ8Group = 64;
constexpr int kQ8Words = 9;  // 32-bit words per Q8_1 block

// Interleaved: word 0 of block b (9 g0 + b - g0), and the distance between its consecutive words
// (G, the size of b's group) in an nb-block column. I: int for gemm_n's loads, int64_t elsewhere.
template <class I>
KILN_HD I q8_1i_base(I b) {
  const I g0 = b - b % kQ8Group;
  return kQ8Words * g0 + (b - g0);
}
template <class I>
KILN_HD I q8_1i_stride(I b, I nb) {
  const I g0 = b - b % kQ8Group;
  return nb - g0 < kQ8Group ? nb - g0 : I(kQ8Group);
}
// Word index (from the column start) of word w (0..8) of block b in an nb-block column.
KILN_HD int64_t q8_1_word(Q8Layout l, int64_t b, int w, int64_t nb) {
  if (l == Q8Layout::Blocks) return kQ8Words * b + w;
  return q8_1i_base(b) + int64_t(w) * q8_1i_stride(b, nb);
}

// ---- activation quantization ---------------------------------------------------------------

// Q8_0 / Q8_1 block rule, shared bit for bit by the CPU encoder and the quantize_q8_1 kernel:
//   amax = max |x_i|;  d = amax / 127;  id = d != 0 ? 1 / d : 0;  q_i = roundf(x_i * id)
//   (round half away from zero; |q_i| <= 127);  stored d = f16(d);
//   Q8_1 also stores s = f16(d * float(sum_i q_i)).
KILN_HD void quantize_block_q8_1(const float* x, BlockQ8_1& b) {
  float amax = 0.f;
  for (int i = 0; i < QK8_1; ++i) amax = fmaxf(amax, fabsf(x[i]));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  int sum = 0;
  for (int i = 0; i < QK8_1; ++i) {
    const int q = int(roundf(x[i] * id));
    b.qs[i] = int8_t(q);
    sum += q;
  }
  b.d = f32_to_f16(d);
  b.s = f32_to_f16(d * float(sum));
}

}  // namespace kiln
