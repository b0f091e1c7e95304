#include "runner/engine.h"
#include "runner/skip_ops.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "kernels/attention.cuh"
#include "kernels/common/synth.h"
#include "kernels/softcap_argmax.cuh"
#include "reference/rope.h"

namespace kiln {

namespace {

// Fills blocks of a synthetic tensor on the device: the same bytes synth_fill writes into files.
__global__ void synth_fill_kernel(SynthSpec spec, uint64_t nblocks, int block_bytes, uint8_t* dst) {
  for (uint64_t b = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; b < nblocks; b += uint64_t(gridDim.x) * blockDim.x)
    synth_block(spec, b, dst + b * uint64_t(block_bytes));
}

// Start decoding after a prefill: input token = the prefill's last argmax, at position `p`.
__global__ void set_decode_input_kernel(int32_t* ids, int32_t* pos, const int32_t* next, int32_t p) {
  ids[0] = next[0];
  pos[0] = p;
}

// An F32 tensor's values on the host: from the file, or generated like the device fill when the
// weights come from a synthetic preset (the file is then a sparse hole of zeros).
std::vector<float> host_f32(const GgufFile& f, const SynthModel* synth, const std::string& name) {
  const GgufTensor& g = f.tensor(name);
  KILN_REQUIRE(g.type == DType::F32, "runner: tensor '", name, "' must be F32");
  std::vector<float> v(size_t(g.nelements));
  if (synth) {
    for (const SynthTensor& s : synth->tensors)
      if (s.name == name) {
        synth_fill(s, 0, s.nblocks(), reinterpret_cast<uint8_t*>(v.data()));
        return v;
      }
    fail("synthetic preset has no tensor '", name, "'");
  }
  memcpy(v.data(), g.data, v.size() * sizeof(float));
  return v;
}

constexpr size_t kAlign = 256;
size_t up(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

}  // namespace

// Runs before any member that touches CUDA (the stream) is built, so a machine without a GPU gets
// this message rather than a driver error.
static ModelConfig config_on_gpu(const GgufFile& file) {
  if (cuda_device_count() == 0) fail("no CUDA device found (the GPU runner needs one)");
  return parse_config(file);
}

int64_t parse_x_interleave_rows(const char* env, int64_t dflt) {
  if (!env) return dflt;
  const std::string v(env);
  const bool digits = !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) fail("KILN_X_INTERLEAVE_ROWS must be a row count (0 = never), not '", env, "'");
  return std::stoll(v);
}

Engine::Engine(const GgufFile& file, const SynthModel* synth, const EngineOptions& opt)
    : cfg_(config_on_gpu(file)), opt_(opt) {
  KILN_REQUIRE(opt_.max_ctx >= 1 && opt_.max_chunk >= 1, "Engine: max_ctx and max_chunk must be positive");
  if (opt_.max_ctx > cfg_.n_ctx)
    fail("requested context of ", opt_.max_ctx, " tokens exceeds the model's context_length ", cfg_.n_ctx);
  opt_.max_chunk = std::min(opt_.max_chunk, opt_.max_ctx);
  props_ = device_props(0);
  if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasCreate failed");
  cublasSetStream(cublas_, stream_);
  weight_bytes_per_token_ = decode_weight_bytes(file, cfg_);

  // ---- sizes: weights, KV caches, arena (everything is allocated here, nothing later) ----
  const ModelConfig& c = cfg_;
  const int T = opt_.max_chunk;
  int qdim = 0, kvdim = 0, ff = 0, max_heads = 0, max_hd = 0;
  size_t kv_elems = 0;
  std::vector<int64_t> caps(size_t(c.n_layer), 0);
  for (int il = 0; il < c.n_layer; ++il) {
    const LayerConfig& l = c.layers[size_t(il)];
    qdim = std::max(qdim, l.n_head * l.head_dim);
    kvdim = std::max(kvdim, l.n_head_kv * l.head_dim);
    ff = std::max(ff, l.n_ff);
    max_heads = std::max(max_heads, l.n_head);
    max_hd = std::max(max_hd, l.head_dim);
    if (c.layer_owns_kv(il)) {
      // A sliding layer keeps a ring of window + chunk - 1 positions (attention.cuh).
      caps[size_t(il)] = l.sliding ? std::min<int64_t>(opt_.max_ctx, int64_t(c.sliding_window) + T) : opt_.max_ctx;
      kv_elems += 2 * size_t(caps[size_t(il)]) * size_t(l.n_head_kv) * size_t(l.head_dim);
    }
  }
  // Decode split count per layer shape (head_dim differs between Gemma 4's sliding and full
  // layers); one workspace sized for the largest.
  size_t attn_ws = 0;
  for (const LayerConfig& l : c.layers) {
    attn_splits_.push_back(attention_decode_splits(l.n_head, l.n_head_kv, l.head_dim, opt_.max_ctx, props_.sm_count,
                                                   kDecodeAttention));
    attn_ws = std::max(attn_ws, attention_decode_workspace_bytes(l.n_head, l.head_dim, attn_splits_.back()));
  }
  const int logit_rows = opt_.all_logits ? T : 1;
  const int LP = c.ple_dim * c.n_layer;
  size_t tc_ws = 0;
  if (gemm_n_path(DType::Q8_0, T) == GemmNPath::TensorCore)
    for (const GgufTensor& g : file.tensors())
      if (g.ne.size() == 2 && g.name != "token_embd.weight" && g.name != "per_layer_token_embd.weight")
        tc_ws = std::max(tc_ws, gemm_n_tc_workspace_default(WeightDesc{g.type, nullptr, g.ne[1], g.ne[0]}, T));
  // The output projection in prefill runs on the last row only unless all logits are kept.
  if (opt_.all_logits && gemm_n_path(DType::Q8_0, T) == GemmNPath::TensorCore) {
    const GgufTensor& o = c.tied_output ? file.tensor("token_embd.weight") : file.tensor("output.weight");
    tc_ws = std::max(tc_ws, gemm_n_tc_workspace_default(WeightDesc{o.type, nullptr, o.ne[1], o.ne[0]}, T));
  }
  const size_t argmax_ws = softcap_argmax_workspace_bytes(logit_rows);
  const size_t d = size_t(c.d_model), nq = size_t(T);
  size_t arena = 0;
  for (size_t fl : {d, d, size_t(qdim), size_t(kvdim), size_t(kvdim), size_t(qdim), d, size_t(ff), size_t(ff),
                    size_t(ff), size_t(std::max(LP, 1)), size_t(std::max(LP, 1)), size_t(std::max(c.ple_dim, 1)),
                    size_t(std::max(c.ple_dim, 1))})
    arena += up(nq * fl * sizeof(float));
  arena += 2 * up(size_t(logit_rows) * size_t(c.n_vocab) * sizeof(float));
  for (size_t k : {d, size_t(qdim), size_t(ff), size_t(std::max(c.ple_dim, 32))}) arena += up(nq * (k / 32) * sizeof(BlockQ8_1));
  arena += 3 * up(nq * sizeof(int32_t)) + up(argmax_ws) + up(attn_ws) + up(tc_ws);

  size_t wbytes = 0;
  for (const GgufTensor& g : file.tensors()) wbytes += up(g.nbytes);
  const size_t rope_bytes = 2 * size_t(opt_.max_ctx) * size_t(max_hd / 2) * sizeof(float2);
  size_t free_b = 0, total_b = 0;
  KILN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t need = wbytes + kv_elems * 2 + arena + rope_bytes + (size_t(64) << 20);
  if (need > free_b)
    fail("the model needs ", need / 1000000, " MB of GPU memory (weights ", wbytes / 1000000, " MB, KV cache ",
         kv_elems * 2 / 1000000, " MB, activations ", arena / 1000000, " MB) but ", props_.name, " has ",
         free_b / 1000000, " MB free");

  weights_ = DeviceBuffer<uint8_t>(wbytes);
  load_weights(file, synth);

  kv_storage_ = DeviceBuffer<uint16_t>(kv_elems);
  kv_.assign(size_t(c.n_layer), Kv{});
  size_t off = 0;
  for (int il = 0; il < c.n_layer; ++il) {
    if (!c.layer_owns_kv(il)) continue;
    const LayerConfig& l = c.layers[size_t(il)];
    const size_t n = size_t(caps[size_t(il)]) * size_t(l.n_head_kv) * size_t(l.head_dim);
    kv_[size_t(il)] = Kv{kv_storage_.data() + off, kv_storage_.data() + off + n, caps[size_t(il)]};
    off += 2 * n;
  }
  for (int il = 0; il < c.n_layer; ++il) kv_[size_t(il)] = kv_[size_t(c.layers[size_t(il)].kv_source)];

  // RoPE tables, one per layer kind (theta, rotated dims and freq factors are per kind).
  rope_pos_ = opt_.max_ctx;
  for (int kind = 0; kind < 2; ++kind) {
    const LayerConfig* l = nullptr;
    for (const LayerConfig& x : c.layers)
      if (x.sliding == (kind == 1)) l = &x;
    if (!l) continue;
    const float* ff_host = nullptr;
    std::vector<float> ffv;
    if (l->rope_freq_factors) {
      ffv = host_f32(file, synth, "rope_freqs.weight");
      ff_host = ffv.data();
    }
    const std::vector<float> tab = ref::rope_table(opt_.max_ctx, l->n_rot, l->rope_theta, ff_host);
    DeviceBuffer<float2>& dst = kind == 1 ? rope_swa_ : rope_full_;
    dst = DeviceBuffer<float2>(tab.size() / 2);
    KILN_CUDA_CHECK(cudaMemcpy(dst.data(), tab.data(), tab.size() * sizeof(float), cudaMemcpyHostToDevice));
  }

  if (c.arch == Arch::Gemma4)
    for (int il = 0; il < c.n_layer; ++il)
      layer_out_scale_.push_back(host_f32(file, synth, blk(il, "layer_output_scale")).at(0));

  arena_ = Arena(arena);
  auto fv = [&](size_t n) { return arena_.take<float>(nq * n).ptr; };
  auto qv = [&](size_t k) { return arena_.take<BlockQ8_1>(nq * (k / 32)).ptr; };
  a_.x = fv(d);
  a_.xn = fv(d);
  a_.q = fv(size_t(qdim));
  a_.k = fv(size_t(kvdim));
  a_.v = fv(size_t(kvdim));
  a_.attn = fv(size_t(qdim));
  a_.y = fv(d);
  a_.g = fv(size_t(ff));
  a_.u = fv(size_t(ff));
  a_.act = fv(size_t(ff));
  a_.ple_proj = fv(size_t(std::max(LP, 1)));
  a_.ple = fv(size_t(std::max(LP, 1)));
  a_.pg = fv(size_t(std::max(c.ple_dim, 1)));
  a_.pact = fv(size_t(std::max(c.ple_dim, 1)));
  a_.logits = arena_.take<float>(size_t(logit_rows) * size_t(c.n_vocab)).ptr;
  a_.capped = arena_.take<float>(size_t(logit_rows) * size_t(c.n_vocab)).ptr;
  a_.xq = qv(d);
  a_.attn_q = qv(size_t(qdim));
  a_.act_q = qv(size_t(ff));
  a_.pact_q = qv(size_t(std::max(c.ple_dim, 32)));
  a_.ids = arena_.take<int32_t>(nq).ptr;
  a_.pos = arena_.take<int32_t>(nq).ptr;
  a_.next = arena_.take<int32_t>(nq).ptr;
  a_.argmax_ws = arena_.take<uint8_t>(argmax_ws).ptr;
  a_.attn_ws = arena_.take<uint8_t>(attn_ws).ptr;
  a_.attn_ws_bytes = attn_ws;
  a_.tc_ws = tc_ws ? arena_.take<uint8_t>(tc_ws).ptr : nullptr;
  a_.tc_ws_bytes = tc_ws;
  const int dims[6] = {c.d_model, qdim, kvdim, ff, LP, c.ple_dim};
  std::copy(dims, dims + 6, dims_);
  const char* cf = getenv("KILN_CHECK_FINITE");
  check_finite_ = cf && std::string(cf) == "1";
  skip_ops_ = parse_skip_ops(getenv("KILN_SKIP_OPS"));
  for (const auto& n : skip_ops_)
    fprintf(stderr, "[kiln] KILN_SKIP_OPS: '%s' is not launched -- a timing study, the outputs are not the model's\n",
            n.c_str());
  KILN_CUDA_CHECK(cudaMemsetAsync(a_.argmax_ws, 0, argmax_ws, stream_));  // zeroed once (softcap_argmax.cuh)
  KILN_CUDA_CHECK(cudaMemsetAsync(a_.ids, 0, nq * sizeof(int32_t), stream_));
  KILN_CUDA_CHECK(cudaMemsetAsync(a_.pos, 0, nq * sizeof(int32_t), stream_));
  KILN_CUDA_CHECK(cudaMallocHost(&host_tok_, sizeof(int32_t) * kHostTokens));
  stream_.sync();
}

Engine::~Engine() {
  if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
  if (graph_) cudaGraphDestroy(graph_);
  if (cublas_) cublasDestroy(cublas_);
  if (host_tok_) cudaFreeHost(host_tok_);
  for (auto& p : prof_) {
    cudaEventDestroy(p.second.first);
    cudaEventDestroy(p.second.second);
  }
}

void Engine::load_weights(const GgufFile& file, const SynthModel* synth) {
  std::map<std::string, const SynthTensor*> syn;
  if (synth)
    for (const SynthTensor& s : synth->tensors) syn[s.name] = &s;
  size_t off = 0, done = 0, total = 0;
  for (const GgufTensor& g : file.tensors()) total += g.nbytes;
  int last_pct = -1;
  for (const GgufTensor& g : file.tensors()) {
    uint8_t* dst = weights_.data() + off;
    if (synth) {
      auto it = syn.find(g.name);
      if (it == syn.end() || it->second->nbytes() != g.nbytes || it->second->spec.type != g.type)
        fail("synthetic preset and file disagree on tensor '", g.name, "'");
      const SynthSpec spec = it->second->spec;
      const uint64_t nb = it->second->nblocks();
      synth_fill_kernel<<<std::min<uint64_t>(65535, (nb + 255) / 256), 256, 0, stream_>>>(
          spec, nb, dtype_traits(g.type).block_bytes, dst);
      KILN_CUDA_CHECK_LAUNCH();
    } else {
      KILN_CUDA_CHECK(cudaMemcpyAsync(dst, g.data, g.nbytes, cudaMemcpyHostToDevice, stream_));
    }
    tensors_[g.name] = Tensor{WeightDesc{g.type, dst, g.ne.size() > 1 ? g.ne[1] : 1, g.ne[0]}};
    if (g.ne.size() > 2) tensors_[g.name].w.rows = g.nelements / g.ne[0];
    off += up(g.nbytes);
    done += g.nbytes;
    const int pct = int(100.0 * double(done) / double(std::max<size_t>(total, 1)));
    if (opt_.verbose && total > (size_t(256) << 20) && pct / 10 != last_pct / 10) {
      stream_.sync();
      fprintf(stderr, "loading weights: %3d%% (%.2f of %.2f GB)\n", pct, double(done) / 1e9, double(total) / 1e9);
      last_pct = pct;
    }
  }
  stream_.sync();
}

const Engine::Tensor& Engine::t(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("runner: missing tensor '", name, "'");
  return it->second;
}

void Engine::op(const char* name, const std::function<void()>& f) {
  auto it = op_skipped_.find(name);
  if (it == op_skipped_.end()) {
    KILN_REQUIRE(runner_op_names().count(name), "Engine::op: internal: op '", name,
                 "' missing from runner_op_names() (runner/skip_ops.cpp)");
    it = op_skipped_.emplace(name, skip_ops_.count(name) > 0).first;
  }
  if (it->second) return;
  if (!profiling_) {
    f();
    if (check_finite_) check_finite(name);
    return;
  }
  cudaEvent_t a, b;
  KILN_CUDA_CHECK(cudaEventCreate(&a));
  KILN_CUDA_CHECK(cudaEventCreate(&b));
  KILN_CUDA_CHECK(cudaEventRecord(a, stream_));
  f();
  KILN_CUDA_CHECK(cudaEventRecord(b, stream_));
  prof_.push_back({name, {a, b}});
}

void Engine::matmul(const Tensor& w, const float* x, const BlockQ8_1* xq, int T, float* y, Epilogue ep) {
  const GemmNContext ctx{cublas_, a_.tc_ws, a_.tc_ws_bytes};
  const GemmNPath p = gemm_n_path(w.w.type, T);
  op(p == GemmNPath::TensorCore ? "gemm_n_tc" : (p == GemmNPath::Float ? "gemm_n_f" : "gemm_n_q8_1"),
     [&] { gemm_n(w.w, x, xq, T, y, ep, ctx, stream_, x_layout(w)); });
}

void Engine::matmul_multi(const Group& g, float* const* ys, const float* x, const BlockQ8_1* xq, int T) {
  bool all_int = true, all_tc = true;
  for (int i = 0; i < g.n; ++i) {
    all_int = all_int && gemm_n_path(g.ws[i]->w.type, T) == GemmNPath::Int8Dp4a;
    all_tc = all_tc && gemm_n_path(g.ws[i]->w.type, T) == GemmNPath::TensorCore;
  }
  GemmNTarget tg[kGemmNMaxMats];
  for (int i = 0; i < g.n; ++i) tg[i] = GemmNTarget{g.ws[i]->w, ys[i]};
  if (g.n > 1 && all_int) {
    op("gemm_n_q8_1_multi", [&] { gemm_n_q8_1_multi(tg, g.n, xq, T, Epilogue::Store, stream_, x_layout(g)); });
  } else if (g.n > 1 && all_tc) {  // one BF16 rounding of x for all of them
    op("gemm_n_tc", [&] { gemm_n_tc_multi(tg, g.n, x, T, Epilogue::Store, a_.tc_ws, a_.tc_ws_bytes, cublas_, stream_); });
  } else {
    for (int i = 0; i < g.n; ++i) matmul(*g.ws[i], x, xq, T, ys[i], Epilogue::Store);
  }
}

Q8Layout Engine::x_layout(const Group& g) const {
  bool il = cur_T_ == 1 && opt_.x_interleave_rows > 0;
  for (int i = 0; il && i < g.n; ++i) {
    const DType t = g.ws[i]->w.type;
    il = (t == DType::Q4_K || t == DType::Q6_K) && g.ws[i]->w.rows <= opt_.x_interleave_rows;
  }
  return il ? Q8Layout::Interleaved : Q8Layout::Blocks;
}

void Engine::check_finite(const char* after) {
  cudaStreamCaptureStatus cs;
  KILN_CUDA_CHECK(cudaStreamIsCapturing(stream_, &cs));
  if (cs != cudaStreamCaptureStatusNone) return;
  stream_.sync();
  const size_t T = size_t(cur_T_);
  const struct {
    const char* name;
    const float* p;
    size_t n;
  } bufs[] = {{"x", a_.x, T * size_t(dims_[0])},      {"xn", a_.xn, T * size_t(dims_[0])},
              {"q", a_.q, T * size_t(dims_[1])},      {"k", a_.k, T * size_t(dims_[2])},
              {"v", a_.v, T * size_t(dims_[2])},      {"attn", a_.attn, T * size_t(dims_[1])},
              {"y", a_.y, T * size_t(dims_[0])},      {"g", a_.g, T * size_t(dims_[3])},
              {"act", a_.act, T * size_t(dims_[3])},  {"ple", a_.ple, T * size_t(dims_[4])},
              {"pact", a_.pact, T * size_t(dims_[5])}};
  for (const auto& b : bufs) {
    std::vector<float> h(b.n);
    KILN_CUDA_CHECK(cudaMemcpy(h.data(), b.p, b.n * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < b.n; ++i)
      if (!std::isfinite(h[i])) {
        if (!nonfinite_seen_.count(b.name))
          fprintf(stderr, "[kiln] KILN_CHECK_FINITE: '%s' holds %g at element %zu (T=%zu) after %s\n", b.name,
                  double(h[i]), i, T, after);
        nonfinite_seen_.insert(b.name);
        break;
      }
  }
}

double Engine::kv_bytes_at(int pos) const {
  double b = 0;
  for (const LayerConfig& l : cfg_.layers) {
    const int visible = l.sliding ? std::min(pos + 1, cfg_.sliding_window) : pos + 1;
    b += 2.0 * visible * l.n_head_kv * l.head_dim * sizeof(uint16_t);
  }
  return b;
}

void Engine::reset() { n_past_ = 0; }

void Engine::step(int T, bool decode) {
  cur_T_ = T;  // x_layout: only one-token steps interleave (a prefill chunk's LM head reads its
              // last row of a Blocks column)
  if (cfg_.arch == Arch::Gemma4) return Gemma4::step(*this, T, decode);
  if (cfg_.arch == Arch::Qwen3) return Qwen3::step(*this, T, decode);
  fail("the GPU runner supports gemma4 and qwen3, not ", arch_name(cfg_.arch));
}

int32_t Engine::prefill(const int32_t* tokens, int n, float* logits) {
  KILN_REQUIRE(n >= 1, "prefill: no tokens");
  if (n_past_ + n > opt_.max_ctx)
    fail("prompt of ", n, " tokens after ", n_past_, " exceeds the context of ", opt_.max_ctx, " tokens");
  if (logits && n > 1 && !opt_.all_logits) fail("prefill: logits of every position need EngineOptions::all_logits");
  for (int i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab)
      fail("token id ", tokens[i], " at prompt position ", i, " is outside the vocabulary of ", cfg_.n_vocab);
  std::vector<int32_t> pos(size_t(opt_.max_chunk));
  const size_t V = size_t(cfg_.n_vocab);
  for (int c0 = 0; c0 < n; c0 += opt_.max_chunk) {
    const int T = std::min(opt_.max_chunk, n - c0);
    for (int t = 0; t < T; ++t) pos[size_t(t)] = n_past_ + t;
    KILN_CUDA_CHECK(cudaMemcpyAsync(a_.ids, tokens + c0, size_t(T) * 4, cudaMemcpyHostToDevice, stream_));
    KILN_CUDA_CHECK(cudaMemcpyAsync(a_.pos, pos.data(), size_t(T) * 4, cudaMemcpyHostToDevice, stream_));
    step(T, false);
    n_past_ += T;
    if (logits) {
      const size_t rows = opt_.all_logits ? size_t(T) : 1;
      float* dst = opt_.all_logits ? logits + size_t(c0) * V : logits;
      KILN_CUDA_CHECK(cudaMemcpyAsync(dst, a_.capped, rows * V * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
    stream_.sync();  // the host-side pos/ids staging is reused by the next chunk
  }
  set_decode_input_kernel<<<1, 1, 0, stream_>>>(a_.ids, a_.pos, a_.next + 0, n_past_);
  KILN_CUDA_CHECK_LAUNCH();
  int32_t next = 0;
  KILN_CUDA_CHECK(cudaMemcpyAsync(&next, a_.next, 4, cudaMemcpyDeviceToHost, stream_));
  stream_.sync();
  return next;
}

void Engine::set_token(int32_t token) {
  if (token < 0 || token >= cfg_.n_vocab) fail("token id ", token, " is outside the vocabulary of ", cfg_.n_vocab);
  set_decode_input_kernel<<<1, 1, 0, stream_>>>(a_.ids, a_.pos, a_.next, n_past_);
  KILN_CUDA_CHECK_LAUNCH();
  KILN_CUDA_CHECK(cudaMemcpyAsync(a_.ids, &token, 4, cudaMemcpyHostToDevice, stream_));
  stream_.sync();
}

void Engine::enqueue_decode_step() { step(1, true); }

void Engine::capture_decode_graph() {
  KILN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_decode_step();
  } catch (...) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(stream_, &g);
    if (g) cudaGraphDestroy(g);
    throw;
  }
  KILN_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
  KILN_CUDA_CHECK(cudaGraphInstantiate(&graph_exec_, graph_, 0));
}

int Engine::decode_graph_kernels() {
  if (!graph_exec_) capture_decode_graph();
  size_t n = 0;
  KILN_CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &n));
  std::vector<cudaGraphNode_t> nodes(n);
  KILN_CUDA_CHECK(cudaGraphGetNodes(graph_, nodes.data(), &n));
  int kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    KILN_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
    kernels += type == cudaGraphNodeTypeKernel;
  }
  return kernels;
}

int32_t Engine::decode(bool graph, float* logits) {
  if (n_past_ + 1 > opt_.max_ctx) fail("decode: the context of ", opt_.max_ctx, " tokens is full");
  if (graph) {
    if (!graph_exec_) capture_decode_graph();
    KILN_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
  } else {
    enqueue_decode_step();
  }
  n_past_ += 1;
  KILN_CUDA_CHECK(cudaMemcpyAsync(host_tok_, a_.next, 4, cudaMemcpyDeviceToHost, stream_));
  if (logits)
    KILN_CUDA_CHECK(cudaMemcpyAsync(logits, a_.capped, size_t(cfg_.n_vocab) * sizeof(float), cudaMemcpyDeviceToHost,
                                    stream_));
  stream_.sync();
  return host_tok_[0];
}

double Engine::decode_many(int n, bool graph, int32_t* tokens) {
  if (n_past_ + n > opt_.max_ctx) fail("decode: ", n, " steps after ", n_past_, " exceed the context of ", opt_.max_ctx);
  if (graph && !graph_exec_) capture_decode_graph();
  double issue = 0;
  for (int i0 = 0; i0 < n; i0 += kHostTokens) {
    const int m = std::min(kHostTokens, n - i0);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < m; ++i) {
      if (graph)
        KILN_CUDA_CHECK(cudaGraphLaunch(graph_exec_, stream_));
      else
        enqueue_decode_step();
      KILN_CUDA_CHECK(cudaMemcpyAsync(host_tok_ + i, a_.next, 4, cudaMemcpyDeviceToHost, stream_));
    }
    issue += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stream_.sync();
    memcpy(tokens + i0, host_tok_, size_t(m) * 4);
  }
  n_past_ += n;
  return issue;
}

std::vector<KernelTime> Engine::profile_decode_step() {
  if (n_past_ + 1 > opt_.max_ctx) fail("decode: the context of ", opt_.max_ctx, " tokens is full");
  profiled([&] { enqueue_decode_step(); });
  n_past_ += 1;
  return collect_profile();
}

std::vector<KernelTime> Engine::profile_prefill(const int32_t* tokens, int n, int32_t* next) {
  int32_t tok = 0;
  profiled([&] { tok = prefill(tokens, n, nullptr); });
  if (next) *next = tok;
  return collect_profile();
}

void Engine::profiled(const std::function<void()>& f) {
  profiling_ = true;
  try {
    f();
  } catch (...) {
    profiling_ = false;
    for (auto& p : prof_) {
      cudaEventDestroy(p.second.first);
      cudaEventDestroy(p.second.second);
    }
    prof_.clear();
    throw;
  }
  profiling_ = false;
}

std::vector<KernelTime> Engine::collect_profile() {
  stream_.sync();
  std::vector<KernelTime> out;
  for (auto& p : prof_) {
    float ms = 0;
    KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, p.second.first, p.second.second));
    auto it = std::find_if(out.begin(), out.end(), [&](const KernelTime& k) { return k.name == p.first; });
    if (it == out.end()) {
      out.push_back(KernelTime{p.first, 0, 0});
      it = out.end() - 1;
    }
    it->launches += 1;
    it->us += double(ms) * 1e3;
    cudaEventDestroy(p.second.first);
    cudaEventDestroy(p.second.second);
  }
  prof_.clear();
  return out;
}

}  // namespace kiln
