// Embedding lookup: token ids in device memory -> dequantized, scaled rows, T tokens per launch,
// for Q8_0 / Q4_K / Q6_K / F16 / BF16 / F32 tables (per-element decode from
// kernels/common/blocks.h, same arithmetic as its per-block decode). Gemma's sqrt(d) embedding
// scale is the `scale` argument (folded at load, not a launch). The same kernel with the
// per_layer_token_embd table (width L*P, scale sqrt(P)) is the PLE row gather; ple_proj_norm can
// also gather its rows itself from the table (ids), which is what the Gemma 4 plan uses.
//
// Optional fused outputs for the first layer (one launch instead of three): x_q = Q8_1(row) for
// per_layer_model_proj, norm_out / norm_q = rmsnorm(row) * w (the layer-0 attn_norm, canonical
// W = 8 order of reference/rmsnorm.h).
//
// Contract: bit-exact vs ref::embed<float>, and for the fused outputs vs ref::embed<float> then
// ref::rmsnorm_fused<float>. Ids outside [0, n_vocab) produce a NaN row (no trap).
// Limits: fused outputs need n <= 16384; Q8_1 outputs need n % 32 == 0.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"

namespace kiln {

struct EmbedOp {
  DType type = DType::F32;
  const void* table = nullptr;  // [n_vocab][n] rows in `type`'s layout
  int64_t n_vocab = 0, n = 0;
  const int32_t* ids = nullptr;  // [n_tokens], device memory
  int64_t n_tokens = 0;
  float scale = 1.f;
  float* out = nullptr;  // [n_tokens][n], required
  // optional fused outputs
  float eps = 1e-6f;
  const float* w = nullptr;  // norm weight (null: weightless)
  float* norm_out = nullptr;
  BlockQ8_1* norm_q = nullptr;
  BlockQ8_1* x_q = nullptr;
  Q8Layout q_layout = Q8Layout::Blocks;  // of norm_q and x_q (kernels/common/blocks.h)
};

void embed(const EmbedOp& op, cudaStream_t stream);

#if defined(__CUDACC__)
namespace embeddev {

// Element i of a row of `type` at `row` (bytes), as blocks.h decodes it.
__device__ __forceinline__ float decode_elem(DType type, const uint8_t* __restrict__ row, int64_t i) {
  switch (type) {
    case DType::F32: return reinterpret_cast<const float*>(row)[i];
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[i]);
    case DType::Q8_0: {
      const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + i / QK8_0;
      return f16_to_f32(b->d) * float(b->qs[i % QK8_0]);
    }
    case DType::Q4_K: {
      const BlockQ4K& b = reinterpret_cast<const BlockQ4K*>(row)[i / QK_K];
      const int e = int(i % QK_K);
      int sc, mn;
      q4k_scale_min(b.scales, e / 32, sc, mn);
      const float ds = f16_to_f32(b.d) * float(sc), dm = f16_to_f32(b.dmin) * float(mn);
      return ds * float(q4k_quant(b, e)) - dm;
    }
    case DType::Q6_K: {
      const BlockQ6K& b = reinterpret_cast<const BlockQ6K*>(row)[i / QK_K];
      const int e = int(i % QK_K);
      return (f16_to_f32(b.d) * float(b.scales[e / 16])) * float(q6k_quant(b, e));
    }
    default: return __int_as_float(0x7fc00000);
  }
}

// Elements i0..i0+3 (i0 % 4 == 0) of a row; entries at i >= n are 0. The four share one block
// (and one Q4_K / Q6_K sub-block), so the scale is decoded once; same arithmetic as decode_elem.
__device__ __forceinline__ void decode4(DType type, const uint8_t* __restrict__ row, int64_t i0, int64_t n,
                                        float (&e)[4]) {
  if (type == DType::Q8_0 && i0 + 3 < n) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + i0 / QK8_0;
    const float d = f16_to_f32(b->d);
    const int j = int(i0 % QK8_0);
#pragma unroll
    for (int k = 0; k < 4; ++k) e[k] = d * float(b->qs[j + k]);
    return;
  }
  if (type == DType::Q4_K && i0 + 3 < n) {
    const BlockQ4K& b = reinterpret_cast<const BlockQ4K*>(row)[i0 / QK_K];
    const int j = int(i0 % QK_K);
    int sc, mn;
    q4k_scale_min(b.scales, j / 32, sc, mn);
    const float ds = f16_to_f32(b.d) * float(sc), dm = f16_to_f32(b.dmin) * float(mn);
#pragma unroll
    for (int k = 0; k < 4; ++k) e[k] = ds * float(q4k_quant(b, j + k)) - dm;
    return;
  }
  if (type == DType::Q6_K && i0 + 3 < n) {
    const BlockQ6K& b = reinterpret_cast<const BlockQ6K*>(row)[i0 / QK_K];
    const int j = int(i0 % QK_K);
    const float ds = f16_to_f32(b.d) * float(b.scales[j / 16]);
#pragma unroll
    for (int k = 0; k < 4; ++k) e[k] = ds * float(q6k_quant(b, j + k));
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) e[k] = i0 + k < n ? decode_elem(type, row, i0 + k) : 0.f;
}

}  // namespace embeddev
#endif  // __CUDACC__

}  // namespace kiln
