// quantize_q8_1: float activations [rows][K] -> Q8_1 blocks [rows][K/32], the input of the
// gemm_n integer path (kernels/gemm_n.cuh). Rule: quantize_block_q8_1 (kernels/common/blocks.h).
// CONTRACT: bit-exact vs ref::quantize_q8_1 (same bytes): the block max |x| is order-independent,
// d = amax/127, 1/d, x*(1/d) and roundf are single IEEE operations on both sides, the q sum is an
// integer. Requirements (host-checked, kiln::Error): K a positive multiple of 32, rows >= 1,
// non-null pointers, out 4-byte aligned. Never allocates or synchronizes.
// Layout: row r is the column at out + r * (K/32), its blocks in `layout` (kernels/common/blocks.h;
// Blocks: block b at out[r * (K/32) + b]); 8 threads per block, 4 elements each.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/blocks.h"

namespace kiln {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out, cudaStream_t s,
                   Q8Layout layout = Q8Layout::Blocks);

#if defined(__CUDACC__)
// The device forms of quantize_block_q8_1, for kernels that write Q8_1 for the next matvec
// (same bytes as the rule: amax is order-independent, the q sum an integer).
namespace q8dev {

// One Q8_1 column in either layout (kernels/common/blocks.h): where each 32-bit word goes.
struct Q8Col {
  BlockQ8_1* col;  // the column's first block (column start in either layout)
  int64_t nb;      // blocks in the column
  Q8Layout layout;
  __device__ __forceinline__ uint32_t* word(int64_t b, int w) const {
    return reinterpret_cast<uint32_t*>(col) + q8_1_word(layout, b, w, nb);
  }
};

__device__ __forceinline__ uint32_t ds_word(float d, int sum) {
  return uint32_t(f32_to_f16(d)) | (uint32_t(f32_to_f16(d * float(sum))) << 16);
}

// Block b over 8 consecutive lanes: lane-in-group `sub` holds elements 4*sub..4*sub+3.
// Every lane of the warp must call it (inactive groups pass active = false).
__device__ __forceinline__ void q8_1_group8(float4 v, bool active, const Q8Col& out, int64_t b, int sub) {
  if (!active) v = make_float4(0.f, 0.f, 0.f, 0.f);
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
  for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  const int q0 = int(roundf(v.x * id)), q1 = int(roundf(v.y * id));
  const int q2 = int(roundf(v.z * id)), q3 = int(roundf(v.w * id));
  int sum = q0 + q1 + q2 + q3;
  for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (!active) return;
  const uint32_t packed = (uint32_t(uint8_t(int8_t(q0)))) | (uint32_t(uint8_t(int8_t(q1))) << 8) |
                          (uint32_t(uint8_t(int8_t(q2))) << 16) | (uint32_t(uint8_t(int8_t(q3))) << 24);
  *out.word(b, 1 + sub) = packed;
  if (sub == 0) *out.word(b, 0) = ds_word(d, sum);
}

// Block b over a whole warp: lane l holds element l. Every lane must call it.
__device__ __forceinline__ void q8_1_warp(float v, const Q8Col& out, int64_t b) {
  float amax = fabsf(v);
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float d = amax / 127.f;
  const float id = d != 0.f ? 1.f / d : 0.f;
  const int q = int(roundf(v * id));
  int sum = q;
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const int lane = threadIdx.x & 31;
  reinterpret_cast<int8_t*>(out.word(b, 1 + lane / 4))[lane % 4] = int8_t(q);
  if (lane == 0) *out.word(b, 0) = ds_word(d, sum);
}

}  // namespace q8dev
#endif  // __CUDACC__

}  // namespace kiln
