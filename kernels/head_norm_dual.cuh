// Per-head RMSNorm of Q and K (each with its own weight), optional weightless RMSNorm of V and
// optional NEOX RoPE of Q and K after their norm, optional append of the final K and V rows to
// the layer's KV cache (kv_append fused) -- all in ONE launch (one warp per head).
// Rows are [token][head][head_dim] with token strides, so Q, K, V may sit in one fused-QKV
// buffer; in place. head_dim <= 512 (128/256/512 in kiln's models; any value works).
// Sum of squares: canonical order with W = 1 (reference/rmsnorm.h); y = (x * rinv) * w.
// RoPE: same table and rotation as kernels/rope.cuh (table from ref::rope_table).
// Cache rows: exactly kv_append's (kernels/attention.cuh: FP16 round to nearest even, row
// pos[t] % cap, tokens with pos < 0 skipped).
// Contract: bit-exact vs ref::head_norm_dual<float> (+ ref::kv_append of its K/V rows for the
// cache); ref::head_norm_dual<double> bounds it.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kiln {

struct HeadNormOp {
  int64_t n_tokens = 0;
  int n_q_heads = 0, n_kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  float* q = nullptr;  // optional (null: skipped)
  int64_t q_stride = 0;
  const float* wq = nullptr;  // null: weightless. wq / wk are read before the PDL wait (pdl.cuh)
  float* k = nullptr;  // optional
  int64_t k_stride = 0;
  const float* wk = nullptr;
  float* v = nullptr;  // optional, no RoPE
  int64_t v_stride = 0;
  bool norm_v = true;  // v: weightless norm in place (Gemma 4); false: rows only appended (Qwen3)
  const int32_t* pos = nullptr;   // device int32[n_tokens]: needed by RoPE and the cache append
  // optional RoPE on q and k (table == null: none)
  const float2* table = nullptr;  // [n_pos][n_rot/2] (cos, sin)
  int64_t n_pos = 0;
  int n_rot = 0;
  // optional cache append (k_cache == null: none): needs k, v and pos; [cap][n_kv_heads][head_dim]
  uint16_t* k_cache = nullptr;
  uint16_t* v_cache = nullptr;
  int64_t cache_cap = 0;
};

void head_norm_dual(const HeadNormOp& op, cudaStream_t stream);

}  // namespace kiln
