// NEOX RoPE, Q and K in one launch, in place, positions read from device memory (one captured
// graph serves every decode step; batched positions for prefill). cos/sin come from a table built
// once on the host by ref::rope_table (reference/rope.h) -- per-layer theta, freq factors
// (Gemma 4 `rope_freqs`) and partial rotary (n_rot < head_dim) are all in the table -- uploaded as
// float2 [n_pos][n_rot/2]. Pair (x[i], x[i + n_rot/2]), i < n_rot/2:
//   x0' = x0*c - x1*s;  x1' = x0*s + x1*c;   dims >= n_rot untouched.
// Contract: bit-exact vs ref::rope_neox<float> (which evaluates the same table entries);
// ref::rope_neox<double> bounds it. A position outside [0, n_pos) writes NaN into its pairs.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln {

struct RopeOp {
  float* q = nullptr;  // [T][n_q_heads][head_dim] with token stride q_stride (elements)
  int64_t q_stride = 0;
  int n_q_heads = 0;
  float* k = nullptr;  // optional, [T][n_kv_heads][head_dim], token stride k_stride
  int64_t k_stride = 0;
  int n_kv_heads = 0;
  int head_dim = 0, n_rot = 0;
  int64_t n_tokens = 0;
  const int32_t* pos = nullptr;  // [T], device memory
  const float2* table = nullptr; // [n_pos][n_rot/2] (cos, sin)
  int64_t n_pos = 0;
};

void rope(const RopeOp& op, cudaStream_t stream);

}  // namespace kiln
