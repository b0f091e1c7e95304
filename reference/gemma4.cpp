// Gemma 4 (GGUF arch `gemma4`), reference forward pass: the model, top to bottom.
//
// Semantics follow llama.cpp's src/models/gemma4-iswa.cpp (the file kiln's parity goldens come
// from) and DESIGN.md §7:
//   x      = token_embd[tok] * sqrt(d)
//   ple    = (RMSNorm_slice(per_layer_model_proj · x / sqrt(d)) + per_layer_token_embd[tok] * sqrt(P))
//            / sqrt(2)                      -- P-wide input for every layer, computed once
//   per layer (sliding or full, each with its own head_dim, rope θ, rotary width):
//     h   = RMSNorm(x) ; q = RMSNorm_head(Wq h) ; k = RMSNorm_head(Wk h) ; v = RMSNorm_head(Wv h, no weight)
//     RoPE NEOX on q, k (full layers divide frequencies by rope_freqs) ; K/V appended to the cache,
//     or, for the trailing KV-shared layers, the cache of an earlier layer of the same kind is read
//     a   = softmax(1.0 * q·k) v over the causal (and, on sliding layers, windowed) past
//     x   = x + RMSNorm(Wo a)                                  (post-attention norm)
//     x   = x + RMSNorm(Wdown (gelu_tanh(Wgate RMSNorm(x)) * Wup RMSNorm(x)))   (post-FFN norm)
//     x   = x + RMSNorm(Wproj (gelu_tanh(Winp_gate x) * ple[layer]))            (PLE, post norm)
//     x   = x * layer_output_scale
//   logits = softcap(token_embd · RMSNorm(x))   (tied output; softcap c·tanh(z/c))
#include <cmath>

#include "kernels/common/error.h"
#include "reference/embed.h"
#include "reference/forward.h"
#include "reference/head_norm_dual.h"
#include "reference/ple_proj_norm.h"
#include "reference/softcap_argmax.h"

namespace kiln::ref {

std::vector<float> Forward::gemma4(const int32_t* tokens, int n) {
  const ModelConfig& c = cfg_;
  const int64_t d = c.d_model, L = c.n_layer, P = c.ple_dim;
  const float eps = c.norm_eps;
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) pos[size_t(t)] = n_past_ + t;

  // ---- input embedding, scaled by sqrt(d) ----
  const Matrix tok_embd = w_.matrix("token_embd.weight");
  std::vector<float> x(size_t(n * d));
  embed<float>(tok_embd.type, tok_embd.data, tok_embd.rows, d, tokens, n, c.embed_scale, x.data());

  // ---- per-layer inputs (PLE) for all layers at once: ple[t][il][i], i < P ----
  //   ple = (RMSNorm_P(per_layer_model_proj · x / sqrt(d)) + per_layer_token_embd[tok] * sqrt(P)) / sqrt(2)
  std::vector<float> ple;
  if (P) {
    const std::vector<float> proj = matmul(mode_, w_.matrix("per_layer_model_proj.weight"), x, n);
    const Matrix ple_embd = w_.matrix("per_layer_token_embd.weight");
    ple.resize(size_t(n * L * P));
    ple_proj_norm<float>(proj.data(), n, int(L), int(P), 1.0f / std::sqrt(float(d)),
                         w_.vec("per_layer_proj_norm.weight", P), eps, ple_embd.type, ple_embd.data,
                         row_bytes(ple_embd.type, ple_embd.cols), tokens, std::sqrt(float(P)),
                         1.0f / std::sqrt(2.0f), ple.data());
  }

  // ---- the layers ----
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerConfig& l = c.layers[size_t(il)];
    const int hd = l.head_dim, nh = l.n_head, nkv = l.n_head_kv;
    const float* freq_factors = l.rope_freq_factors ? w_.vec("rope_freqs.weight", l.n_rot / 2) : nullptr;

    // attention: pre-norm; Q (and, on layers that own a cache, K and V) projections; per-head
    // RMSNorm of Q and K with weights, of V without; RoPE NEOX on Q and K; K/V appended
    const std::vector<float> h = rms_norm(x, w_.vec(blk(il, "attn_norm"), d), n, d, eps);
    std::vector<float> q = matmul(mode_, w_.matrix(blk(il, "attn_q")), h, n);
    if (c.layer_owns_kv(il)) {
      std::vector<float> k = matmul(mode_, w_.matrix(blk(il, "attn_k")), h, n);
      std::vector<float> v = matmul(mode_, w_.matrix(blk(il, "attn_v")), h, n);
      head_norm_dual<float>(n, nh, nkv, hd, eps, q.data(), int64_t(nh) * hd, w_.vec(blk(il, "attn_q_norm"), hd),
                            k.data(), int64_t(nkv) * hd, w_.vec(blk(il, "attn_k_norm"), hd), v.data(),
                            int64_t(nkv) * hd, nullptr, 0, 0.f, nullptr);
      rope(mode_, k.data(), n, nkv, hd, l.n_rot, pos.data(), l.rope_theta, freq_factors);
      cache_round(mode_, k);
      cache_round(mode_, v);
      const size_t at = size_t(n_past_) * size_t(nkv) * size_t(hd);
      std::copy(k.begin(), k.end(), kv_.k(il) + at);
      std::copy(v.begin(), v.end(), kv_.v(il) + at);
    } else {
      head_norm_dual<float>(n, nh, nkv, hd, eps, q.data(), int64_t(nh) * hd, w_.vec(blk(il, "attn_q_norm"), hd),
                            nullptr, 0, nullptr, nullptr, 0, nullptr, 0, 0.f, nullptr);
    }
    rope(mode_, q.data(), n, nh, hd, l.n_rot, pos.data(), l.rope_theta, freq_factors);
    // softmax(1.0 * q.k) over the causal past, windowed on sliding layers; KV-shared layers read
    // the cache of their source layer (written earlier in this same pass)
    const int src = l.kv_source;
    std::vector<float> a(size_t(n) * size_t(nh) * size_t(hd));
    attend(mode_, q.data(), kv_.k(src), kv_.v(src), n, pos.data(), n_past_ + n, nh, nkv, hd, c.attn_scale,
                     l.sliding ? c.sliding_window : 0, a.data());
    const std::vector<float> o = matmul(mode_, w_.matrix(blk(il, "attn_output")), a, n);
    add_into(x, rms_norm(o, w_.vec(blk(il, "post_attention_norm"), d), n, d, eps));

    // feed-forward: GeGLU (tanh GELU on the gate), post-norm, residual
    const std::vector<float> hf = rms_norm(x, w_.vec(blk(il, "ffn_norm"), d), n, d, eps);
    const std::vector<float> gate = matmul(mode_, w_.matrix(blk(il, "ffn_gate")), hf, n);
    const std::vector<float> up = matmul(mode_, w_.matrix(blk(il, "ffn_up")), hf, n);
    const int64_t ff = l.n_ff;
    std::vector<float> act(size_t(n * ff));
    glu(mode_, false, gate.data(), ff, up.data(), ff, n, ff, act.data());
    const std::vector<float> f = matmul(mode_, w_.matrix(blk(il, "ffn_down")), act, n);
    add_into(x, rms_norm(f, w_.vec(blk(il, "post_ffw_norm"), d), n, d, eps));

    // per-layer embedding: gelu(inp_gate · x) * ple[., il], projected back to d, post-norm, residual
    if (P) {
      const std::vector<float> g = matmul(mode_, w_.matrix(blk(il, "inp_gate")), x, n);
      std::vector<float> gp(size_t(n * P));
      glu(mode_, false, g.data(), P, ple.data() + il * P, L * P, n, P, gp.data());
      const std::vector<float> pr = matmul(mode_, w_.matrix(blk(il, "proj")), gp, n);
      add_into(x, rms_norm(pr, w_.vec(blk(il, "post_norm"), d), n, d, eps));
    }

    // the whole residual stream is scaled by the layer's output scale
    scale_into(x, w_.vec(blk(il, "layer_output_scale"), 1)[0]);
  }

  // ---- output: final norm, tied (or separate) projection, softcap c * tanh(z / c) ----
  const std::vector<float> hn = rms_norm(x, w_.vec("output_norm.weight", d), n, d, eps);
  const std::vector<float> z = matmul(mode_, c.tied_output ? tok_embd : w_.matrix("output.weight"), hn, n);
  if (c.final_softcap <= 0) return z;
  std::vector<float> logits(z.size());
  std::vector<int32_t> best(static_cast<size_t>(n));
  softcap_argmax<float>(z.data(), n, c.n_vocab, c.final_softcap, logits.data(), best.data());
  return logits;
}

}  // namespace kiln::ref
