// Qwen3 on the GPU: one forward step for T tokens at positions d_pos[0..T), composed from kiln's
// kernels. Read top to bottom; the CPU spec is reference/qwen3.cpp.
//
// Kernels per decode token (T = 1; 8B: 363, counted from the captured graph): embed (+ layer-0
// norm), then per layer 10: Q/K/V matvecs in one launch, head_norm_dual (RoPE and the KV-cache
// append fused), attention (split + merge: 2; the merge writes the o-proj's Q8_1 input; 8 kv
// heads keep the merge launch: attention_decode_splits, DecodeMerge), o-proj
// with the residual add fused, ffn norm, gate/up, SwiGLU, down with the residual add fused, next
// norm; then output projection and argmax (which also advances the position).
#include <cmath>

#include "kernels/attention.cuh"
#include "kernels/embed.cuh"
#include "kernels/gelu_tanh_mul_strided.cuh"
#include "kernels/head_norm_dual.cuh"
#include "kernels/quantize_q8_1.cuh"
#include "kernels/rmsnorm.cuh"
#include "runner/engine.h"

namespace kiln {

void Qwen3::step(Engine& e, int T, bool decode) {
  const ModelConfig& c = e.cfg_;
  Engine::Acts& a = e.a_;
  cudaStream_t s = e.stream_;
  const int d = c.d_model, L = c.n_layer;

  const Engine::Tensor& embd = e.t("token_embd.weight");
  auto qkv = [&](int il) {  // layer il's attention matrices
    Engine::Group g;
    g.add(e.t(blk(il, "attn_q"))).add(e.t(blk(il, "attn_k"))).add(e.t(blk(il, "attn_v")));
    return g;
  };
  // Every Q8_1 producer writes the layout its readers ask for (Engine::x_layout).
  auto qkv_layout = [&](int il) { return e.x_layout(qkv(il)); };
  e.op("embed", [&] {
    EmbedOp op;
    op.q_layout = qkv_layout(0);
    op.type = embd.w.type;
    op.table = embd.w.data;
    op.n_vocab = c.n_vocab;
    op.n = d;
    op.ids = a.ids;
    op.n_tokens = T;
    op.scale = c.embed_scale;
    op.out = a.x;
    op.eps = c.norm_eps;
    op.w = e.t(blk(0, "attn_norm")).f32();
    op.norm_out = a.xn;
    op.norm_q = a.xq;
    embed(op, s);
  });

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
    const LayerConfig& l = c.layers[size_t(il)];
    const int qd = l.n_head * l.head_dim, kvd = l.n_head_kv * l.head_dim;
    {
      float* ys[3] = {a.q, a.k, a.v};
      e.matmul_multi(qkv(il), ys, a.xn, a.xq, T);
    }
    const Engine::Kv& kv = e.kv_[size_t(il)];
    e.op("head_norm_dual", [&] {  // + RoPE of Q, K and the append of K, V to the cache
      HeadNormOp op;
      op.n_tokens = T;
      op.n_q_heads = l.n_head;
      op.n_kv_heads = l.n_head_kv;
      op.head_dim = l.head_dim;
      op.eps = c.norm_eps;
      op.q = a.q;
      op.q_stride = qd;
      op.wq = e.t(blk(il, "attn_q_norm")).f32();
      op.k = a.k;
      op.k_stride = kvd;
      op.wk = e.t(blk(il, "attn_k_norm")).f32();
      op.v = a.v;  // not normed: only appended
      op.v_stride = kvd;
      op.norm_v = false;
      op.pos = a.pos;
      op.table = e.rope_full_.data();
      op.n_pos = e.rope_pos_;
      op.n_rot = l.n_rot;
      op.k_cache = kv.k;
      op.v_cache = kv.v;
      op.cache_cap = kv.cap;
      head_norm_dual(op, s);
    });
    const Engine::Tensor& wo = e.t(blk(il, "attn_output"));
    const bool wo_q8 = gemm_n_path(wo.w.type, T) == GemmNPath::Int8Dp4a;  // o-proj reads Q8_1
    if (decode)
      e.op("attention_decode", [&] {
        attention_decode(a.q, 0, kv.k, kv.v, kv.cap, l.n_head, l.n_head_kv, l.head_dim, c.attn_scale, 0, a.pos,
                         e.attn_splits_[size_t(il)], a.attn_ws, a.attn_ws_bytes, a.attn,
                         wo_q8 ? a.attn_q : nullptr, s, Engine::kDecodeAttention,
                         /*kv_settled=*/true,  // position and earlier rows: from earlier steps
                         DecodeMerge::Auto, e.x_layout(wo));
      });
    else
      e.op("attention_prefill", [&] {
        attention_prefill(a.q, qd, T, a.pos, kv.k, kv.v, kv.cap, l.n_head, l.n_head_kv, l.head_dim, c.attn_scale, 0,
                          a.attn, s, PrefillPath::Auto, e.opt_.prefill_attention);
      });
    // Decode's merge writes the o-proj's Q8_1 input itself; prefill quantizes in a launch.
    if (!decode && wo_q8) e.op("quantize_q8_1", [&] { quantize_q8_1(a.attn, T, qd, a.attn_q, s, e.x_layout(wo)); });
    e.matmul(wo, a.attn, a.attn_q, T, a.x, Epilogue::Add);  // x += o-proj (residual fused)
    {
      Engine::Group gu;
      gu.add(e.t(blk(il, "ffn_gate"))).add(e.t(blk(il, "ffn_up")));
      norm(e.t(blk(il, "ffn_norm")).f32(), e.x_layout(gu));
      float* ys[2] = {a.g, a.u};
      e.matmul_multi(gu, ys, a.xn, a.xq, T);
    }
    const Engine::Tensor& wd = e.t(blk(il, "ffn_down"));
    const bool down_q8 = gemm_n_path(wd.w.type, T) == GemmNPath::Int8Dp4a;
    e.op("silu_mul", [&] {
      GatedMulOp op;
      op.q_layout = e.x_layout(wd);
      op.act = GatedAct::Silu;
      op.gate = a.g;
      op.gate_stride = l.n_ff;
      op.b = a.u;
      op.b_stride = l.n_ff;
      op.n_tokens = T;
      op.n = l.n_ff;
      op.out = a.act;
      op.out_q = down_q8 ? a.act_q : nullptr;  // Q8_1 only for the integer path
      gelu_tanh_mul_strided(op, s);
    });
    e.matmul(wd, a.act, a.act_q, T, a.x, Epilogue::Add);  // x += FFN
    if (il + 1 < L)
      norm(e.t(blk(il + 1, "attn_norm")).f32(), qkv_layout(il + 1));
    else
      norm(e.t("output_norm.weight").f32(), e.x_layout(e.output_weight(embd)));
  }

  e.output_argmax(embd, T, decode);
}

}  // namespace kiln
