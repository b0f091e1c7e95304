// The pieces of a forward step both model families share: the token embedding fused with layer
// 0's norm, a layer's attention up to the o-proj's input, its gated FFN, and the output
// projection + argmax. The families compose them with their own norms, residuals and (Gemma 4)
// per-layer embeddings: runner/gemma4.cu, runner/qwen3.cu.
#include "kernels/attention.cuh"
#include "kernels/embed.cuh"
#include "kernels/head_norm_dual.cuh"
#include "kernels/quantize_q8_1.cuh"
#include "kernels/softcap_argmax.cuh"
#include "runner/engine.h"

namespace kiln {

Engine::Group Engine::qkv(int il) const {
  Group g;
  g.add(t(blk(il, "attn_q")));
  if (cfg_.layer_owns_kv(il)) g.add(t(blk(il, "attn_k"))).add(t(blk(il, "attn_v")));
  return g;
}

void Engine::embed_tokens(int T) {
  const Tensor& embd = t("token_embd.weight");
  op("embed", [&] {
    EmbedOp o;
    o.q_layout = x_layout(qkv(0));  // every Q8_1 producer writes the layout its readers ask for
    o.type = embd.w.type;
    o.table = embd.w.data;
    o.n_vocab = cfg_.n_vocab;
    o.n = cfg_.d_model;
    o.ids = a_.ids;
    o.n_tokens = T;
    o.scale = cfg_.embed_scale;
    o.out = a_.x;
    o.eps = cfg_.norm_eps;
    o.w = t(blk(0, "attn_norm")).f32();
    o.norm_out = a_.xn;
    o.norm_q = a_.xq;
    embed(o, stream_);
  });
}

const Engine::Tensor& Engine::attention(int il, int T, bool decode, bool norm_v) {
  const LayerConfig& l = cfg_.layers[size_t(il)];
  const bool owns_kv = cfg_.layer_owns_kv(il);
  const int qd = l.n_head * l.head_dim, kvd = l.n_head_kv * l.head_dim;
  {
    float* ys[3] = {a_.q, a_.k, a_.v};
    matmul_multi(qkv(il), ys, a_.xn, a_.xq, T);
  }
  const Kv& kv = kv_[size_t(il)];  // a KV-shared layer's points at its source layer's cache
  op("head_norm_dual", [&] {
    HeadNormOp o;
    o.n_tokens = T;
    o.n_q_heads = l.n_head;
    o.n_kv_heads = l.n_head_kv;
    o.head_dim = l.head_dim;
    o.eps = cfg_.norm_eps;
    o.q = a_.q;
    o.q_stride = qd;
    o.wq = t(blk(il, "attn_q_norm")).f32();
    if (owns_kv) {
      o.k = a_.k;
      o.k_stride = kvd;
      o.wk = t(blk(il, "attn_k_norm")).f32();
      o.v = a_.v;
      o.v_stride = kvd;
      o.norm_v = norm_v;
      o.k_cache = kv.k;
      o.v_cache = kv.v;
      o.cache_cap = kv.cap;
    }
    o.pos = a_.pos;
    o.table = l.sliding ? rope_swa_.data() : rope_full_.data();
    o.n_pos = rope_pos_;
    o.n_rot = l.n_rot;
    head_norm_dual(o, stream_);
  });
  const int window = l.sliding ? cfg_.sliding_window : 0;
  const Tensor& wo = t(blk(il, "attn_output"));
  const bool wo_q8 = gemm_n_path(wo.w.type, T) == GemmNPath::Int8Dp4a;  // o-proj reads Q8_1
  if (decode)
    op("attention_decode", [&] {
      attention_decode(a_.q, 0, kv.k, kv.v, kv.cap, l.n_head, l.n_head_kv, l.head_dim, cfg_.attn_scale, window, a_.pos,
                       attn_splits_[size_t(il)], a_.attn_ws, a_.attn_ws_bytes, a_.attn, wo_q8 ? a_.attn_q : nullptr,
                       stream_, kDecodeAttention,
                       /*kv_settled=*/true,  // position and earlier rows: from earlier steps
                       DecodeMerge::Auto, x_layout(wo));
    });
  else
    op("attention_prefill", [&] {
      attention_prefill(a_.q, qd, T, a_.pos, kv.k, kv.v, kv.cap, l.n_head, l.n_head_kv, l.head_dim, cfg_.attn_scale,
                        window, a_.attn, stream_, PrefillPath::Auto, opt_.prefill_attention);
    });
  // Decode's merge writes the o-proj's Q8_1 input itself; prefill quantizes in a launch.
  if (!decode && wo_q8) op("quantize_q8_1", [&] { quantize_q8_1(a_.attn, T, qd, a_.attn_q, stream_, x_layout(wo)); });
  return wo;
}

Engine::Group Engine::ffn_gate_up(int il) const {
  Group g;
  g.add(t(blk(il, "ffn_gate"))).add(t(blk(il, "ffn_up")));
  return g;
}

void Engine::ffn(int il, int T, GatedAct act, float* y, Epilogue ep) {
  const int n_ff = cfg_.layers[size_t(il)].n_ff;
  {
    float* ys[2] = {a_.g, a_.u};
    matmul_multi(ffn_gate_up(il), ys, a_.xn, a_.xq, T);
  }
  const Tensor& wd = t(blk(il, "ffn_down"));
  const bool down_q8 = gemm_n_path(wd.w.type, T) == GemmNPath::Int8Dp4a;
  op(act == GatedAct::Silu ? "silu_mul" : "gelu_tanh_mul", [&] {
    GatedMulOp o;
    o.q_layout = x_layout(wd);
    o.act = act;
    o.gate = a_.g;
    o.gate_stride = n_ff;
    o.b = a_.u;
    o.b_stride = n_ff;
    o.n_tokens = T;
    o.n = n_ff;
    o.out = a_.act;
    o.out_q = down_q8 ? a_.act_q : nullptr;  // Q8_1 only for the integer path
    gelu_tanh_mul_strided(o, stream_);
  });
  matmul(wd, a_.act, a_.act_q, T, y, ep);
}

void Engine::output_argmax(const Tensor& tied, int T, bool decode) {
  const int rows = (decode || opt_.all_logits) ? T : 1;
  const size_t off = size_t(T - rows), d = size_t(cfg_.d_model);
  matmul(output_weight(tied), a_.xn + off * d, a_.xq + off * (d / 32), rows, a_.logits, Epilogue::Store);
  op("softcap_argmax", [&] {
    SoftcapArgmaxOp o;
    o.logits = a_.logits;
    o.rows = rows;
    o.n = cfg_.n_vocab;
    o.cap = cfg_.final_softcap;
    o.capped = a_.capped;
    o.idx = a_.next;  // row r's argmax at next[r]
    o.workspace = a_.argmax_ws;
    if (decode) o.feed = a_.ids, o.pos = a_.pos;  // T = 1: the next step's input and position
    softcap_argmax(o, stream_);
  });
  if (rows > 1)  // the decode input after a prefill is the last row's argmax (set_decode_input_kernel)
    KILN_CUDA_CHECK(cudaMemcpyAsync(a_.next, a_.next + rows - 1, 4, cudaMemcpyDeviceToDevice, stream_));
}

}  // namespace kiln
