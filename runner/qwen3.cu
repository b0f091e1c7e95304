// Qwen3 on the GPU: one forward step for T tokens at positions d_pos[0..T), composed from kiln's
// kernels. Read top to bottom (the pieces both families share are in runner/step_shared.cu);
// the CPU spec is reference/qwen3.cpp.
//
// Kernels per decode token (T = 1; 8B: 363, counted from the captured graph): embed (+ layer-0
// norm), then per layer 10: Q/K/V matvecs in one launch, head_norm_dual (RoPE and the KV-cache
// append fused), attention (split + merge: 2; the merge writes the o-proj's Q8_1 input; 8 kv
// heads keep the merge launch: attention_decode_splits, DecodeMerge), o-proj
// with the residual add fused, ffn norm, gate/up, SwiGLU, down with the residual add fused, next
// norm; then output projection and argmax (which also advances the position).
#include "kernels/gelu_tanh_mul_strided.cuh"
#include "kernels/rmsnorm.cuh"
#include "runner/engine.h"

namespace kiln {

void Qwen3::step(Engine& e, int T, bool decode) {
  const ModelConfig& c = e.cfg_;
  Engine::Acts& a = e.a_;
  cudaStream_t s = e.stream_;
  const int d = c.d_model, L = c.n_layer;

  const Engine::Tensor& embd = e.t("token_embd.weight");
  e.embed_tokens(T);  // + layer 0's attention norm

  auto norm = [&](const float* w, Q8Layout q_layout) {  // xn = rmsnorm(x) * w, float + Q8_1
    e.op("rmsnorm", [&] {
      RmsnormOp op;
      op.q_layout = q_layout;
      op.rows = T;
      op.n = d;
      op.eps = c.norm_eps;
      op.x = a.x;
      op.w = w;
      op.out = a.xn;
      op.out_q = a.xq;
      rmsnorm(op, s);
    });
  };

  for (int il = 0; il < L; ++il) {
    // Q/K/V, per-head norms + RoPE + the cache append, attention (V appended unnormed).
    const Engine::Tensor& wo = e.attention(il, T, decode, /*norm_v=*/false);
    e.matmul(wo, a.attn, a.attn_q, T, a.x, Epilogue::Add);  // x += o-proj (residual fused)
    norm(e.t(blk(il, "ffn_norm")).f32(), e.x_layout(e.ffn_gate_up(il)));
    e.ffn(il, T, GatedAct::Silu, a.x, Epilogue::Add);  // x += down(silu(gate) * up)
    if (il + 1 < L)
      norm(e.t(blk(il + 1, "attn_norm")).f32(), e.x_layout(e.qkv(il + 1)));
    else
      norm(e.t("output_norm.weight").f32(), e.x_layout(e.output_weight(embd)));
  }

  e.output_argmax(embd, T, decode);
}

}  // namespace kiln
