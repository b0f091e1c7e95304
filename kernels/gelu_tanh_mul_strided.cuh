// Gated activations with strided operands, T tokens per launch:
//   out[t*n + i] = act(gate[t*gate_stride + i]) * b[t*b_stride + i]
//   act = gelu_tanh (Gemma's PLE gate and GeGLU FFN) or silu (SwiGLU), kernels/common/math.h.
// The PLE use reads b straight out of ple_proj_norm's [T][L][P] output: b = ple + l*P,
// b_stride = L*P (no transpose, no copy). GeGLU/SwiGLU: b = up (stride = its row length).
// Optional Q8_1 output (out_q, n % 32 == 0) for the next matvec; out may then be null.
// Contract: bit-exact vs ref::gelu_tanh_mul_strided<float> (floats and Q8_1 bytes);
// ref::gelu_tanh_mul_strided<double> bounds the float result.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln {

enum class GatedAct : int { GeluTanh = 0, Silu = 1 };

struct GatedMulOp {
  GatedAct act = GatedAct::GeluTanh;
  const float* gate = nullptr;
  int64_t gate_stride = 0;  // elements between tokens
  const float* b = nullptr;
  int64_t b_stride = 0;
  int64_t n_tokens = 0, n = 0;
  float* out = nullptr;         // [T][n] (optional if out_q)
  BlockQ8_1* out_q = nullptr;   // [T][n/32] (optional)
  Q8Layout q_layout = Q8Layout::Blocks;  // of out_q's columns (kernels/common/blocks.h)
};

void gelu_tanh_mul_strided(const GatedMulOp& op, cudaStream_t stream);

}  // namespace kiln
