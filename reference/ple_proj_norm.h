// Reference for kernels/ple_proj_norm.cu: Gemma 4's per-layer inputs for T tokens and all L layers.
// For token t, layer l, i < P (a = proj[t][l*P + i] * proj_scale):
//   out[(t*L + l)*P + i] = ((a_i * rinv) * w[i] + e_i * row_scale) * out_scale
//   rinv = 1/sqrt(sum_sq_ordered(a, P, W=1) / P + eps)  (reference/rmsnorm.h order)
//   e = element l*P + i of the token's PLE row (row = ids ? rows + ids[t]*row_stride
//       : rows + t*row_stride, bytes), decoded from row_type (Q8_0 / F16 / BF16 / F32).
// Gemma 4: proj_scale = 1/sqrt(d), row_scale = sqrt(P), out_scale = 1/sqrt(2) (as floats).
// Output layout [T][L][P]: layer l's slice of token t starts at (t*L + l)*P, token stride L*P,
// which is what gelu_tanh_mul_strided reads (no transpose).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/dtype.h"

namespace kiln::ref {

template <class T>
void ple_proj_norm(const T* proj, int64_t n_tokens, int n_layers, int P, float proj_scale, const float* w,
                   float eps, DType row_type, const void* rows, size_t row_stride, const int32_t* ids,
                   float row_scale, float out_scale, T* out);

}  // namespace kiln::ref
