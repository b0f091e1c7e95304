// Reference for kernels/quantize_q8_1.cu: T rows of K floats -> T rows of K/32 Q8_1 blocks.
// Bit-exact contract: the kernel produces the same bytes (rule: quantize_block_q8_1 in
// kernels/common/blocks.h).
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln::ref {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out);

// The same bytes in another column layout (kernels/common/blocks.h): rows columns of nb blocks
// each (column r at in + r * nb), from Blocks into `to` (Blocks: a copy). in != out.
void q8_1_to_layout(const BlockQ8_1* in, int64_t rows, int64_t nb, Q8Layout to, BlockQ8_1* out);

}  // namespace kiln::ref
