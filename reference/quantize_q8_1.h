// Reference for kernels/quantize_q8_1.cu: T rows of K floats -> T rows of K/32 Q8_1 blocks.
// Bit-exact contract: the kernel produces the same bytes (rule: quantize_block_q8_1 in
// kernels/common/blocks.h).
#pragma once

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln::ref {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out);

}  // namespace kiln::ref
