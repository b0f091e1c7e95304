// Model configs parsed from GGUF metadata, synthetic presets written and read back, the decode
// byte counts of the full-size presets against ../shared/anchors.md, and config errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/common/error.h"
#include "models/config.h"
#include "models/quant.h"
#include "models/synth.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

std::string write_preset(const std::string& preset, uint64_t seed, bool with_data = true) {
  const std::string path = testing::temp_dir() + "/" + preset + "-" + std::to_string(seed) + (with_data ? "" : "-sparse") + ".gguf";
  synth_write(synth_model(preset, seed), path, {}, with_data);
  return path;
}

std::string config_error(const SynthModel& m) {
  const std::string path = testing::temp_dir() + "/bad.gguf";
  synth_write(m, path);
  try {
    parse_config(GgufFile::open(path));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

int64_t parse_int_meta(const SynthModel& m, const std::string& key) {
  for (const auto& kv : m.metadata)
    if (kv.first == key) return int64_t(kv.second.as_u64());
  ADD_FAILURE() << "no key " << key;
  return 1;
}

void check_gemma4_tiny_layout(const ModelConfig& c) {
  EXPECT_EQ(c.arch, Arch::Gemma4);
  ASSERT_EQ(c.n_layer, 6);
  EXPECT_EQ(c.d_model, 256);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.sliding_window, 8);
  EXPECT_EQ(c.ple_dim, 64);
  EXPECT_EQ(c.final_softcap, 30.f);
  EXPECT_EQ(c.attn_scale, 1.f);
  EXPECT_FLOAT_EQ(c.embed_scale, 16.f);
  EXPECT_TRUE(c.tied_output);
  const bool sliding[6] = {true, true, false, true, true, false};
  const int kv_source[6] = {0, 1, 2, 1, 1, 2};  // sliding share layer 1, full share layer 2
  for (int il = 0; il < 6; ++il) {
    const LayerConfig& l = c.layers[size_t(il)];
    EXPECT_EQ(l.sliding, sliding[il]) << il;
    EXPECT_EQ(l.head_dim, sliding[il] ? 64 : 128) << il;
    EXPECT_EQ(l.rope_theta, sliding[il] ? 1e4f : 1e6f) << il;
    EXPECT_EQ(l.rope_freq_factors, !sliding[il]) << il;
    EXPECT_EQ(l.kv_source, kv_source[il]) << il;
    EXPECT_EQ(l.n_head, 2);
    EXPECT_EQ(l.n_head_kv, 1);
  }
}

TEST(Config, ParityGemma4File) {
  const std::string dir = testing::parity_dir();
  if (dir.empty()) GTEST_SKIP() << "parity set not found (../shared/parity or $KILN_PARITY_DIR)";
  const GgufFile f = GgufFile::open(dir + "/gemma4-tiny-s1.gguf");
  check_gemma4_tiny_layout(parse_config(f));
}

TEST(Config, ParityQwen3File) {
  const std::string dir = testing::parity_dir();
  if (dir.empty()) GTEST_SKIP() << "parity set not found (../shared/parity or $KILN_PARITY_DIR)";
  const ModelConfig c = parse_config(GgufFile::open(dir + "/qwen3-tiny-s1.gguf"));
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_FALSE(c.tied_output);
  EXPECT_FLOAT_EQ(c.attn_scale, 0.125f);
  for (const LayerConfig& l : c.layers) {
    EXPECT_EQ(l.head_dim, 64);
    EXPECT_EQ(l.n_rot, 64);
    EXPECT_EQ(l.n_head, 4);
    EXPECT_EQ(l.n_head_kv, 2);
    EXPECT_EQ(l.n_ff, 768);
    EXPECT_FALSE(l.sliding);
  }
}

TEST(Synth, TinyGemma4WrittenAndReadBackIdentically) {
  const SynthModel m = synth_model("gemma4-tiny", 5);
  const std::string path = write_preset("gemma4-tiny", 5);
  const GgufFile f = GgufFile::open(path);
  check_gemma4_tiny_layout(parse_config(f));
  ASSERT_EQ(f.tensors().size(), m.tensors.size());
  for (const SynthTensor& t : m.tensors) {
    const GgufTensor& g = f.tensor(t.name);
    EXPECT_EQ(g.type, t.spec.type) << t.name;
    EXPECT_EQ(g.ne, t.ne) << t.name;
    std::vector<uint8_t> want(t.nbytes());
    synth_fill(t, 0, t.nblocks(), want.data());
    ASSERT_EQ(g.nbytes, want.size()) << t.name;
    EXPECT_EQ(0, memcmp(g.data, want.data(), want.size())) << t.name;
  }
  for (const auto& kv : m.metadata) EXPECT_EQ(f.get(kv.first).to_string(64), kv.second.to_string(64)) << kv.first;
}

TEST(Synth, TinyQwen3UsesTheQ4KMRecipe) {
  const GgufFile f = GgufFile::open(write_preset("qwen3-tiny", 2));
  const ModelConfig c = parse_config(f);
  EXPECT_EQ(c.n_layer, 4);
  // use_more_bits(il, 4): layers 2 and 3 get Q6_K attn_v and ffn_down; output is Q6_K.
  for (int il = 0; il < 4; ++il) {
    const DType want = il >= 2 ? DType::Q6_K : DType::Q4_K;
    EXPECT_EQ(f.tensor(blk(il, "attn_v")).type, want) << il;
    EXPECT_EQ(f.tensor(blk(il, "ffn_down")).type, want) << il;
    EXPECT_EQ(f.tensor(blk(il, "attn_q")).type, DType::Q4_K) << il;
  }
  EXPECT_EQ(f.tensor("output.weight").type, DType::Q6_K);
}

TEST(Synth, SeedsChangeTheWeightsDeterministically) {
  const SynthModel a = synth_model("qwen3-tiny", 1), b = synth_model("qwen3-tiny", 1), c = synth_model("qwen3-tiny", 2);
  const SynthTensor& ta = a.tensors[0];
  std::vector<uint8_t> x(ta.nbytes()), y(ta.nbytes()), z(ta.nbytes());
  synth_fill(ta, 0, ta.nblocks(), x.data());
  synth_fill(b.tensors[0], 0, ta.nblocks(), y.data());
  synth_fill(c.tensors[0], 0, ta.nblocks(), z.data());
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

TEST(Synth, WeightsHaveTheIntendedScale) {
  // Matrices: std 1/sqrt(K) after decoding, for every quant type the presets use.
  for (const char* preset : {"qwen3-tiny", "gemma4-tiny"}) {
    const SynthModel m = synth_model(preset, 3);
    for (const SynthTensor& t : m.tensors) {
      if (t.spec.kind != SynthKind::Random || t.ne.size() != 2) continue;
      std::vector<uint8_t> raw(t.nbytes());
      synth_fill(t, 0, t.nblocks(), raw.data());
      const std::vector<float> w = dequantize(t.spec.type, raw.data(), t.ne[1], t.ne[0]);
      double s = 0, s2 = 0;
      for (float v : w) {
        ASSERT_TRUE(std::isfinite(v)) << t.name;
        s += v;
        s2 += double(v) * v;
      }
      const double n = double(w.size()), mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
      // The per-layer table holds n_layer slices of width P, each scaled by sqrt(P) when used.
      const bool ple_table = t.name == "per_layer_token_embd.weight";
      const double k = ple_table ? double(parse_int_meta(m, "gemma4.embedding_length_per_layer_input")) : double(t.ne[0]);
      const double want = 1.0 / std::sqrt(k);
      EXPECT_NEAR(sd / want, 1.0, 0.2) << preset << " " << t.name << " " << dtype_name(t.spec.type);
      EXPECT_LT(std::fabs(mean), 0.1 * want) << preset << " " << t.name;
    }
  }
}

// The full-size presets must match the tensor list and types of the files llama.cpp was measured
// on (../shared/anchors.md): same weight bytes read per decode token.
TEST(Synth, FullSizePresetsMatchTheAnchorByteCounts) {
  const struct {
    const char* preset;
    uint64_t bytes;
    int n_layer;
  } cases[] = {{"qwen3-8b", 4671766528ull, 36}, {"gemma4-e4b", 4962170024ull, 42}};
  for (const auto& c : cases) {
    const std::string path = write_preset(c.preset, 1, /*with_data=*/false);  // sparse: no disk cost
    const GgufFile f = GgufFile::open(path);
    const ModelConfig cfg = parse_config(f);
    EXPECT_EQ(cfg.n_layer, c.n_layer);
    EXPECT_EQ(decode_weight_bytes(f, cfg), c.bytes) << c.preset;
    std::remove(path.c_str());
  }
}

TEST(Synth, UnknownPresetListsThePresets) {
  try {
    synth_model("gemma9", 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown preset 'gemma9'"));
    EXPECT_THAT(e.what(), HasSubstr("qwen3-8b"));
  }
}

TEST(Config, UnsupportedArchitectureListsSupported) {
  SynthModel m = synth_model("qwen3-tiny", 1);
  m.metadata[0].second = GgufValue::string("mamba");
  const std::string e = config_error(m);
  EXPECT_THAT(e, HasSubstr("unsupported architecture 'mamba'"));
  EXPECT_THAT(e, HasSubstr("gemma4, qwen3"));
}

TEST(Config, MissingTensor) {
  SynthModel m = synth_model("qwen3-tiny", 1);
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (m.tensors[i].name == "blk.1.ffn_up.weight") m.tensors.erase(m.tensors.begin() + long(i));
  EXPECT_THAT(config_error(m), HasSubstr("missing tensor 'blk.1.ffn_up.weight'"));
}

TEST(Config, MisShapedTensor) {
  SynthModel m = synth_model("gemma4-tiny", 1);
  for (SynthTensor& t : m.tensors)
    if (t.name == "blk.2.attn_q.weight") t.ne = {256, 128};
  EXPECT_THAT(config_error(m), HasSubstr("'blk.2.attn_q.weight' has shape [256, 128], expected [256, 256]"));
}

TEST(Config, NormMustBeF32) {
  SynthModel m = synth_model("qwen3-tiny", 1);
  for (SynthTensor& t : m.tensors)
    if (t.name == "output_norm.weight") t.spec.type = DType::F16;
  EXPECT_THAT(config_error(m), HasSubstr("norm and scale vectors must be F32"));
}

TEST(Config, MissingKeyAndBadHeads) {
  SynthModel m = synth_model("qwen3-tiny", 1);
  for (size_t i = 0; i < m.metadata.size(); ++i)
    if (m.metadata[i].first == "qwen3.block_count") m.metadata.erase(m.metadata.begin() + long(i));
  EXPECT_THAT(config_error(m), HasSubstr("missing metadata key 'qwen3.block_count'"));
  SynthModel h = synth_model("qwen3-tiny", 1);
  for (auto& kv : h.metadata)
    if (kv.first == "qwen3.attention.head_count_kv") kv.second = GgufValue::u32(3);
  EXPECT_THAT(config_error(h), HasSubstr("do not divide"));
}


// The tiny presets have the same metadata keys and the same tensor names, types and shapes as the
// parity files, which were written by llama.cpp's own gguf package and loaded by llama.cpp: the
// evidence, short of running llama.cpp here, that llama.cpp loads kiln's synthetic files.
TEST(Synth, TinyPresetsMatchTheLayoutOfTheLlamaCppParityFiles) {
  const std::string dir = testing::parity_dir();
  if (dir.empty()) GTEST_SKIP() << "parity set not found (../shared/parity or $KILN_PARITY_DIR)";
  for (const auto& c : {std::make_pair("gemma4-tiny", "gemma4-tiny-s1.gguf"),
                        std::make_pair("qwen3-tiny", "qwen3-tiny-s1.gguf")}) {
    const GgufFile mine = GgufFile::open(write_preset(c.first, 1));
    const GgufFile theirs = GgufFile::open(dir + "/" + c.second);
    for (const auto& kv : theirs.metadata()) {
      const GgufValue* v = mine.find(kv.first);
      ASSERT_NE(v, nullptr) << c.first << " lacks key " << kv.first;
      EXPECT_EQ(v->type, kv.second.type) << kv.first;
      if (kv.first != "general.name" && kv.first != "general.synthetic_seed") {
        EXPECT_EQ(v->to_string(64), kv.second.to_string(64)) << c.first << " " << kv.first;
      }
    }
    ASSERT_EQ(mine.tensors().size(), theirs.tensors().size()) << c.first;
    for (const GgufTensor& t : theirs.tensors()) {
      const GgufTensor* m = mine.find_tensor(t.name);
      ASSERT_NE(m, nullptr) << c.first << " lacks tensor " << t.name;
      EXPECT_EQ(m->type, t.type) << t.name;
      EXPECT_EQ(m->ne, t.ne) << t.name;
    }
  }
}

}  // namespace
}  // namespace kiln
