// Reference forward passes on the CPU: the readable spec of each model family, composed from the
// per-kernel references (gemm_n, rmsnorm, rope, attention, ...). The oracle the GPU runner is held
// to, itself checked against llama.cpp's logits (tests/parity_test.cpp).
//
// One file per model family, read top to bottom like the model's paper:
//   reference/gemma4.cpp  Gemma 4 (PLE, sliding + full layers, KV sharing, V-norm, softcap)
//   reference/qwen3.cpp   Qwen3 (QK-norm, GQA, SwiGLU, untied output)
// This header holds what they share: the weights view, the KV cache, the activation mode and
// the matmul helper that applies it, and the greedy helper.
//
// Usage:
//   GgufFile f = GgufFile::open("model.gguf");
//   ref::Forward fw(f, ref::Activations::Q8_1, /*max_ctx=*/4096);
//   std::vector<float> logits = fw.forward(tokens.data(), n);   // [n x vocab], appends K/V
//   int next = ref::argmax(&logits[(n - 1) * vocab], vocab);
//   logits = fw.forward(&next, 1);                               // one decode step
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"
#include "models/config.h"
#include "models/gguf.h"

namespace kiln::ref {

// How activations enter the matrix products.
//   Exact: float activations times dequantized weights (float accumulation).
//   Q8_1:  activations quantized to Q8_1 blocks (kernels/common/blocks.h: quantize_block_q8_1)
//          before every product with a block-quantized weight (Q8_0, Q4_K, Q6_K), integer dot
//          products per block, as the GPU's integer path does. Products with float weights
//          (F32, F16, BF16: e.g. Gemma 4's per_layer_model_proj) stay float in both modes.
//          K and V are stored rounded to FP16, as the GPU's KV cache stores them.
//   LlamaCpu: a diagnostic mode that rounds like llama.cpp's CPU backend (the producer of the
//          parity goldens) so semantic differences are not hidden under quantization noise:
//          activations rounded to the weight's vec_dot_type (Q8_0 weights: Q8_0 blocks of 32;
//          Q4_K / Q6_K: Q8_K blocks of 256; BF16 / F16 weights: bf16 / f16), products in double;
//          K, V (the cache) and Q rounded to f16 (llama.cpp's default F16 KV cache).
enum class Activations { Exact, Q8_1, LlamaCpu };
const char* activations_name(Activations a);

// A weight matrix in GGUF block layout: `rows` output features of `cols` inputs each.
struct Matrix {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Zero-copy view of a model's weights by GGUF name (the file must outlive it). Shapes were
// validated by parse_config; lookups still check and throw kiln::Error naming the tensor.
class Weights {
 public:
  explicit Weights(const GgufFile& f) : f_(&f) {}
  Matrix matrix(const std::string& name) const;
  // An F32 vector of n elements (norm weights, scales, rope factors).
  const float* vec(const std::string& name, int64_t n) const;
  bool has(const std::string& name) const { return f_->find_tensor(name) != nullptr; }
  // Row `r` of an embedding table, dequantized to float (row width = cols).
  void row(const Matrix& m, int64_t r, float* out) const;

 private:
  const GgufFile* f_;
};

// y[t*M + m] = sum_k W[m][k] * x[t*K + k] for t < n, activations handled per `mode`.
void matmul(Activations mode, const Matrix& w, const float* x, int64_t n, float* y);
std::vector<float> matmul(Activations mode, const Matrix& w, const std::vector<float>& x, int64_t n);

// Small glue shared by the model files (everything else comes from the per-kernel references).
// RMSNorm of `rows` rows of width `width` (w may be null: no weight), into a new vector.
std::vector<float> rms_norm(const std::vector<float>& x, const float* w, int64_t rows, int64_t width, float eps);
void add_into(std::vector<float>& acc, const std::vector<float>& x);  // acc += x
void scale_into(std::vector<float>& x, float s);                     // x *= s
// Gated activation out[t][i] = act(gate[t*gs + i]) * b[t*bs + i] (act: tanh GELU, or SiLU when
// `silu`): ref::gelu_tanh_mul_strided, except in LlamaCpu mode, where GELU is llama.cpp's f16 table
// (f16(gelu(f16(x))), 0 below -10, x above 10).
void glu(Activations mode, bool silu, const float* gate, int64_t gs, const float* b, int64_t bs, int64_t n_tokens,
         int64_t n, float* out);
// NEOX RoPE in place on x[t][h][hd] (ref::rope_neox's contract). LlamaCpu mode computes the angles
// as llama.cpp's CPU rope does: in float, theta_i = pos * (base^(-2/n_rot))^i by repeated
// multiplication, divided by the freq factor, cosf / sinf.
void rope(Activations mode, float* x, int64_t n_tokens, int n_heads, int hd, int n_rot, const int32_t* pos,
          float theta, const float* ff);
// Attention over the cache (ref::attention's contract). LlamaCpu mode follows llama.cpp's CPU flash
// attention instead: Q rounded to f16, online softmax over the cache in position order with the
// V accumulator held in f16 (scaled and accumulated with an f16 rounding per step).
void attend(Activations mode, const float* q, const float* k, const float* v, int64_t n_q, const int32_t* q_pos,
            int64_t n_kv, int n_head, int n_head_kv, int hd, float scale, int window, float* out);
// LlamaCpu mode only: rounds x to f16 (llama.cpp's default F16 K/V cache); other modes leave x as is.
void cache_round(Activations mode, std::vector<float>& x);

// Per-layer K/V storage: [max_ctx][n_head_kv][head_dim] floats for each layer that owns a cache
// (KV-shared layers read their source layer's buffers; ModelConfig::kv_source).
class KvCache {
 public:
  void init(const ModelConfig& c, int max_ctx);
  float* k(int layer) { return k_[size_t(layer)].data(); }
  float* v(int layer) { return v_[size_t(layer)].data(); }

 private:
  std::vector<std::vector<float>> k_, v_;
};

class Forward {
 public:
  // `file` must outlive this object. Throws kiln::Error for unsupported architectures (llama) or
  // max_ctx < 1.
  Forward(const GgufFile& file, Activations mode, int max_ctx);
  const ModelConfig& config() const { return cfg_; }
  Activations mode() const { return mode_; }
  int max_ctx() const { return max_ctx_; }

  // Runs n tokens at positions n_past()..n_past()+n-1, appends their K/V, returns the logits of
  // every one of them: [n x vocab]. Throws kiln::Error when a token id is out of range or the
  // context would exceed max_ctx (nothing is changed then).
  std::vector<float> forward(const int32_t* tokens, int n);
  int n_past() const { return n_past_; }
  void reset() { n_past_ = 0; }

 private:
  // The model families, one file each. Each reads cfg_, w_, mode_, kv_, n_past_ and returns the
  // logits; forward() validates the input and advances n_past_.
  std::vector<float> gemma4(const int32_t* tokens, int n);  // reference/gemma4.cpp
  std::vector<float> qwen3(const int32_t* tokens, int n);   // reference/qwen3.cpp

  const GgufFile* file_;
  ModelConfig cfg_;
  Weights w_;
  Activations mode_;
  int max_ctx_;
  int n_past_ = 0;
  KvCache kv_;
};

// Index of the largest logit; the lowest index among ties. NaN entries are never chosen unless
// all are NaN (then 0).
int argmax(const float* logits, int n);

// Greedy generation: runs `prompt` (if not empty), then n_gen decode steps each feeding back the
// argmax of the last logits. Returns the n_gen generated tokens.
std::vector<int32_t> greedy(Forward& fw, const std::vector<int32_t>& prompt, int n_gen);

}  // namespace kiln::ref
