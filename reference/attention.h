// Reference for kernels/attention.cuh (decode, prefill, KV append).
//
// Semantics (llama.cpp's LLAMA_SWA_TYPE_STANDARD): a query at absolute position q attends to
// every cache position p with p <= q and (window == 0 || q - p < window); its weights are
// softmax_p(scale * q.k_p) and its output sum_p w_p v_p. GQA: query head h reads kv head
// h / (n_head / n_head_kv). A query with nothing to attend to (q_pos < 0) outputs zeros.
#pragma once

#include <cstdint>

#include "kernels/attention_spec.h"

namespace kiln::ref {

// The KV-cache append (kiln::kv_append, and head_norm_dual's fused append): row pos[t] % cap of
// k_cache/v_cache ([cap][row_elems] FP16 bits) gets token t's row_elems floats of k_new/v_new
// (token stride src_stride), each rounded to nearest even (kiln::f32_to_f16); pos < 0: skipped.
void kv_append(const float* k_new, const float* v_new, int64_t src_stride, int64_t T, const int32_t* pos,
               uint16_t* k_cache, uint16_t* v_cache, int64_t cap, int64_t row_elems);

// q: [n_q][n_head][hd]; k, v: [n_kv][n_head_kv][hd] holding positions 0..n_kv-1; query t at
// absolute position q_pos[t] attends to p <= q_pos[t] with (window == 0 || q_pos[t] - p < window)
// (and p < n_kv); softmax(scale * q.k) over those p; GQA: head h uses kv head h / (n_head /
// n_head_kv). out: [n_q][n_head][hd]. Straightforward two-pass softmax accumulated in T
// (T = double is the precision oracle every attention kernel is measured against).
template <class T>
void attention(const T* q, const T* k, const T* v, int64_t n_q, const int32_t* q_pos, int64_t n_kv,
               int n_head, int n_head_kv, int hd, float scale, int window, T* out);

// The decode kernel's exact float computation (bit-exact contract of attention_decode), for one
// query at position q_pos attending to k, v ([>= q_pos + 1][n_head_kv][hd], positions 0..q_pos)
// with n_splits splits. Order, per kv head (all heads of its GQA group alike):
//   range [lo, q_pos], lo = window ? max(0, q_pos - window + 1) : 0, n = q_pos - lo + 1;
//   chunk = attn::decode_chunk(n, n_splits, hd) (ceil(n / n_splits), at least decode_min_chunk(hd)); split s
//   covers [lo + s*chunk, min(lo + (s+1)*chunk, q_pos + 1)); only the first
//   attn::decode_used_splits(n, n_splits, hd) splits are non-empty, the others take no part.
//   In a split, tile i covers tw = attn::decode_warp_tile(chunk) (8, 16 or kDecodeTile = 32)
//   consecutive positions from the split start; warp w = i % kDecodeWarps owns it; a warp's
//   tiles go in increasing order. Per tile and head (32 lanes, those past the tile masked):
//     score_j = (butterfly over 32 lanes of lane partials) * scale, lane l's partial being
//       fmaf chain over d in [l*E, (l+1)*E), E = hd/32 (2 for hd 64), starting at 0; butterfly:
//       for o = 16, 8, 4, 2, 1: a[i] = a[i] + a[i+o] (i < o), result a[0];
//     mt = max_j score_j; m' = max(m, mt); c = kexp(m - m'); p_j = kexp(score_j - m');
//     l = l*c + (butterfly sum of p_j over the tile's 32 lanes, p = 0 past the tile's end);
//     acc[d] = acc[d]*c, then acc[d] = fmaf(p_j, v_j[d], acc[d]) for j in order; m = m'.
//   Warps merge in order w = 0..W-1 with M = max m_w, f_w = (m_w == -inf ? 0 : kexp(m_w - M)):
//     L = L + l_w*f_w, O[d] = O[d] + acc_w[d]*f_w (from 0); the splits then merge the same way
//     in order s = 0..used-1 and out[d] = O[d] / L.
// q, out: [n_head][hd].
void attention_decode_split(const float* q, const float* k, const float* v, int32_t q_pos,
                            int n_head, int n_head_kv, int hd, float scale, int window,
                            int n_splits, float* out);

}  // namespace kiln::ref
