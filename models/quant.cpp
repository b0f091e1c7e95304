#include "models/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/common/error.h"

namespace kiln {

namespace {

void check_n(DType t, int64_t n, const char* fn) {
  const int be = dtype_traits(t).block_elems;
  KILN_REQUIRE(n >= 0 && n % be == 0, fn, ": ", n, " elements is not a multiple of the ", dtype_name(t),
               " block size ", be);
}

int nearest(float x) { return int(std::lround(x)); }

void encode_q8_0(const float* x, BlockQ8_0& b) {
  BlockQ8_1 t;
  quantize_block_q8_1(x, t);  // same rule; Q8_0 simply has no sum
  b.d = t.d;
  memcpy(b.qs, t.qs, sizeof b.qs);
}

// Q4_K: x ~= (d*sc_j)*q - (dmin*m_j), q in 0..15, sc_j and m_j 6-bit. Fit each 32-sub-block by
// its min/max (the offset -dmin*m_j covers min(x, 0)), then the scales by their maxima.
void encode_q4_k(const float* x, BlockQ4K& b) {
  float scale[8], minv[8];
  float max_scale = 0.f, max_min = 0.f;
  for (int j = 0; j < 8; ++j) {
    float lo = 0.f, hi = 0.f;
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    scale[j] = (hi - lo) / 15.f;
    minv[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, minv[j]);
  }
  const float d = max_scale / 63.f, dmin = max_min / 63.f;
  b.d = f32_to_f16(d);
  b.dmin = f32_to_f16(dmin);
  const float dq = f16_to_f32(b.d), dmq = f16_to_f32(b.dmin);
  int sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = dq > 0 ? std::clamp(nearest(scale[j] / dq), 0, 63) : 0;
    mn[j] = dmq > 0 ? std::clamp(nearest(minv[j] / dmq), 0, 63) : 0;
  }
  memset(b.scales, 0, sizeof b.scales);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      b.scales[j] = uint8_t(sc[j] & 63);
      b.scales[j + 4] = uint8_t(mn[j] & 63);
    } else {
      b.scales[j + 4] = uint8_t((sc[j] & 0x0f) | ((mn[j] & 0x0f) << 4));
      b.scales[j - 4] |= uint8_t((sc[j] >> 4) << 6);
      b.scales[j] |= uint8_t((mn[j] >> 4) << 6);
    }
  }
  memset(b.qs, 0, sizeof b.qs);
  for (int j = 0; j < 8; ++j) {
    const float ds = dq * float(sc[j]), dm = dmq * float(mn[j]);
    for (int l = 0; l < 32; ++l) {
      const int i = 32 * j + l;
      const int q = ds > 0 ? std::clamp(nearest((x[i] + dm) / ds), 0, 15) : 0;
      const int g = i / 64, r = i % 64;
      b.qs[32 * g + (r % 32)] |= uint8_t(r < 32 ? q : q << 4);
    }
  }
}

// Q6_K: x ~= (d*sc_j)*q, q in -32..31 per 16-sub-block, sc_j int8.
void encode_q6_k(const float* x, BlockQ6K& b) {
  float scale[16], max_abs_scale = 0.f;
  for (int j = 0; j < 16; ++j) {
    float amax = 0.f;
    for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
    scale[j] = amax / 31.f;
    max_abs_scale = std::max(max_abs_scale, scale[j]);
  }
  const float d = max_abs_scale / 127.f;
  b.d = f32_to_f16(d);
  const float dq = f16_to_f32(b.d);
  memset(b.ql, 0, sizeof b.ql);
  memset(b.qh, 0, sizeof b.qh);
  for (int j = 0; j < 16; ++j) {
    const int sc = dq > 0 ? std::clamp(nearest(scale[j] / dq), -128, 127) : 0;
    b.scales[j] = int8_t(sc);
    const float ds = dq * float(sc);
    for (int l = 0; l < 16; ++l) {
      const int i = 16 * j + l;
      const int q = (ds != 0 ? std::clamp(nearest(x[i] / ds), -32, 31) : 0) + 32;
      const int h = i / 128, r = i % 128, quarter = r / 32, e = r % 32;
      uint8_t& lo = b.ql[64 * h + e + ((quarter & 1) ? 32 : 0)];
      lo |= uint8_t(quarter < 2 ? (q & 0x0f) : ((q & 0x0f) << 4));
      b.qh[32 * h + e] |= uint8_t(((q >> 4) & 3) << (2 * quarter));
    }
  }
}

// Row <-> blocks of E elements: each block copied through a local (rows are not aligned for
// the block type), one decode / encode per block.
template <class Block, int E, class Decode>
void decode_blocks(const uint8_t* p, float* dst, int64_t n, Decode decode) {
  for (int64_t b = 0; b < n / E; ++b) {
    Block blk;
    memcpy(&blk, p + b * sizeof blk, sizeof blk);
    decode(blk, dst + b * E);
  }
}
template <class Block, int E, class Encode>
void encode_blocks(const float* src, uint8_t* p, int64_t n, Encode encode) {
  for (int64_t b = 0; b < n / E; ++b) {
    Block blk;
    encode(src + b * E, blk);
    memcpy(p + b * sizeof blk, &blk, sizeof blk);
  }
}
// 16-bit floats, element by element.
template <class Decode>
void decode_halves(const uint8_t* p, float* dst, int64_t n, Decode decode) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    dst[i] = decode(h);
  }
}
template <class Encode>
void encode_halves(const float* src, uint8_t* p, int64_t n, Encode encode) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = encode(src[i]);
    memcpy(p + 2 * i, &h, 2);
  }
}

}  // namespace

void decode_row(DType t, const void* src, float* dst, int64_t n) {
  check_n(t, n, "decode_row");
  const auto* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32: memcpy(dst, p, size_t(n) * 4); return;
    case DType::F16: return decode_halves(p, dst, n, f16_to_f32);
    case DType::BF16: return decode_halves(p, dst, n, bf16_to_f32);
    case DType::Q8_0: return decode_blocks<BlockQ8_0, QK8_0>(p, dst, n, decode_q8_0);
    case DType::Q8_1: return decode_blocks<BlockQ8_1, QK8_1>(p, dst, n, decode_q8_1);
    case DType::Q4_K: return decode_blocks<BlockQ4K, QK_K>(p, dst, n, decode_q4_k);
    case DType::Q6_K: return decode_blocks<BlockQ6K, QK_K>(p, dst, n, decode_q6_k);
  }
  fail("decode_row: unknown type id ", uint32_t(t));
}

void encode_row(DType t, const float* src, void* dst, int64_t n) {
  check_n(t, n, "encode_row");
  auto* p = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32: memcpy(p, src, size_t(n) * 4); return;
    case DType::F16: return encode_halves(src, p, n, f32_to_f16);
    case DType::BF16: return encode_halves(src, p, n, f32_to_bf16);
    case DType::Q8_0: return encode_blocks<BlockQ8_0, QK8_0>(src, p, n, encode_q8_0);
    case DType::Q8_1: return encode_blocks<BlockQ8_1, QK8_1>(src, p, n, quantize_block_q8_1);
    case DType::Q4_K: return encode_blocks<BlockQ4K, QK_K>(src, p, n, encode_q4_k);
    case DType::Q6_K: return encode_blocks<BlockQ6K, QK_K>(src, p, n, encode_q6_k);
  }
  fail("encode_row: unknown type id ", uint32_t(t));
}

std::vector<float> dequantize(DType t, const void* src, int64_t rows, int64_t cols) {
  std::vector<float> out(size_t(rows * cols));
  const size_t rb = row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r)
    decode_row(t, static_cast<const uint8_t*>(src) + size_t(r) * rb, out.data() + r * cols, cols);
  return out;
}

}  // namespace kiln
