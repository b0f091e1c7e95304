// ModelConfig: everything a forward pass needs to know about a model, parsed from GGUF metadata
// and checked against the file's tensors (presence, type, shape) so later code can trust it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"
#include "models/gguf.h"

namespace kiln {

enum class Arch { Gemma4, Qwen3, Llama };
const char* arch_name(Arch a);

struct LayerConfig {
  bool sliding = false;     // sliding-window attention (window = ModelConfig::sliding_window)
  int n_head = 0;           // query heads
  int n_head_kv = 0;        // key/value heads
  int head_dim = 0;         // per-head width of Q, K and V
  int n_rot = 0;            // rotated dimensions (NEOX pairs i, i + n_rot/2)
  float rope_theta = 0;     // RoPE base
  bool rope_freq_factors = false;  // divide each pair's frequency by rope_freqs[i] (Gemma 4 full layers)
  int kv_source = 0;        // layer whose KV cache this layer reads (itself unless KV-shared)
  int n_ff = 0;             // FFN hidden width
  bool has_kv() const { return true; }
};

struct ModelConfig {
  Arch arch = Arch::Qwen3;
  std::string name;         // general.name, if any
  int n_layer = 0;
  int d_model = 0;
  int n_vocab = 0;
  int n_ctx = 0;            // context_length from the file
  float norm_eps = 1e-6f;
  int sliding_window = 0;   // 0: no sliding layers
  int n_kv_shared = 0;      // trailing layers that reuse an earlier layer's KV cache
  int ple_dim = 0;          // per-layer embedding width (Gemma 4), 0 when absent
  float final_softcap = 0;  // 0: none; else logits = c * tanh(logits / c)
  float attn_scale = 0;     // softmax scale for QK^T: 1.0 (Gemma 4), 1/sqrt(head_dim) (Qwen3)
  float embed_scale = 1;    // token embedding multiplier (sqrt(d_model) for Gemma 4)
  bool tied_output = false; // output projection is token_embd.weight
  std::vector<LayerConfig> layers;

  bool layer_owns_kv(int il) const { return layers[size_t(il)].kv_source == il; }
  std::string summary() const;  // multi-line, for `kiln inspect`
};

// GGUF tensor names, as llama.cpp spells them.
std::string blk(int il, const char* what);  // "blk.<il>.<what>.weight"

// Parses the config and validates every tensor the architecture needs. Throws kiln::Error naming
// the file and the key or tensor at fault; unsupported architectures list the supported ones.
ModelConfig parse_config(const GgufFile& f);

// Weight bytes one decode step reads: every weight except the embedding lookup tables (of which a
// step reads one row), counting a tied output once, skipping K/V weights of KV-shared layers.
uint64_t decode_weight_bytes(const GgufFile& f, const ModelConfig& c);

// Names of the tensors a decode step reads in full (what decode_weight_bytes sums).
std::vector<std::string> decode_read_tensors(const GgufFile& f, const ModelConfig& c);

}  // namespace kiln
