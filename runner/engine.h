// The GPU runner's machinery, shared by both model families: weights in device memory (uploaded
// from a GGUF file, or filled on the device from a synthetic preset), FP16 KV caches, one
// activation arena sized at load, RoPE tables, batched prefill in chunks, and a decode step
// captured ONCE into a CUDA graph that reads its token id and position from device memory (the
// step's own argmax feeds the next step and advances the position).
//
// Model-specific code is only the layer composition: runner/gemma4.cu and runner/qwen3.cu, each
// one function `step(T)` that enqueues the launches for T tokens at positions d_pos[0..T).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/attention.cuh"
#include "kernels/common/blocks.h"
#include "kernels/common/error.h"
#include "kernels/common/device.cuh"
#include "kernels/gelu_tanh_mul_strided.cuh"
#include "kernels/gemm_n.cuh"
#include "models/config.h"
#include "models/gguf.h"
#include "models/synth.h"
#include "runner/report.h"

namespace kiln {

struct EngineOptions {
  int max_ctx = 4096;      // positions the KV caches hold (prompt + generated)
  int max_chunk = 512;     // prefill tokens per batch (sizes the arena)
  bool all_logits = false; // keep the logits of every prefill position (parity tests), else only the last
  bool verbose = false;    // progress while loading
  // Prefill attention's precision (kernels/attention.cuh): Split (FP32-accurate, the default the
  // parity tests hold) or Half (Q and P rounded to FP16 once: faster, ~1e-3 relative error).
  PrefillPrecision prefill_attention = PrefillPrecision::Split;
  // One-token steps (decode, a one-token prefill chunk) pass a matvec's Q8_1 input in
  // Q8Layout::Interleaved (kernels/common/blocks.h: gemm_n's warp loads touch 1-2 cache lines
  // instead of 9-18) when every matrix reading it is a K-quant (Q4_K / Q6_K) on the integer path
  // with at most this many rows (default: any); 0: never. Same bits either way. K-quants only:
  // their lanes read 72 bytes apart (18 lines per load; Q8_0's 36 bytes: 9). H100
  // (docs/perf-notes.md, sessions 39-40): with Q4_K at 4 rows per warp, interleaving every
  // qwen3-8b input took decode from 386.8 to 395.7 tok/s (+2.3 %), while Q8_0 inputs cost
  // gemma4-e4b 1 %. `kiln run` takes it from KILN_X_INTERLEAVE_ROWS (ci/ab.py A/B); the Engine
  // itself reads no environment for it.
  int64_t x_interleave_rows = std::numeric_limits<int64_t>::max();
};

// KILN_X_INTERLEAVE_ROWS's value (null: unset) -> EngineOptions::x_interleave_rows (`kiln run`);
// anything but a decimal integer >= 0 throws kiln::Error (a typo must not silently time the
// other layout).
int64_t parse_x_interleave_rows(const char* env, int64_t dflt);

class Engine {
 public:
  // `file` supplies config and shapes; tensor bytes come from it, or from `synth` (same tensor
  // list, filled on the device) when given. `file` must outlive the engine.
  Engine(const GgufFile& file, const SynthModel* synth, const EngineOptions& opt);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const EngineOptions& options() const { return opt_; }
  int n_past() const { return n_past_; }
  void reset();

  // Runs n prompt tokens at positions n_past().. in chunks of <= max_chunk tokens. Copies the
  // logits of every position ([n x vocab], needs all_logits) or of the last one ([vocab]) into
  // `logits` when non-null. Returns the argmax of the last position, which also becomes the
  // device-resident input of the next decode step.
  int32_t prefill(const int32_t* tokens, int n, float* logits);

  // Every decode path below ends each step with a device-to-host copy of its token (graph launches
  // are serialized as well), so the next step starts with the position and every earlier K/V row
  // settled: the attention calls rely on it (attention_decode's kv_settled, kernels/attention.cuh).
  // One decode step on the device-resident token (the last argmax, or set_token()), through the
  // captured graph (graph = true) or the same launches issued directly. Returns the next token
  // (the step's argmax); copies the step's logits ([vocab]) when `logits` is non-null.
  int32_t decode(bool graph, float* logits = nullptr);
  // n decode steps issued back to back (one graph launch + one 4-byte copy of the sampled token
  // each), one synchronization at the end; the n sampled tokens go to `tokens`. Returns the host
  // seconds spent issuing (the per-token host work).
  double decode_many(int n, bool graph, int32_t* tokens);
  void set_token(int32_t token);

  // Kernel nodes in the captured decode graph (= kernel launches per decode token).
  int decode_graph_kernels();
  // One decode step with events around every launch (direct launches): per-kernel time split.
  // Leaves the state as if a normal decode step had run.
  std::vector<KernelTime> profile_decode_step();
  // prefill() with events around every launch: the per-kernel split of a prefill (every chunk,
  // summed). Leaves the state as prefill() does and returns the split; the last argmax goes to
  // *next when non-null.
  std::vector<KernelTime> profile_prefill(const int32_t* tokens, int n, int32_t* next = nullptr);

  uint64_t weight_bytes_per_token() const { return weight_bytes_per_token_; }
  // K/V bytes the attention of one decode step at position `pos` reads (every layer, FP16).
  double kv_bytes_at(int pos) const;
  cudaStream_t stream() const { return stream_.get(); }
  const DeviceProps& props() const { return props_; }
  const std::set<std::string>& skipped_ops() const { return skip_ops_; }

  // ---- used by the model files ----
  struct Tensor {
    WeightDesc w;
    const float* f32() const { return static_cast<const float*>(w.data); }
  };
  const Tensor& t(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }

 private:
  friend struct Gemma4;
  friend struct Qwen3;

  // Activation buffers for T <= max_chunk tokens (views into the arena).
  struct Acts {
    float *x, *xn, *q, *k, *v, *attn, *y, *g, *u, *act, *ple_proj, *ple, *pg, *pact, *logits, *capped;
    BlockQ8_1 *xq, *attn_q, *act_q, *pact_q;
    int32_t *ids, *pos, *next;
    void *argmax_ws, *attn_ws, *tc_ws;
    size_t attn_ws_bytes, tc_ws_bytes;
  };
  struct Kv {
    uint16_t *k = nullptr, *v = nullptr;
    int64_t cap = 0;
  };

  void load_weights(const GgufFile& file, const SynthModel* synth);
  void step(int T, bool decode);  // dispatches to the model family
  void capture_decode_graph();
  void enqueue_decode_step();

  // Launch wrapper: counts launches and, while profiling, times each with events.
  void op(const char* name, const std::function<void()>& f);

  // Matrix products: path chosen by gemm_n_path; quantized weights read Q8_1 activations on the
  // integer path, float activations on the tensor-core path.
  void matmul(const Tensor& w, const float* x, const BlockQ8_1* xq, int T, float* y, Epilogue ep);
  // Matrices that read one input (Q/K/V; gate/up): matmul_multi runs them in one launch where
  // the path allows, and x_layout answers for all of them. Both families build theirs with add().
  struct Group {
    const Tensor* ws[kGemmNMaxMats] = {};
    int n = 0;
    Group& add(const Tensor& w) {
      KILN_REQUIRE(n < kGemmNMaxMats, "Engine::Group: more than ", kGemmNMaxMats, " matrices");
      ws[n++] = &w;
      return *this;
    }
  };
  void matmul_multi(const Group& g, float* const* ys, const float* x, const BlockQ8_1* xq, int T);
  // The Q8_1 layout of the input that the group's matrices share at this step: Interleaved when
  // the step has one token and each of them is a K-quant (one-token K-quant products always take
  // the integer path) with at most opt_.x_interleave_rows rows, else Blocks. The producer of
  // that input asks with the same matrices as matmul / matmul_multi do, so writer and readers
  // agree by construction.
  Q8Layout x_layout(const Group& g) const;
  Q8Layout x_layout(const Tensor& w) const {
    Group g;
    return x_layout(g.add(w));
  }
  // ---- pieces of a step both families share (runner/step_shared.cu) ----
  // Layer il's attention matrices: Q, and K, V when the layer owns its cache.
  Group qkv(int il) const;
  // The step's start: token embedding x embed_scale for T tokens, fused with layer 0's attention
  // norm (x; xn and xq, float + Q8_1 in the layout layer 0's Q/K/V read): one launch.
  void embed_tokens(int T);
  // Layer il's attention from xn / xq up to the o-proj's input: Q/K/V in one launch;
  // head_norm_dual (per-head RMSNorm of Q and K; V's weightless norm when norm_v -- Gemma 4,
  // where Qwen3 appends V as it is; RoPE from the layer's table; the cache append when the layer
  // owns its cache); decode or prefill attention (the window on sliding layers) into attn, and
  // the o-proj's Q8_1 input when it reads one (decode: the merge writes it). Returns the o-proj.
  const Tensor& attention(int il, int T, bool decode, bool norm_v);
  // Layer il's gate and up matrices (the FFN's input norm writes the layout they read).
  Group ffn_gate_up(int il) const;
  // Layer il's gated FFN from xn / xq: gate/up in one launch; act(gate) * up, with Q8_1 for the
  // down projection when it reads one; down into y (ep: Store into a scratch, Add into the
  // residual).
  void ffn(int il, int T, GatedAct act, float* y, Epilogue ep);
  // A step's end, both families: output projection of xn (`tied`: token_embd when the model has
  // no output.weight), softcap (if the model has one) and argmax into next[]; prefill keeps only
  // the last row unless every position's logits are wanted. Decode's argmax also writes the next
  // input token and advances the position (softcap_argmax's feed / pos).
  void output_argmax(const Tensor& tied, int T, bool decode);
  const Tensor& output_weight(const Tensor& tied) const { return cfg_.tied_output ? tied : t("output.weight"); }

  ModelConfig cfg_;
  EngineOptions opt_;
  DeviceProps props_;
  Stream stream_;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer<uint8_t> weights_;
  std::map<std::string, Tensor> tensors_;
  std::vector<float> layer_out_scale_;  // Gemma 4 layer_output_scale, read at load
  std::vector<Kv> kv_;                  // per layer; shared layers point at their source's buffers
  DeviceBuffer<uint16_t> kv_storage_;
  DeviceBuffer<float2> rope_full_, rope_swa_;
  int rope_pos_ = 0;
  // Decode attention's split kernel: tensor cores, within the prefill tolerance (H200, against the
  // bit-exact CUDA-core Registers kernel, side by side: qwen3-8b 403.5 -> 412.2 tok/s, gemma4-e4b
  // 341.5 -> 366.4; attention_bench at context 576: hd 128 10.5 -> 7.4 us, hd 512 14.5 -> 8.9,
  // hd 256 window 512 11.8 -> 7.7). Split counts come from the same kernel's occupancy.
  static constexpr DecodePath kDecodeAttention = DecodePath::TensorCores;
  std::vector<int> attn_splits_;  // per layer
  Arena arena_;
  Acts a_{};
  int n_past_ = 0;
  uint64_t weight_bytes_per_token_ = 0;

  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t graph_exec_ = nullptr;
  int32_t* host_tok_ = nullptr;  // pinned, kHostTokens entries
  static constexpr int kHostTokens = 1 << 16;

  // KILN_CHECK_FINITE=1: after every launch of a direct (uncaptured) step, synchronize and scan
  // the activation buffers; the first launch that leaves a NaN/inf names itself (bisecting aid).
  bool check_finite_ = false;
  int cur_T_ = 0;
  int dims_[8] = {};  // d, qdim, kvdim, ff, L*P, P
  void check_finite(const char* after);
  std::set<std::string> nonfinite_seen_;

  // KILN_SKIP_OPS (runner/skip_ops.h): op names whose launches are left out
  std::set<std::string> skip_ops_;
  // op name -> left out, keyed by the name literal's address: each name is checked against
  // runner_op_names() once, and a launch then costs one pointer-keyed lookup (direct-launch and
  // prefill passes issue hundreds of launches per step from the host).
  std::unordered_map<const char*, bool> op_skipped_;

  // profiling: op() records an event pair around every launch while f runs; collect_profile()
  // synchronizes and sums them per op name.
  bool profiling_ = false;
  std::vector<std::pair<std::string, std::pair<cudaEvent_t, cudaEvent_t>>> prof_;
  void profiled(const std::function<void()>& f);
  std::vector<KernelTime> collect_profile();
};

// The model families: one function each that enqueues a forward step for T tokens.
struct Gemma4 {
  static void step(Engine& e, int T, bool decode);  // runner/gemma4.cu
};
struct Qwen3 {
  static void step(Engine& e, int T, bool decode);  // runner/qwen3.cu
};

}  // namespace kiln
