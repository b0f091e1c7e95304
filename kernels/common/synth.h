// Synthetic weight blocks, generated per block from a counter-based hash: block i of a tensor
// depends only on (tensor key, i), so a file writer on the CPU and a fill kernel on the GPU
// produce identical bytes, in any order and in parallel. Values are well-formed for the format
// and have a chosen standard deviation (or a chosen constant level for norm vectors).
#pragma once

#include <cstdint>

#include "blocks.h"
#include "dtype.h"
#include "hd.h"

namespace kiln {

enum class SynthKind : uint32_t {
  Random = 0,     // zero-mean, standard deviation `a`
  Level = 1,      // a * (1 + 0.05 u), u uniform in [-1, 1): norm weights, scales
  RopeFreqs = 2,  // proportional RoPE factors: 1 for the first `a` entries, 1e30 after
};

struct SynthSpec {
  DType type;
  SynthKind kind;
  float a;
  uint64_t key;  // hash of (seed, tensor name)
};

KILN_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Counter-based stream: the k-th 64-bit word of block `block` of the tensor with `key`.
KILN_HD uint64_t synth_word(uint64_t key, uint64_t block, uint32_t k) {
  return splitmix64(key ^ splitmix64(block * 0x100000001b3ull + k));
}

// Uniform in [-1, 1) from 24 random bits.
KILN_HD float synth_unit(uint64_t bits) { return float(int32_t(bits & 0xffffffu) - 0x800000) * (1.f / 8388608.f); }

// Float value e of element index `i` (for the plain float types and the RopeFreqs kind).
KILN_HD float synth_value(const SynthSpec& s, uint64_t i) {
  if (s.kind == SynthKind::RopeFreqs) return float(i) < s.a ? 1.f : 1e30f;
  const float u = synth_unit(synth_word(s.key, i, 0));
  if (s.kind == SynthKind::Level) return s.a * (1.f + 0.05f * u);
  return s.a * 1.7320508f * u;  // uniform with standard deviation a
}

// Writes block `b` of the tensor (dtype_traits(s.type).block_bytes bytes) to dst.
KILN_HD void synth_block(const SynthSpec& s, uint64_t b, uint8_t* dst) {
  switch (s.type) {
    case DType::F32: {
      const float v = synth_value(s, b);
      memcpy(dst, &v, 4);
      return;
    }
    case DType::F16: {
      const uint16_t h = f32_to_f16(synth_value(s, b));
      memcpy(dst, &h, 2);
      return;
    }
    case DType::BF16: {
      const uint16_t h = f32_to_bf16(synth_value(s, b));
      memcpy(dst, &h, 2);
      return;
    }
    case DType::Q8_0:
    case DType::Q8_1: {
      // q uniform in [-127, 127] (std 73.6); d jittered +-25% per block around a / 73.6.
      const uint64_t w0 = synth_word(s.key, b, 0);
      const float d = s.a / 73.6f * (1.f + 0.25f * synth_unit(w0));
      int8_t qs[32];
      int sum = 0;
      for (int k = 0; k < 4; ++k) {
        const uint64_t w = synth_word(s.key, b, 1 + uint32_t(k));
        for (int j = 0; j < 8; ++j) {
          const int q = int((w >> (8 * j)) & 0xffu) % 255 - 127;
          qs[8 * k + j] = int8_t(q);
          sum += q;
        }
      }
      const uint16_t dh = f32_to_f16(d);
      memcpy(dst, &dh, 2);
      if (s.type == DType::Q8_0) {
        memcpy(dst + 2, qs, 32);
      } else {
        const uint16_t sh = f32_to_f16(f16_to_f32(dh) * float(sum));
        memcpy(dst + 2, &sh, 2);
        memcpy(dst + 4, qs, 32);
      }
      return;
    }
    case DType::Q4_K: {
      // x = d*sc*q - dmin*m with q uniform 0..15 and m ~ sc, dmin = 7.5 d: zero mean per
      // sub-block, std ~ d * 47.5 * 4.6.
      BlockQ4K blk;
      const uint64_t w0 = synth_word(s.key, b, 0);
      const float d = s.a / (47.5f * 4.61f) * (1.f + 0.25f * synth_unit(w0));
      blk.d = f32_to_f16(d);
      blk.dmin = f32_to_f16(7.5f * d);
      const uint64_t w1 = synth_word(s.key, b, 1);
      for (int k = 0; k < 12; ++k) blk.scales[k] = 0;
      for (int j = 0; j < 8; ++j) {
        const int sc = 32 + int((w1 >> (5 * j)) & 31u);                        // 32..63
        const int mn = sc - 2 + int((w1 >> (40 + 3 * (j % 8))) & 3u);           // sc-2..sc+1
        const int m = mn > 63 ? 63 : mn;
        if (j < 4) {
          blk.scales[j] = uint8_t(sc);
          blk.scales[j + 4] = uint8_t(m);
        } else {
          blk.scales[j + 4] = uint8_t((sc & 0x0f) | ((m & 0x0f) << 4));
          blk.scales[j - 4] |= uint8_t((sc >> 4) << 6);
          blk.scales[j] |= uint8_t((m >> 4) << 6);
        }
      }
      for (int k = 0; k < 16; ++k) {
        const uint64_t w = synth_word(s.key, b, 2 + uint32_t(k));
        memcpy(blk.qs + 8 * k, &w, 8);
      }
      memcpy(dst, &blk, sizeof blk);
      return;
    }
    case DType::Q6_K: {
      // q uniform in -32..31 (std 18.5); |sc| in 64..127 with random sign (rms ~97.5).
      BlockQ6K blk;
      for (int k = 0; k < 16; ++k) {
        const uint64_t w = synth_word(s.key, b, uint32_t(k));
        memcpy(blk.ql + 8 * k, &w, 8);
      }
      for (int k = 0; k < 8; ++k) {
        const uint64_t w = synth_word(s.key, b, 16 + uint32_t(k));
        memcpy(blk.qh + 8 * k, &w, 8);
      }
      const uint64_t ws = synth_word(s.key, b, 24);
      for (int j = 0; j < 16; ++j) {
        const int mag = 64 + int((ws >> (4 * j)) & 63u) % 64;
        blk.scales[j] = int8_t(((ws >> (j + 48)) & 1u) ? -mag : mag);
      }
      const uint64_t w0 = synth_word(s.key, b, 25);
      blk.d = f32_to_f16(s.a / (97.5f * 18.5f) * (1.f + 0.25f * synth_unit(w0)));
      memcpy(dst, &blk, sizeof blk);
      return;
    }
  }
}

}  // namespace kiln
