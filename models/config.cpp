#include "models/config.h"

#include <cmath>
#include <set>
#include <sstream>

#include "kernels/common/error.h"

namespace kiln {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Gemma4: return "gemma4";
    case Arch::Qwen3: return "qwen3";
    case Arch::Llama: return "llama";
  }
  return "?";
}

std::string blk(int il, const char* what) { return "blk." + std::to_string(il) + "." + what + ".weight"; }

namespace {

constexpr const char* kSupportedArchs = "gemma4, qwen3, llama";

// A per-layer hyperparameter stored either as one scalar or as an array with one entry per layer.
std::vector<int> per_layer(const GgufFile& f, const std::string& key, int n_layer, bool required, int fallback) {
  const GgufValue* v = f.find(key);
  if (!v) {
    if (required) fail(f.path(), ": missing metadata key '", key, "'");
    return std::vector<int>(size_t(n_layer), fallback);
  }
  if (v->type == GgufType::ARRAY) {
    if (v->arr.size() != size_t(n_layer))
      fail(f.path(), ": metadata '", key, "' has ", v->arr.size(), " entries for ", n_layer, " layers");
    std::vector<int> out;
    for (const GgufValue& e : v->arr) {
      const uint64_t x = e.as_u64();
      if (x > (1u << 30)) fail(f.path(), ": metadata '", key, "' entry ", x, " out of range");
      out.push_back(int(x));
    }
    return out;
  }
  const uint32_t x = f.get_u32(key);
  if (x > (1u << 30)) fail(f.path(), ": metadata '", key, "' = ", x, " out of range");
  return std::vector<int>(size_t(n_layer), int(x));
}

int positive_u32(const GgufFile& f, const std::string& key, uint32_t max = 1u << 30) {
  const uint32_t v = f.get_u32(key);
  if (v == 0 || v > max) fail(f.path(), ": metadata '", key, "' = ", v, " out of range [1, ", max, "]");
  return int(v);
}

const char* weight_types = "F32, F16, BF16, Q8_0, Q4_K, Q6_K";

// Checks that tensor `name` exists with shape [ne0, ne1] (ne1 = 0: one-dimensional) and that its
// type is usable in its role (matrices: any supported type; vectors: F32).
void expect(const GgufFile& f, const std::string& name, int64_t ne0, int64_t ne1) {
  const GgufTensor* t = f.find_tensor(name);
  if (!t) fail(f.path(), ": missing tensor '", name, "'");
  const bool vec = ne1 == 0;
  const bool shape_ok = vec ? (t->ne.size() == 1 && t->ne[0] == ne0)
                            : (t->ne.size() == 2 && t->ne[0] == ne0 && t->ne[1] == ne1);
  if (!shape_ok) {
    std::ostringstream want;
    want << "[" << ne0;
    if (!vec) want << ", " << ne1;
    want << "]";
    fail(f.path(), ": tensor '", name, "' has shape ", t->shape_string(), ", expected ", want.str());
  }
  if (vec && t->type != DType::F32)
    fail(f.path(), ": tensor '", name, "' is ", dtype_name(t->type), "; norm and scale vectors must be F32");
  (void)weight_types;
}

}  // namespace

std::string ModelConfig::summary() const {
  std::ostringstream o;
  o << "arch " << arch_name(arch) << (name.empty() ? "" : " (" + name + ")") << "\n"
    << "  layers " << n_layer << ", d_model " << d_model << ", vocab " << n_vocab << ", context " << n_ctx
    << ", rms eps " << norm_eps << "\n"
    << "  attention scale " << attn_scale << ", embedding scale " << embed_scale
    << ", output " << (tied_output ? "tied to token_embd" : "output.weight");
  if (final_softcap > 0) o << ", final softcap " << final_softcap;
  o << "\n";
  if (sliding_window) o << "  sliding window " << sliding_window;
  if (n_kv_shared) o << ", KV-shared layers " << n_kv_shared;
  if (ple_dim) o << ", per-layer embedding width " << ple_dim;
  if (sliding_window || n_kv_shared || ple_dim) o << "\n";
  o << "  layer  type     heads  kv  head_dim  rot  rope_theta  freq_factors  ffn    kv_from\n";
  for (int il = 0; il < n_layer; ++il) {
    const LayerConfig& l = layers[size_t(il)];
    char buf[160];
    snprintf(buf, sizeof buf, "  %5d  %-7s  %5d  %2d  %8d  %3d  %10g  %-12s  %-5d  %d\n", il,
             l.sliding ? "sliding" : "full", l.n_head, l.n_head_kv, l.head_dim, l.n_rot, double(l.rope_theta),
             l.rope_freq_factors ? "rope_freqs" : "-", l.n_ff, l.kv_source);
    o << buf;
  }
  return o.str();
}

ModelConfig parse_config(const GgufFile& f) {
  ModelConfig c;
  const std::string arch = f.get_str("general.architecture");
  if (arch == "gemma4") c.arch = Arch::Gemma4;
  else if (arch == "qwen3") c.arch = Arch::Qwen3;
  else if (arch == "llama") c.arch = Arch::Llama;
  else fail(f.path(), ": unsupported architecture '", arch, "' (kiln supports ", kSupportedArchs, ")");
  if (const GgufValue* n = f.find("general.name"); n && n->type == GgufType::STRING) c.name = n->str;

  const std::string p = arch + ".";
  c.n_layer = positive_u32(f, p + "block_count", 4096);
  c.d_model = positive_u32(f, p + "embedding_length", 1 << 20);
  c.n_ctx = positive_u32(f, p + "context_length", 1 << 24);
  c.norm_eps = f.get_f32(p + "attention.layer_norm_rms_epsilon", 1e-6f);
  if (!(c.norm_eps > 0 && c.norm_eps < 1)) fail(f.path(), ": rms epsilon ", c.norm_eps, " out of range");

  const GgufTensor& embd = f.tensor("token_embd.weight");
  if (embd.ne.size() != 2 || embd.ne[0] != c.d_model)
    fail(f.path(), ": tensor 'token_embd.weight' has shape ", embd.shape_string(), ", expected [", c.d_model,
         ", n_vocab]");
  if (embd.ne[1] > (int64_t(1) << 30))
    fail(f.path(), ": tensor 'token_embd.weight' has ", embd.ne[1], " rows; kiln's vocabulary limit is 2^30");
  c.n_vocab = int(embd.ne[1]);
  if (const GgufValue* v = f.find(p + "vocab_size"); v && int64_t(v->as_u64()) != c.n_vocab)
    fail(f.path(), ": ", p, "vocab_size = ", v->as_u64(), " but token_embd.weight has ", c.n_vocab, " rows");

  const int n = c.n_layer;
  const std::vector<int> n_head = per_layer(f, p + "attention.head_count", n, true, 0);
  const std::vector<int> n_head_kv = per_layer(f, p + "attention.head_count_kv", n, false, n_head[0]);
  const std::vector<int> n_ff = per_layer(f, p + "feed_forward_length", n, true, 0);
  const int head_dim_full = int(f.get_u32(p + "attention.key_length", uint32_t(c.d_model / std::max(1, n_head[0]))));
  if (f.get_u32(p + "attention.value_length", uint32_t(head_dim_full)) != uint32_t(head_dim_full))
    fail(f.path(), ": key_length and value_length differ; kiln needs equal K and V head widths");
  const float theta = f.get_f32(p + "rope.freq_base", 10000.f);
  const int n_rot_full = int(f.get_u32(p + "rope.dimension_count", uint32_t(head_dim_full)));

  c.layers.resize(size_t(n));
  for (int il = 0; il < n; ++il) {
    LayerConfig& l = c.layers[size_t(il)];
    l.n_head = n_head[size_t(il)];
    l.n_head_kv = n_head_kv[size_t(il)];
    l.n_ff = n_ff[size_t(il)];
    l.head_dim = head_dim_full;
    l.n_rot = n_rot_full;
    l.rope_theta = theta;
    l.kv_source = il;
  }

  if (c.arch == Arch::Gemma4) {
    c.attn_scale = 1.0f;
    c.embed_scale = std::sqrt(float(c.d_model));
    c.final_softcap = f.get_f32(p + "final_logit_softcapping", 0.f);
    c.sliding_window = int(f.get_u32(p + "attention.sliding_window", 0));
    c.n_kv_shared = int(f.get_u32(p + "attention.shared_kv_layers", 0));
    c.ple_dim = int(f.get_u32(p + "embedding_length_per_layer_input", 0));
    const int hd_swa = int(f.get_u32(p + "attention.key_length_swa", uint32_t(head_dim_full)));
    if (f.get_u32(p + "attention.value_length_swa", uint32_t(hd_swa)) != uint32_t(hd_swa))
      fail(f.path(), ": key_length_swa and value_length_swa differ");
    const int rot_swa = int(f.get_u32(p + "rope.dimension_count_swa", uint32_t(hd_swa)));
    const float theta_swa = f.get_f32(p + "rope.freq_base_swa", 10000.f);
    const GgufValue& pat = f.get(p + "attention.sliding_window_pattern");
    if (pat.type != GgufType::ARRAY || pat.elem != GgufType::BOOL || pat.arr.size() != size_t(n))
      fail(f.path(), ": ", p, "attention.sliding_window_pattern must be an array of ", n, " bools");
    if (c.n_kv_shared < 0 || c.n_kv_shared >= n)
      fail(f.path(), ": shared_kv_layers = ", c.n_kv_shared, " must be below block_count ", n);
    const bool has_freqs = f.find_tensor("rope_freqs.weight") != nullptr;
    for (int il = 0; il < n; ++il) {
      LayerConfig& l = c.layers[size_t(il)];
      l.sliding = pat.arr[size_t(il)].as_bool();
      if (l.sliding) {
        if (c.sliding_window <= 0) fail(f.path(), ": sliding layers need attention.sliding_window > 0");
        l.head_dim = hd_swa;
        l.n_rot = rot_swa;
        l.rope_theta = theta_swa;
      } else {
        l.rope_freq_factors = has_freqs;
      }
    }
    // KV sharing: layers from n - n_kv_shared on read the cache of the last earlier layer of the
    // same kind (sliding or full) that owns one; llama.cpp resolves E4B's layout the same way.
    const int first_shared = n - c.n_kv_shared;
    for (int il = first_shared; il < n; ++il) {
      LayerConfig& l = c.layers[size_t(il)];
      int src = -1;
      for (int j = first_shared - 1; j >= 0 && src < 0; --j)
        if (c.layers[size_t(j)].sliding == l.sliding) src = j;
      if (src < 0) fail(f.path(), ": KV-shared layer ", il, " has no earlier ", l.sliding ? "sliding" : "full",
                        " layer to share a cache with");
      const LayerConfig& s = c.layers[size_t(src)];
      if (s.head_dim != l.head_dim || s.n_head_kv != l.n_head_kv)
        fail(f.path(), ": KV-shared layer ", il, " and its source layer ", src, " differ in KV shape");
      l.kv_source = src;
    }
    c.tied_output = f.find_tensor("output.weight") == nullptr;
  } else {
    c.attn_scale = 1.0f / std::sqrt(float(head_dim_full));
    c.tied_output = f.find_tensor("output.weight") == nullptr;
  }

  // ---- validate every tensor the forward pass reads ----
  const int d = c.d_model;
  for (int il = 0; il < n; ++il) {
    const LayerConfig& l = c.layers[size_t(il)];
    if (l.n_head <= 0 || l.n_head_kv <= 0 || l.n_head % l.n_head_kv != 0)
      fail(f.path(), ": layer ", il, ": ", l.n_head, " query heads do not divide into ", l.n_head_kv, " KV heads");
    if (l.head_dim <= 0 || l.head_dim % 2 != 0 || l.head_dim > 1024)
      fail(f.path(), ": layer ", il, ": head_dim ", l.head_dim, " must be even and at most 1024");
    if (l.n_rot <= 0 || l.n_rot > l.head_dim || l.n_rot % 2 != 0)
      fail(f.path(), ": layer ", il, ": rope dimension ", l.n_rot, " must be even and at most head_dim ", l.head_dim);
    if (l.n_ff <= 0) fail(f.path(), ": layer ", il, ": feed_forward_length must be positive");
    // Widths in 64 bits (heads may be up to 2^30 in the file), then bounded so the int widths the
    // forward passes compute with cannot overflow.
    const int64_t q = int64_t(l.n_head) * l.head_dim, kv = int64_t(l.n_head_kv) * l.head_dim;
    if (q > (int64_t(1) << 24))
      fail(f.path(), ": layer ", il, ": ", l.n_head, " heads of ", l.head_dim, " make a Q width of ", q,
           " (kiln's limit is 2^24)");
    expect(f, blk(il, "attn_norm"), d, 0);
    expect(f, blk(il, "attn_q"), d, q);
    expect(f, blk(il, "attn_output"), q, d);
    if (c.layer_owns_kv(il)) {
      expect(f, blk(il, "attn_k"), d, kv);
      expect(f, blk(il, "attn_v"), d, kv);
    }
    if (c.arch != Arch::Llama) {
      expect(f, blk(il, "attn_q_norm"), l.head_dim, 0);
      if (c.layer_owns_kv(il)) expect(f, blk(il, "attn_k_norm"), l.head_dim, 0);
    }
    expect(f, blk(il, "ffn_norm"), d, 0);
    expect(f, blk(il, "ffn_gate"), d, l.n_ff);
    expect(f, blk(il, "ffn_up"), d, l.n_ff);
    expect(f, blk(il, "ffn_down"), l.n_ff, d);
    if (c.arch == Arch::Gemma4) {
      expect(f, blk(il, "post_attention_norm"), d, 0);
      expect(f, blk(il, "post_ffw_norm"), d, 0);
      expect(f, blk(il, "layer_output_scale"), 1, 0);
      if (c.ple_dim) {
        expect(f, blk(il, "inp_gate"), d, c.ple_dim);
        expect(f, blk(il, "proj"), c.ple_dim, d);
        expect(f, blk(il, "post_norm"), d, 0);
      }
    }
  }
  expect(f, "output_norm.weight", d, 0);
  if (!c.tied_output) expect(f, "output.weight", d, c.n_vocab);
  if (c.arch == Arch::Gemma4) {
    if (c.ple_dim) {
      expect(f, "per_layer_token_embd.weight", int64_t(c.ple_dim) * n, c.n_vocab);
      expect(f, "per_layer_model_proj.weight", d, int64_t(c.ple_dim) * n);
      expect(f, "per_layer_proj_norm.weight", c.ple_dim, 0);
    }
    int max_pairs = 0;
    for (const LayerConfig& l : c.layers)
      if (l.rope_freq_factors) max_pairs = std::max(max_pairs, l.n_rot / 2);
    if (max_pairs) expect(f, "rope_freqs.weight", max_pairs, 0);
  }
  return c;
}

std::vector<std::string> decode_read_tensors(const GgufFile& f, const ModelConfig& c) {
  std::set<std::string> skip = {"token_embd.weight", "per_layer_token_embd.weight"};
  for (int il = 0; il < c.n_layer; ++il)
    if (!c.layer_owns_kv(il))
      for (const char* w : {"attn_k", "attn_v", "attn_k_norm"}) skip.insert(blk(il, w));
  std::vector<std::string> out;
  for (const GgufTensor& t : f.tensors())
    if (!skip.count(t.name)) out.push_back(t.name);
  if (c.tied_output) out.push_back("token_embd.weight");  // the output projection reads it whole
  return out;
}

uint64_t decode_weight_bytes(const GgufFile& f, const ModelConfig& c) {
  uint64_t total = 0;
  for (const std::string& name : decode_read_tensors(f, c)) total += f.tensor(name).nbytes;
  return total;
}

}  // namespace kiln
