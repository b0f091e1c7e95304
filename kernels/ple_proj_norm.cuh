// Gemma 4 per-layer inputs for T tokens and all L layers in ONE launch (one warp per
// (token, layer) slice of width P):
//   out[(t*L + l)*P + i] = ((a_i * rinv) * w[i] + e_i * row_scale) * out_scale,
//   a = proj[t][l*P + i] * proj_scale,  rinv = 1/sqrt(sum_sq(a)/P + eps)  (W = 1 canonical order),
//   e = the token's PLE row element l*P + i, dequantized inside (Q8_0 / F16 / BF16 / F32), the row
//       gathered from the table by ids[t] (device memory) or, with ids == null, row t of `rows`.
// Output layout [T][L][P] (token-major, the proj matvec's own layout): layer l's slice of token t
// starts at out + (t*L + l)*P, token stride L*P -- gelu_tanh_mul_strided reads it in place.
// Contract: bit-exact vs ref::ple_proj_norm<float>; ref::ple_proj_norm<double> bounds it.
// Limits: P <= 1024; Q8_0 rows need L*P % 32 == 0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common/dtype.h"

namespace kiln {

struct PleProjNormOp {
  const float* proj = nullptr;  // [T][L*P]
  int64_t n_tokens = 0;
  int n_layers = 0, P = 0;
  float proj_scale = 1.f;  // Gemma 4: 1/sqrt(d)
  const float* w = nullptr;  // per_layer_proj_norm [P], required
  float eps = 1e-6f;
  DType row_type = DType::F32;
  const void* rows = nullptr;  // table (with ids) or T gathered rows
  size_t row_stride = 0;       // bytes between rows
  const int32_t* ids = nullptr;  // optional, device memory
  int64_t n_rows = 0;            // rows addressable from `rows` (ids outside -> NaN slice)
  float row_scale = 1.f;   // Gemma 4: sqrt(P)
  float out_scale = 1.f;   // Gemma 4: 1/sqrt(2)
  float* out = nullptr;    // [T][L][P]
};

void ple_proj_norm(const PleProjNormOp& op, cudaStream_t stream);

}  // namespace kiln
