// Gemma 4 on the GPU: one forward step for T tokens at positions d_pos[0..T), composed from
// kiln's kernels. Read top to bottom (the pieces both families share are in runner/step_shared.cu);
// the CPU spec is reference/gemma4.cpp.
//
// Kernels per decode token (T = 1; E4B: 551 at contexts up to 1024, counted from the captured
// graph): 3 before the layers (embed + fused layer-0 attn norm, PLE projection, ple_proj_norm);
// per layer 13 (6 matvec launches, attention, 6 others): Q/K/V matvecs in one launch,
// head_norm_dual with RoPE and (own KV only) the KV-cache append, attention (the merge, which
// writes the o-proj's Q8_1 input, fused into the split kernel through a thread-block cluster
// while attention_decode_splits picks <= 16 splits -- DecodeMerge; above that a second launch,
// 593 per token), o-proj, post-attn norm + residual + ffn norm, gate/up, GeGLU, down, post-FFN norm +
// residual, PLE gate matvec, PLE GELU-mul, PLE proj, post-PLE norm + residual +
// layer_output_scale + next attn norm; then output projection and softcap/argmax (which also
// advances the position).
#include <cmath>

#include "kernels/gelu_tanh_mul_strided.cuh"
#include "kernels/ple_proj_norm.cuh"
#include "kernels/rmsnorm.cuh"
#include "runner/engine.h"

namespace kiln {

void Gemma4::step(Engine& e, int T, bool decode) {
  const ModelConfig& c = e.cfg_;
  Engine::Acts& a = e.a_;
  cudaStream_t s = e.stream_;
  const int d = c.d_model, L = c.n_layer, P = c.ple_dim;

  // Token embedding x sqrt(d), fused with layer 0's attention norm (float + Q8_1).
  const Engine::Tensor& embd = e.t("token_embd.weight");
  e.embed_tokens(T);

  // Per-layer inputs for all layers at once: RMSNorm(per_layer_model_proj . x / sqrt(d)) per
  // P-slice plus the token's PLE row x sqrt(P), times 1/sqrt(2). Layout [T][L][P].
  if (P) {
    e.matmul(e.t("per_layer_model_proj.weight"), a.x, nullptr, T, a.ple_proj, Epilogue::Store);
    const Engine::Tensor& tab = e.t("per_layer_token_embd.weight");
    e.op("ple_proj_norm", [&] {
      PleProjNormOp op;
      op.proj = a.ple_proj;
      op.n_tokens = T;
      op.n_layers = L;
      op.P = P;
      op.proj_scale = 1.f / std::sqrt(float(d));
      op.w = e.t("per_layer_proj_norm.weight").f32();
      op.eps = c.norm_eps;
      op.row_type = tab.w.type;
      op.rows = tab.w.data;
      op.row_stride = row_bytes(tab.w.type, tab.w.cols);
      op.ids = a.ids;
      op.n_rows = c.n_vocab;
      op.row_scale = std::sqrt(float(P));
      op.out_scale = 1.f / std::sqrt(2.f);
      op.out = a.ple;
      ple_proj_norm(op, s);
    });
  }

  for (int il = 0; il < L; ++il) {
    // Attention: Q (and K, V when this layer owns a cache) from the normed input; per-head
    // RMSNorm of Q and K (weights) and V (none), RoPE, the append of K and V (own KV only), then
    // attention over the layer's cache or its source layer's.
    const Engine::Tensor& wo = e.attention(il, T, decode, /*norm_v=*/true);
    e.matmul(wo, a.attn, a.attn_q, T, a.y, Epilogue::Store);
    // x += post_attention_norm(attn); xn = ffn_norm(x) (float + Q8_1).
    e.op("rmsnorm", [&] {
      RmsnormOp op;
      op.q_layout = e.x_layout(e.ffn_gate_up(il));
      op.rows = T;
      op.n = d;
      op.eps = c.norm_eps;
      op.x = a.x;
      op.y = a.y;
      op.norm_y = true;
      op.w_y = e.t(blk(il, "post_attention_norm")).f32();
      op.w = e.t(blk(il, "ffn_norm")).f32();
      op.out = a.xn;
      op.out_q = a.xq;
      rmsnorm(op, s);
    });

    // GeGLU FFN into y.
    e.ffn(il, T, GatedAct::GeluTanh, a.y, Epilogue::Store);
    // x += post_ffw_norm(ffn); Q8_1(x) feeds the PLE gate.
    e.op("rmsnorm", [&] {
      RmsnormOp op;
      op.q_layout = P ? e.x_layout(e.t(blk(il, "inp_gate"))) : Q8Layout::Blocks;
      op.rows = T;
      op.n = d;
      op.eps = c.norm_eps;
      op.x = a.x;
      op.y = a.y;
      op.norm_y = true;
      op.w_y = e.t(blk(il, "post_ffw_norm")).f32();
      op.x_q = a.xq;
      rmsnorm(op, s);
    });

    // Per-layer embedding: proj(gelu(inp_gate . x) * ple[layer]) -> post_norm -> residual.
    const float* next_norm = il + 1 < L ? e.t(blk(il + 1, "attn_norm")).f32() : e.t("output_norm.weight").f32();
    if (P) {
      e.matmul(e.t(blk(il, "inp_gate")), a.x, a.xq, T, a.pg, Epilogue::Store);
      e.op("gelu_tanh_mul_strided", [&] {
        GatedMulOp op;
        op.q_layout = e.x_layout(e.t(blk(il, "proj")));
        op.act = GatedAct::GeluTanh;
        op.gate = a.pg;
        op.gate_stride = P;
        op.b = a.ple + size_t(il) * size_t(P);
        op.b_stride = int64_t(L) * P;
        op.n_tokens = T;
        op.n = P;
        op.out = a.pact;
        op.out_q = a.pact_q;
        gelu_tanh_mul_strided(op, s);
      });
      e.matmul(e.t(blk(il, "proj")), a.pact, a.pact_q, T, a.y, Epilogue::Store);
    }
    // x = (x + post_norm(ple_out)) * layer_output_scale; xn = next norm(x).
    e.op("rmsnorm", [&] {
      RmsnormOp op;
      op.q_layout = il + 1 < L ? e.x_layout(e.qkv(il + 1)) : e.x_layout(e.output_weight(embd));
      op.rows = T;
      op.n = d;
      op.eps = c.norm_eps;
      op.x = a.x;
      op.y = P ? a.y : nullptr;
      op.norm_y = P != 0;
      op.w_y = P ? e.t(blk(il, "post_norm")).f32() : nullptr;
      op.scale = e.layer_out_scale_[size_t(il)];
      op.w = next_norm;
      op.out = a.xn;
      op.out_q = a.xq;
      rmsnorm(op, s);
    });
  }

  e.output_argmax(embd, T, decode);  // output projection (tied: token_embd), softcap, argmax
}

}  // namespace kiln
