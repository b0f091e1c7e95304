// Row-level encode/decode of the block formats kiln reads (F32, F16, BF16, Q8_0, Q4_K, Q6_K)
// and Q8_1, the activation format of the integer dot-product path. Per-block meaning lives in
// kernels/common/blocks.h (shared with device code); this file adds rows, encoders and helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"

namespace kiln {

// Decodes n elements (a multiple of the block size) of type t at src into dst.
void decode_row(DType t, const void* src, float* dst, int64_t n);

// Encodes n floats (a multiple of the block size) into type t at dst. Q8_0 and Q8_1 follow the
// exact rule of quantize_block_q8_1 (kernels/common/blocks.h); Q4_K and Q6_K use a simple min/max fit (valid blocks, not
// GGML's iterative search: kiln only needs well-formed blocks with the format's error bound).
void encode_row(DType t, const float* src, void* dst, int64_t n);

// Dequantizes a whole tensor's rows: rows x cols floats.
std::vector<float> dequantize(DType t, const void* src, int64_t rows, int64_t cols);

}  // namespace kiln
