#include "models/synth.h"

#include <cmath>

#include "kernels/common/error.h"

namespace kiln {

namespace {

struct Shape {
  std::string arch;
  std::string name;
  int n_layer, d, n_ff, n_head, n_head_kv, head_dim, vocab, n_ctx;
  // gemma4 only
  int head_dim_swa = 0, window = 0, n_kv_shared = 0, ple = 0, full_every = 0;
  float rope_partial = 1.f;  // fraction of full-layer pairs that rotate (rope_freqs)
  bool q4_k_m = false;       // qwen: llama.cpp's Q4_K_M type recipe; gemma: all Q8_0
};

const std::vector<PresetInfo> kPresets = {
    {"gemma4-e4b", "Gemma 4 E4B shapes, Q8_0 (+BF16 per_layer_model_proj): 42 layers, d 2560, vocab 262144"},
    {"qwen3-8b", "Qwen3-8B shapes, Q4_K_M (Q4_K + Q6_K): 36 layers, d 4096, vocab 151936"},
    {"gemma4-tiny", "6 layers, d 256, window 8, 3 KV-shared layers, PLE 64, vocab 512 (tests)"},
    {"qwen3-tiny", "4 layers, d 256, 4 heads / 2 KV heads, vocab 512 (tests)"},
};

Shape shape_of(const std::string& preset) {
  if (preset == "gemma4-e4b")
    return {"gemma4", "Gemma 4 E4B synthetic Q8_0", 42, 2560, 10240, 8, 2, 512, 262144, 131072,
            256, 512, 18, 256, 6, 0.25f, false};
  if (preset == "gemma4-tiny")
    return {"gemma4", "Gemma 4 tiny synthetic Q8_0", 6, 256, 512, 2, 1, 128, 512, 4096,
            64, 8, 3, 64, 3, 0.25f, false};
  if (preset == "qwen3-8b")
    return {"qwen3", "Qwen3-8B synthetic Q4_K_M", 36, 4096, 12288, 32, 8, 128, 151936, 40960,
            0, 0, 0, 0, 0, 1.f, true};
  if (preset == "qwen3-tiny")
    return {"qwen3", "Qwen3 tiny synthetic Q4_K_M", 4, 256, 768, 4, 2, 64, 512, 4096, 0, 0, 0, 0, 0, 1.f, true};
  std::string names;
  for (const PresetInfo& p : kPresets) names += (names.empty() ? "" : ", ") + std::string(p.name);
  fail("unknown preset '", preset, "' (presets: ", names, ")");
}

uint64_t name_key(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ splitmix64(seed);
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return splitmix64(h);
}

// llama.cpp's use_more_bits rule for Q4_K_M: the first and last eighth of the layers and every
// third layer in between get Q6_K for attn_v and ffn_down.
bool more_bits(int il, int n) { return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2; }

}  // namespace

uint64_t SynthTensor::nblocks() const {
  int64_t n = 1;
  for (int64_t x : ne) n *= x;
  return uint64_t(n / dtype_traits(spec.type).block_elems);
}
uint64_t SynthTensor::nbytes() const { return nblocks() * uint64_t(dtype_traits(spec.type).block_bytes); }

uint64_t SynthModel::total_bytes() const {
  uint64_t t = 0;
  for (const SynthTensor& x : tensors) t += x.nbytes();
  return t;
}

const std::vector<PresetInfo>& synth_presets() { return kPresets; }

SynthModel synth_model(const std::string& preset, uint64_t seed) {
  const Shape s = shape_of(preset);
  const bool gemma = s.arch == "gemma4";
  SynthModel m;
  m.preset = preset;
  auto kv = [&](const std::string& k, GgufValue v) { m.metadata.emplace_back(k, std::move(v)); };
  const std::string a = s.arch + ".";
  kv("general.architecture", GgufValue::string(s.arch));
  kv("general.name", GgufValue::string(s.name));
  kv("general.file_type", GgufValue::u32(gemma ? 7 : 15));  // MOSTLY_Q8_0 / MOSTLY_Q4_K_M
  kv("general.quantization_version", GgufValue::u32(2));
  kv(a + "context_length", GgufValue::u32(uint32_t(s.n_ctx)));
  kv(a + "embedding_length", GgufValue::u32(uint32_t(s.d)));
  kv(a + "block_count", GgufValue::u32(uint32_t(s.n_layer)));
  kv(a + "feed_forward_length", GgufValue::u32(uint32_t(s.n_ff)));
  kv(a + "attention.head_count", GgufValue::u32(uint32_t(s.n_head)));
  kv(a + "attention.head_count_kv", GgufValue::u32(uint32_t(s.n_head_kv)));
  kv(a + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  kv(a + "attention.key_length", GgufValue::u32(uint32_t(s.head_dim)));
  kv(a + "attention.value_length", GgufValue::u32(uint32_t(s.head_dim)));
  kv(a + "rope.freq_base", GgufValue::f32(1e6f));
  std::vector<bool> sliding(size_t(s.n_layer), false);
  if (gemma) {
    kv(a + "attention.key_length_swa", GgufValue::u32(uint32_t(s.head_dim_swa)));
    kv(a + "attention.value_length_swa", GgufValue::u32(uint32_t(s.head_dim_swa)));
    kv(a + "rope.freq_base_swa", GgufValue::f32(1e4f));
    kv(a + "rope.dimension_count", GgufValue::u32(uint32_t(s.head_dim)));
    kv(a + "rope.dimension_count_swa", GgufValue::u32(uint32_t(s.head_dim_swa)));
    kv(a + "attention.sliding_window", GgufValue::u32(uint32_t(s.window)));
    std::vector<GgufValue> pat;
    for (int il = 0; il < s.n_layer; ++il) {
      sliding[size_t(il)] = (il % s.full_every) != s.full_every - 1;
      pat.push_back(GgufValue::boolean(sliding[size_t(il)]));
    }
    kv(a + "attention.sliding_window_pattern", GgufValue::array(GgufType::BOOL, std::move(pat)));
    kv(a + "attention.shared_kv_layers", GgufValue::u32(uint32_t(s.n_kv_shared)));
    kv(a + "embedding_length_per_layer_input", GgufValue::u32(uint32_t(s.ple)));
    kv(a + "final_logit_softcapping", GgufValue::f32(30.f));
  } else {
    kv(a + "rope.dimension_count", GgufValue::u32(uint32_t(s.head_dim)));
  }
  kv(a + "vocab_size", GgufValue::u32(uint32_t(s.vocab)));
  kv("tokenizer.ggml.model", GgufValue::string("none"));
  kv("general.synthetic_seed", GgufValue::string(std::to_string(seed)));

  const DType wq = gemma ? DType::Q8_0 : DType::Q4_K;
  auto add = [&](const std::string& name, std::vector<int64_t> ne, DType t, SynthKind kind, float level) {
    SynthTensor x;
    x.name = name;
    x.ne = std::move(ne);
    x.spec = SynthSpec{t, kind, level, name_key(seed, name)};
    m.tensors.push_back(std::move(x));
  };
  // Matrices: std 1/sqrt(K) keeps every projection's output at unit scale.
  auto mat = [&](const std::string& name, int64_t k, int64_t n, DType t) {
    add(name, {k, n}, t, SynthKind::Random, 1.f / std::sqrt(float(k)));
  };
  auto vec = [&](const std::string& name, int64_t n, float level) {
    add(name, {n}, DType::F32, SynthKind::Level, level);
  };
  const int d = s.d;
  if (gemma) {
    add("rope_freqs.weight", {s.head_dim / 2}, DType::F32, SynthKind::RopeFreqs,
        std::floor(s.rope_partial * float(s.head_dim / 2)));
  }
  mat("token_embd.weight", d, s.vocab, wq);
  if (gemma) {
    const int64_t pl = int64_t(s.ple) * s.n_layer;
    mat("per_layer_token_embd.weight", s.ple, s.vocab, DType::Q8_0);  // std 1/sqrt(P)
    m.tensors.back().ne = {pl, s.vocab};
    mat("per_layer_model_proj.weight", d, pl, DType::BF16);
    vec("per_layer_proj_norm.weight", s.ple, 1.f);
  }
  vec("output_norm.weight", d, 1.f);
  if (!gemma) mat("output.weight", d, s.vocab, DType::Q6_K);
  for (int il = 0; il < s.n_layer; ++il) {
    const bool sw = sliding[size_t(il)];
    const int hd = sw && gemma ? s.head_dim_swa : s.head_dim;
    const int q = s.n_head * hd, kvw = s.n_head_kv * hd;
    const bool mb = !gemma && more_bits(il, s.n_layer);
    // Gemma 4 attends with scale 1.0 after per-head Q/K RMSNorm: norm weights ~ head_dim^-1/4
    // keep attention logits at unit scale (unit weights would give std sqrt(head_dim)).
    const float qk_norm = gemma ? std::pow(float(hd), -0.25f) : 1.f;
    vec(blk(il, "attn_norm"), d, 1.f);
    mat(blk(il, "attn_q"), d, q, wq);
    mat(blk(il, "attn_k"), d, kvw, wq);
    mat(blk(il, "attn_v"), d, kvw, mb ? DType::Q6_K : wq);
    mat(blk(il, "attn_output"), q, d, wq);
    vec(blk(il, "attn_q_norm"), hd, qk_norm);
    vec(blk(il, "attn_k_norm"), hd, qk_norm);
    if (gemma) vec(blk(il, "post_attention_norm"), d, 1.f);
    vec(blk(il, "ffn_norm"), d, 1.f);
    mat(blk(il, "ffn_gate"), d, s.n_ff, wq);
    mat(blk(il, "ffn_up"), d, s.n_ff, wq);
    mat(blk(il, "ffn_down"), s.n_ff, d, mb ? DType::Q6_K : wq);
    if (gemma) {
      vec(blk(il, "post_ffw_norm"), d, 1.f);
      vec(blk(il, "layer_output_scale"), 1, 0.9f);
      mat(blk(il, "inp_gate"), d, s.ple, wq);
      mat(blk(il, "proj"), s.ple, d, wq);
      vec(blk(il, "post_norm"), d, 1.f);
    }
  }
  return m;
}

void synth_fill(const SynthTensor& t, uint64_t b0, uint64_t n, uint8_t* dst) {
  const uint64_t bb = uint64_t(dtype_traits(t.spec.type).block_bytes);
  for (uint64_t b = 0; b < n; ++b) synth_block(t.spec, b0 + b, dst + b * bb);
}

void synth_write(const SynthModel& m, const std::string& path, const std::function<void(uint64_t, uint64_t)>& progress,
                 bool with_data) {
  GgufWriter w;
  for (const auto& kv : m.metadata) w.set(kv.first, kv.second);
  for (const SynthTensor& t : m.tensors)
    w.add_tensor(t.name, t.spec.type, t.ne, [&t](uint64_t b0, uint64_t n, uint8_t* dst) { synth_fill(t, b0, n, dst); });
  w.write(path, 32, progress, with_data);
}

}  // namespace kiln
