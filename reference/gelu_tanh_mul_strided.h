// Reference for kernels/gelu_tanh_mul_strided.cu: gated activations with strided operands.
//   out[t*n + i] = act(gate[t*gate_stride + i]) * b[t*b_stride + i],  t < n_tokens, i < n
//   act = gelu_tanh (GeGLU, Gemma's PLE gate) or silu (SwiGLU), from kernels/common/math.h
//   (T=double: the same formulas with std::tanh / std::exp).
// b is the PLE slice read straight out of ple_proj_norm's [T][L][P] output (b = out + l*P,
// b_stride = L*P) or the FFN up projection. Optional Q8_1 output (n % 32 == 0): quantize_block_q8_1
// of each 32-element block of the float result.
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln::ref {

template <class T>
void gelu_tanh_mul_strided(bool silu_act, const T* gate, int64_t gate_stride, const T* b, int64_t b_stride,
                           int64_t n_tokens, int64_t n, T* out, BlockQ8_1* out_q);

}  // namespace kiln::ref
