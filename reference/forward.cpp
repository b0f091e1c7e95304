// Shared machinery of the reference forward passes (see forward.h); the models themselves are in
// gemma4.cpp and qwen3.cpp.
#include "reference/forward.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/blocks.h"
#include "kernels/common/error.h"
#include "models/quant.h"
#include "kernels/common/math.h"
#include "reference/attention.h"
#include "reference/gelu_tanh_mul_strided.h"
#include "reference/gemm_n.h"
#include "reference/quantize_q8_1.h"
#include "reference/rope.h"
#include "reference/rmsnorm.h"

namespace kiln::ref {

const char* activations_name(Activations a) {
  switch (a) {
    case Activations::Exact: return "exact";
    case Activations::Q8_1: return "q8_1";
    case Activations::LlamaCpu: return "llama";
  }
  return "?";
}

// ---- weights -------------------------------------------------------------------------------

Matrix Weights::matrix(const std::string& name) const {
  const GgufTensor& t = f_->tensor(name);
  if (t.ne.size() != 2) fail(f_->path(), ": tensor '", name, "' is not a matrix (shape ", t.shape_string(), ")");
  return Matrix{t.type, t.data, t.ne[1], t.ne[0]};
}

const float* Weights::vec(const std::string& name, int64_t n) const {
  const GgufTensor& t = f_->tensor(name);
  if (t.type != DType::F32 || t.nelements != n)
    fail(f_->path(), ": tensor '", name, "' is ", dtype_name(t.type), " ", t.shape_string(), ", expected F32 of ", n,
         " elements");
  return reinterpret_cast<const float*>(t.data);
}

void Weights::row(const Matrix& m, int64_t r, float* out) const {
  KILN_REQUIRE(r >= 0 && r < m.rows, "embedding row ", r, " out of range [0, ", m.rows, ")");
  const auto* base = static_cast<const uint8_t*>(m.data);
  decode_row(m.type, base + size_t(r) * row_bytes(m.type, m.cols), out, m.cols);
}

// ---- matrix products -------------------------------------------------------------------------

namespace {
bool block_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K; }

float round_f16(float x) { return f16_to_f32(f32_to_f16(x)); }

// llama.cpp's Q8_0 activation rule (quantize_row_q8_0_ref): per 32, d = amax/127, q = round(x/d),
// value f16(d) * q.
void llama_q8_0(float* x, int64_t k) {
  for (int64_t b = 0; b < k; b += 32) {
    float amax = 0.f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f, dr = round_f16(d);
    for (int i = 0; i < 32; ++i) x[b + i] = dr * std::round(x[b + i] * id);
  }
}

// llama.cpp's Q8_K rule (quantize_row_q8_K_ref): per 256, the element of largest magnitude `mx`
// (signed), iscale = -127/mx, q = min(127, nearest-even(iscale * x)), value q / iscale (float d).
void llama_q8_k(float* x, int64_t k) {
  for (int64_t b = 0; b < k; b += 256) {
    float amax = 0.f, mx = 0.f;
    for (int i = 0; i < 256; ++i)
      if (std::fabs(x[b + i]) > amax) amax = std::fabs(x[b + i]), mx = x[b + i];
    if (amax == 0.f) continue;
    const float iscale = -127.f / mx, d = 1.f / iscale;
    for (int i = 0; i < 256; ++i) x[b + i] = d * std::min(127.f, std::nearbyint(iscale * x[b + i]));
  }
}

// Rounds activations (n rows of k) the way llama.cpp's CPU matmul converts them for weight type t.
void llama_round(DType t, float* x, int64_t n, int64_t k) {
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * k;
    switch (t) {
      case DType::Q8_0: llama_q8_0(row, k); break;
      case DType::Q4_K:
      case DType::Q6_K: llama_q8_k(row, k); break;
      case DType::BF16:
        for (int64_t i = 0; i < k; ++i) row[i] = bf16_to_f32(f32_to_bf16(row[i]));
        break;
      case DType::F16:
        for (int64_t i = 0; i < k; ++i) row[i] = round_f16(row[i]);
        break;
      default: break;
    }
  }
}
}  // namespace

void glu(Activations mode, bool silu, const float* gate, int64_t gs, const float* b, int64_t bs, int64_t n_tokens,
         int64_t n, float* out) {
  if (mode != Activations::LlamaCpu || silu) {
    gelu_tanh_mul_strided<float>(silu, gate, gs, b, bs, n_tokens, n, out, nullptr);
    return;
  }
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t i = 0; i < n; ++i) {
      const float x = gate[t * gs + i];
      const float g = x <= -10.f ? 0.f : x >= 10.f ? x : round_f16(gelu_tanh(round_f16(x)));
      out[t * n + i] = g * b[t * bs + i];
    }
}

void rope(Activations mode, float* x, int64_t n_tokens, int n_heads, int hd, int n_rot, const int32_t* pos,
          float theta, const float* ff) {
  if (mode != Activations::LlamaCpu) {
    rope_neox<float>(x, n_tokens, n_heads, hd, n_rot, pos, theta, ff);
    return;
  }
  const int half = n_rot / 2;
  const float theta_scale = std::pow(theta, -2.0f / float(n_rot));
  std::vector<float> cs(size_t(2 * half));
  for (int64_t t = 0; t < n_tokens; ++t) {
    float a = float(pos[t]);
    for (int i = 0; i < half; ++i) {
      const float ai = a / (ff ? ff[i] : 1.f);
      cs[size_t(2 * i)] = std::cos(ai);
      cs[size_t(2 * i + 1)] = std::sin(ai);
      a *= theta_scale;
    }
    for (int h = 0; h < n_heads; ++h) {
      float* r = x + (t * n_heads + h) * hd;
      for (int i = 0; i < half; ++i) {
        const float x0 = r[i], x1 = r[i + half], c = cs[size_t(2 * i)], sn = cs[size_t(2 * i + 1)];
        r[i] = x0 * c - x1 * sn;
        r[i + half] = x0 * sn + x1 * c;
      }
    }
  }
}

void attend(Activations mode, const float* q, const float* k, const float* v, int64_t n_q, const int32_t* q_pos,
            int64_t n_kv, int n_head, int n_head_kv, int hd, float scale, int window, float* out) {
  if (mode != Activations::LlamaCpu) {
    attention<float>(q, k, v, n_q, q_pos, n_kv, n_head, n_head_kv, hd, scale, window, out);
    return;
  }
  const int group = n_head / n_head_kv;
  std::vector<float> qh(static_cast<size_t>(hd)), acc(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n_q; ++t)
    for (int h = 0; h < n_head; ++h) {
      for (int i = 0; i < hd; ++i) qh[size_t(i)] = round_f16(q[(t * n_head + h) * hd + i]);
      std::fill(acc.begin(), acc.end(), 0.f);
      float S = 0.f, M = -INFINITY;
      for (int64_t p = 0; p < n_kv; ++p) {
        if (p > q_pos[t] || (window > 0 && q_pos[t] - p >= window)) continue;
        const float* kp = k + (p * n_head_kv + h / group) * hd;
        const float* vp = v + (p * n_head_kv + h / group) * hd;
        float s = 0.f;
        for (int i = 0; i < hd; ++i) s += qh[size_t(i)] * kp[i];
        s *= scale;
        float ms = 1.f, vs = 1.f;
        if (s > M) {
          const float m_old = M;
          M = s;
          ms = std::exp(m_old - M);
          for (float& a : acc) a = round_f16(a * ms);
        } else {
          vs = std::exp(s - M);
        }
        for (int i = 0; i < hd; ++i) acc[size_t(i)] = round_f16(acc[size_t(i)] + vp[i] * vs);
        S = S * ms + vs;
      }
      for (int i = 0; i < hd; ++i) out[(t * n_head + h) * hd + i] = S > 0.f ? acc[size_t(i)] * (1.f / S) : 0.f;
    }
}

// K/V cache storage: FP16 in the GPU-mirroring Q8_1 mode (kernels/attention.cuh stores FP16) and
// in the llama.cpp mode (its default f16 cache); float in the exact mode.
void cache_round(Activations mode, std::vector<float>& x) {
  if (mode == Activations::Exact) return;
  for (float& v : x) v = round_f16(v);
}

void matmul(Activations mode, const Matrix& w, const float* x, int64_t n, float* y) {
  if (mode == Activations::Q8_1 && block_quantized(w.type)) {
    // What the GPU does: quantize each activation row to Q8_1, integer dot per block.
    std::vector<BlockQ8_1> xq(size_t(n * (w.cols / QK8_1)));
    quantize_q8_1(x, n, w.cols, xq.data());
    gemm_n_q8_1<float>(w.type, w.data, w.rows, w.cols, xq.data(), n, y);
  } else if (mode == Activations::LlamaCpu) {
    std::vector<float> xr(x, x + n * w.cols);
    llama_round(w.type, xr.data(), n, w.cols);
    std::vector<double> yd(size_t(n * w.rows));
    gemm_n_f<double>(w.type, w.data, w.rows, w.cols, xr.data(), n, yd.data());
    for (size_t i = 0; i < yd.size(); ++i) y[i] = float(yd[i]);
  } else {
    gemm_n_f<float>(w.type, w.data, w.rows, w.cols, x, n, y);
  }
}

std::vector<float> matmul(Activations mode, const Matrix& w, const std::vector<float>& x, int64_t n) {
  KILN_REQUIRE(int64_t(x.size()) == n * w.cols, "matmul: ", x.size(), " activations for ", n, " rows of ", w.cols);
  std::vector<float> y(size_t(n * w.rows));
  matmul(mode, w, x.data(), n, y.data());
  return y;
}

std::vector<float> rms_norm(const std::vector<float>& x, const float* w, int64_t rows, int64_t width, float eps) {
  KILN_REQUIRE(int64_t(x.size()) == rows * width, "rms_norm: ", x.size(), " values for ", rows, " rows of ", width);
  std::vector<float> y(x.size());
  rmsnorm<float>(x.data(), w, rows, width, eps, y.data());
  return y;
}

void add_into(std::vector<float>& acc, const std::vector<float>& x) {
  KILN_REQUIRE(acc.size() == x.size(), "add_into: sizes ", acc.size(), " and ", x.size());
  for (size_t i = 0; i < acc.size(); ++i) acc[i] += x[i];
}

void scale_into(std::vector<float>& x, float s) {
  for (float& v : x) v *= s;
}

// ---- KV cache ------------------------------------------------------------------------------

void KvCache::init(const ModelConfig& c, int max_ctx) {
  k_.assign(size_t(c.n_layer), {});
  v_.assign(size_t(c.n_layer), {});
  for (int il = 0; il < c.n_layer; ++il) {
    if (!c.layer_owns_kv(il)) continue;
    const LayerConfig& l = c.layers[size_t(il)];
    const size_t n = size_t(max_ctx) * size_t(l.n_head_kv) * size_t(l.head_dim);
    k_[size_t(il)].assign(n, 0.f);
    v_[size_t(il)].assign(n, 0.f);
  }
}

// ---- the forward pass ----------------------------------------------------------------------

Forward::Forward(const GgufFile& file, Activations mode, int max_ctx)
    : file_(&file), cfg_(parse_config(file)), w_(file), mode_(mode), max_ctx_(max_ctx) {
  if (cfg_.arch != Arch::Gemma4 && cfg_.arch != Arch::Qwen3)
    fail(file.path(), ": the reference forward pass supports gemma4 and qwen3, not ", arch_name(cfg_.arch));
  if (max_ctx < 1) fail("reference forward: max_ctx must be at least 1, got ", max_ctx);
  kv_.init(cfg_, max_ctx);
}

std::vector<float> Forward::forward(const int32_t* tokens, int n) {
  if (n < 1) fail("reference forward: need at least one token, got ", n);
  if (int64_t(n_past_) + n > max_ctx_)
    fail("reference forward: ", n_past_, " cached + ", n, " new tokens exceed the context of ", max_ctx_);
  for (int t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= cfg_.n_vocab)
      fail("reference forward: token ", tokens[t], " at index ", t, " is outside the vocabulary [0, ", cfg_.n_vocab,
           ")");
  std::vector<float> logits = cfg_.arch == Arch::Gemma4 ? gemma4(tokens, n) : qwen3(tokens, n);
  n_past_ += n;
  return logits;
}

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 0; i < n; ++i) {
    if (logits[i] != logits[i]) continue;
    if (logits[best] != logits[best] || logits[i] > logits[best]) best = i;
  }
  return best;
}

std::vector<int32_t> greedy(Forward& fw, const std::vector<int32_t>& prompt, int n_gen) {
  if (prompt.empty()) fail("greedy: the prompt is empty");
  const int vocab = fw.config().n_vocab;
  std::vector<int32_t> out;
  std::vector<float> logits = fw.forward(prompt.data(), int(prompt.size()));
  const float* last = logits.data() + (prompt.size() - 1) * size_t(vocab);
  for (int i = 0; i < n_gen; ++i) {
    const int32_t next = argmax(last, vocab);
    out.push_back(next);
    if (i + 1 == n_gen) break;
    logits = fw.forward(&next, 1);
    last = logits.data();
  }
  return out;
}

}  // namespace kiln::ref
