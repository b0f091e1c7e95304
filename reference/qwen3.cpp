// Qwen3 (GGUF arch `qwen3`), reference forward pass: the model, top to bottom.
//
// Semantics follow llama.cpp's src/models/qwen3.cpp and DESIGN.md §7:
//   x = token_embd[tok]
//   per layer:
//     h = RMSNorm(x) ; q = RMSNorm_head(Wq h) ; k = RMSNorm_head(Wk h) ; v = Wv h
//     RoPE NEOX on q, k (θ from the file) ; K/V appended to the cache
//     a = softmax(q·k / sqrt(head_dim)) v over the causal past, GQA (head h reads KV head h / group)
//     x = x + Wo a
//     x = x + Wdown (silu(Wgate RMSNorm(x)) * Wup RMSNorm(x))          (SwiGLU)
//   logits = output · RMSNorm(x)   (output.weight; token_embd when the file has none)
#include "kernels/common/error.h"
#include "reference/embed.h"
#include "reference/forward.h"
#include "reference/head_norm_dual.h"

namespace kiln::ref {

std::vector<float> Forward::qwen3(const int32_t* tokens, int n) {
  const ModelConfig& c = cfg_;
  const int64_t d = c.d_model;
  const float eps = c.norm_eps;
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) pos[size_t(t)] = n_past_ + t;

  // ---- input embedding (unscaled) ----
  const Matrix tok_embd = w_.matrix("token_embd.weight");
  std::vector<float> x(size_t(n * d));
  embed<float>(tok_embd.type, tok_embd.data, tok_embd.rows, d, tokens, n, 1.0f, x.data());

  for (int il = 0; il < c.n_layer; ++il) {
    const LayerConfig& l = c.layers[size_t(il)];
    const int hd = l.head_dim, nh = l.n_head, nkv = l.n_head_kv;

    // attention: pre-norm, projections, per-head Q/K RMSNorm with weights, RoPE NEOX, cache append
    const std::vector<float> h = rms_norm(x, w_.vec(blk(il, "attn_norm"), d), n, d, eps);
    std::vector<float> q = matmul(mode_, w_.matrix(blk(il, "attn_q")), h, n);
    std::vector<float> k = matmul(mode_, w_.matrix(blk(il, "attn_k")), h, n);
    std::vector<float> v = matmul(mode_, w_.matrix(blk(il, "attn_v")), h, n);
    head_norm_dual<float>(n, nh, nkv, hd, eps, q.data(), int64_t(nh) * hd, w_.vec(blk(il, "attn_q_norm"), hd),
                          k.data(), int64_t(nkv) * hd, w_.vec(blk(il, "attn_k_norm"), hd), nullptr, 0, nullptr,
                          0, 0.f, nullptr);
    rope(mode_, q.data(), n, nh, hd, l.n_rot, pos.data(), l.rope_theta, nullptr);
    rope(mode_, k.data(), n, nkv, hd, l.n_rot, pos.data(), l.rope_theta, nullptr);
    cache_round(mode_, k);
    cache_round(mode_, v);
    const size_t at = size_t(n_past_) * size_t(nkv) * size_t(hd);
    std::copy(k.begin(), k.end(), kv_.k(il) + at);
    std::copy(v.begin(), v.end(), kv_.v(il) + at);

    // softmax(q.k / sqrt(head_dim)) over the causal past (GQA), output projection, residual
    std::vector<float> a(size_t(n) * size_t(nh) * size_t(hd));
    attend(mode_, q.data(), kv_.k(il), kv_.v(il), n, pos.data(), n_past_ + n, nh, nkv, hd, c.attn_scale,
                     /*window=*/0, a.data());
    add_into(x, matmul(mode_, w_.matrix(blk(il, "attn_output")), a, n));

    // feed-forward: SwiGLU, residual
    const std::vector<float> hf = rms_norm(x, w_.vec(blk(il, "ffn_norm"), d), n, d, eps);
    const std::vector<float> gate = matmul(mode_, w_.matrix(blk(il, "ffn_gate")), hf, n);
    const std::vector<float> up = matmul(mode_, w_.matrix(blk(il, "ffn_up")), hf, n);
    const int64_t ff = l.n_ff;
    std::vector<float> act(size_t(n * ff));
    glu(mode_, true, gate.data(), ff, up.data(), ff, n, ff, act.data());
    add_into(x, matmul(mode_, w_.matrix(blk(il, "ffn_down")), act, n));
  }

  // ---- output ----
  const std::vector<float> hn = rms_norm(x, w_.vec("output_norm.weight", d), n, d, eps);
  return matmul(mode_, c.tied_output ? tok_embd : w_.matrix("output.weight"), hn, n);
}

}  // namespace kiln::ref
