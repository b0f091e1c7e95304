// Reference for kernels/embed.cu: token ids -> dequantized, scaled embedding rows.
//   out[t*n + i] = decode(table row ids[t])[i] * scale
// decode = the per-block meaning in kernels/common/blocks.h (via models/quant.h decode_row) for
// Q8_0 / Q4_K / Q6_K / F16 / BF16 / F32. T=float: the product rounded to float (bit-exact with the
// kernel); T=double: double(decoded) * double(scale). The kernel's fused-norm variant is
// ref::embed<float> followed by ref::rmsnorm_fused<float> (reference/rmsnorm.h).
#pragma once

#include <cstdint>

#include "kernels/common/dtype.h"

namespace kiln::ref {

template <class T>
void embed(DType type, const void* table, int64_t n_vocab, int64_t n, const int32_t* ids, int64_t n_tokens,
           float scale, T* out);

}  // namespace kiln::ref
