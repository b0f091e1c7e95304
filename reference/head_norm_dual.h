// Reference for kernels/head_norm_dual.cu: per-head RMSNorm of Q and K (each with its own weight),
// optional weightless RMSNorm of V, optional NEOX RoPE of Q and K after the norm -- one launch on
// the GPU. Rows are [token][head][head_dim] with a token stride (elements) so Q, K, V can live in
// one fused-QKV buffer. Sum of squares: canonical order with W = 1 (reference/rmsnorm.h);
// y = (x * rinv) * w; RoPE: reference/rope.h (same cos/sin table). T=float is bit-exact with the
// kernel; T=double is the oracle.
#pragma once

#include <cstdint>

namespace kiln::ref {

// Any of q, k, v may be null (absent). pos == nullptr: no RoPE; else RoPE(n_rot, theta, ff) on
// q and k with positions pos[t].
template <class T>
void head_norm_dual(int64_t n_tokens, int n_q_heads, int n_kv_heads, int head_dim, float eps, T* q,
                    int64_t q_stride, const float* wq, T* k, int64_t k_stride, const float* wk, T* v,
                    int64_t v_stride, const int32_t* pos, int n_rot, float theta, const float* ff);

}  // namespace kiln::ref
