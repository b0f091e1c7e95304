// quantize_q8_1: float activations [rows][K] -> Q8_1 blocks [rows][K/32], the input of the
// gemm_n integer path (kernels/gemm_n.cuh). Rule: quantize_block_q8_1 (kernels/common/blocks.h).
// CONTRACT: bit-exact vs ref::quantize_q8_1 (same bytes): the block max |x| is order-independent,
// d = amax/127, 1/d, x*(1/d) and roundf are single IEEE operations on both sides, the q sum is an
// integer. Requirements (host-checked, kiln::Error): K a positive multiple of 32, rows >= 1,
// non-null pointers, out 4-byte aligned. Never allocates or synchronizes.
// Layout: block b of row r at out[r * (K/32) + b]; 8 threads per block, 4 elements each.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out, cudaStream_t s);

}  // namespace kiln
