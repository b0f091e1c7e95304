// Reference forward passes (reference/forward.h): self-consistency on small synthetic models that
// this test writes itself (random weights, llama.cpp metadata), in both activation modes.
//
// Contracts checked:
// - prefill(n) = prefill(k) + decode one token at a time (n-k), and = prefill(k) + prefill(n-k):
//   per-row logits agree to max |diff| <= 1e-4 * max |logit| (the reference computes each row
//   independently of the batch, so only reduction-order noise is allowed). The Gemma 4 model has
//   a sliding window of 4 over 24 tokens, sliding and full layers with their own head_dim and
//   rope_freqs, PLE and 3 trailing KV-shared layers, so the split points cover positions past the
//   window and every layer kind.
// - reset() reproduces the first run bit for bit; errors (context overflow, bad token) throw
//   kiln::Error and leave the state unchanged.
// - The two activation modes differ (Q8_1 quantization is really applied) but stay close.
// - greedy() feeds back argmax; argmax takes the lowest index on ties.
// - `kiln logits` writes exactly the reference logits and maps bad usage to UsageError.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "models/quant.h"
#include "reference/forward.h"
#include "runner/cli.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using testing::random_tokens;

using ref::Activations;

// ---- synthetic model files ---------------------------------------------------------------------

// Owns the tensor bytes until the file is written.
struct Builder {
  GgufWriter w;
  std::vector<std::vector<uint8_t>> bufs;
  uint64_t seed = 1;

  void add(const std::string& name, DType t, int64_t cols, int64_t rows, float stddev) {
    std::vector<float> x = testing::random_normal(size_t(cols * rows), seed++, stddev);
    std::vector<uint8_t> b(row_bytes(t, cols) * size_t(rows));
    for (int64_t r = 0; r < rows; ++r)
      encode_row(t, &x[size_t(r * cols)], &b[size_t(r) * row_bytes(t, cols)], cols);
    bufs.push_back(std::move(b));
    std::vector<int64_t> ne = {cols};
    if (rows > 1 || t != DType::F32) ne.push_back(rows);
    w.add_tensor(name, t, ne, bufs.back().data());
  }
  void vec(const std::string& name, std::vector<float> v) {
    std::vector<uint8_t> b(v.size() * 4);
    memcpy(b.data(), v.data(), b.size());
    bufs.push_back(std::move(b));
    w.add_tensor(name, DType::F32, {int64_t(v.size())}, bufs.back().data());
  }
  void norm(const std::string& name, int64_t n) { vec(name, testing::random_floats(size_t(n), seed++, 0.6f, 1.4f)); }
};

std::string blkn(int il, const char* what) { return blk(il, what); }

// Gemma 4 in small: d 128, 6 layers [S S F S S F], window 4, sliding head_dim 32 (theta 1e4),
// full head_dim 64 (theta 1e6, rope_freqs rotating only the first half), 3 KV-shared layers, PLE
// width 32, vocab 96, softcap 30. Q8_0 weights, BF16 per_layer_model_proj.
std::string write_gemma4(const std::string& path) {
  const int d = 128, L = 6, ff = 256, V = 96, P = 32, hs = 32, hf = 64, nh = 4, nkv = 2;
  const bool pattern[L] = {true, true, false, true, true, false};
  Builder b;
  b.w.set("general.architecture", GgufValue::string("gemma4"));
  b.w.set("gemma4.context_length", GgufValue::u32(4096));
  b.w.set("gemma4.embedding_length", GgufValue::u32(d));
  b.w.set("gemma4.block_count", GgufValue::u32(L));
  b.w.set("gemma4.feed_forward_length", GgufValue::u32(ff));
  b.w.set("gemma4.attention.head_count", GgufValue::u32(nh));
  b.w.set("gemma4.attention.head_count_kv", GgufValue::u32(nkv));
  b.w.set("gemma4.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  b.w.set("gemma4.attention.key_length", GgufValue::u32(hf));
  b.w.set("gemma4.attention.value_length", GgufValue::u32(hf));
  b.w.set("gemma4.attention.key_length_swa", GgufValue::u32(hs));
  b.w.set("gemma4.attention.value_length_swa", GgufValue::u32(hs));
  b.w.set("gemma4.rope.freq_base", GgufValue::f32(1e6f));
  b.w.set("gemma4.rope.freq_base_swa", GgufValue::f32(1e4f));
  b.w.set("gemma4.rope.dimension_count", GgufValue::u32(hf));
  b.w.set("gemma4.rope.dimension_count_swa", GgufValue::u32(hs));
  b.w.set("gemma4.attention.sliding_window", GgufValue::u32(4));
  std::vector<GgufValue> pat;
  for (bool s : pattern) pat.push_back(GgufValue::boolean(s));
  b.w.set("gemma4.attention.sliding_window_pattern", GgufValue::array(GgufType::BOOL, pat));
  b.w.set("gemma4.attention.shared_kv_layers", GgufValue::u32(3));
  b.w.set("gemma4.embedding_length_per_layer_input", GgufValue::u32(P));
  b.w.set("gemma4.final_logit_softcapping", GgufValue::f32(30.f));
  b.w.set("gemma4.vocab_size", GgufValue::u32(V));

  std::vector<float> freqs(hf / 2, 1.f);
  for (int i = hf / 4; i < hf / 2; ++i) freqs[size_t(i)] = 1e30f;  // proportional: half rotated
  b.vec("rope_freqs.weight", freqs);
  b.add("token_embd.weight", DType::Q8_0, d, V, 1.f);
  b.add("per_layer_token_embd.weight", DType::Q8_0, P * L, V, 1.f);
  b.add("per_layer_model_proj.weight", DType::BF16, d, P * L, 0.1f);
  b.norm("per_layer_proj_norm.weight", P);
  b.norm("output_norm.weight", d);
  for (int il = 0; il < L; ++il) {
    const int hd = pattern[il] ? hs : hf;
    b.norm(blkn(il, "attn_norm"), d);
    b.add(blkn(il, "attn_q"), DType::Q8_0, d, nh * hd, 0.1f);
    if (il < L - 3) {
      b.add(blkn(il, "attn_k"), DType::Q8_0, d, nkv * hd, 0.1f);
      b.add(blkn(il, "attn_v"), DType::Q8_0, d, nkv * hd, 0.1f);
      b.norm(blkn(il, "attn_k_norm"), hd);
    }
    b.add(blkn(il, "attn_output"), DType::Q8_0, nh * hd, d, 0.1f);
    b.norm(blkn(il, "attn_q_norm"), hd);
    b.norm(blkn(il, "post_attention_norm"), d);
    b.norm(blkn(il, "ffn_norm"), d);
    b.add(blkn(il, "ffn_gate"), DType::Q8_0, d, ff, 0.1f);
    b.add(blkn(il, "ffn_up"), DType::Q8_0, d, ff, 0.1f);
    b.add(blkn(il, "ffn_down"), DType::Q8_0, ff, d, 0.1f);
    b.norm(blkn(il, "post_ffw_norm"), d);
    b.vec(blkn(il, "layer_output_scale"), {0.5f + 0.1f * float(il)});
    b.add(blkn(il, "inp_gate"), DType::Q8_0, d, P, 0.1f);
    b.add(blkn(il, "proj"), DType::Q8_0, P, d, 0.1f);
    b.norm(blkn(il, "post_norm"), d);
  }
  b.w.write(path);
  return path;
}

// Qwen3 in small: d 256, 3 layers, 4 heads / 2 KV heads of 64, FFN 512, vocab 128; Q4_K with
// Q6_K attn_v / ffn_down / output (the Q4_K_M mix).
std::string write_qwen3(const std::string& path) {
  const int d = 256, L = 3, ff = 512, V = 128, nh = 4, nkv = 2, hd = 64;
  Builder b;
  b.w.set("general.architecture", GgufValue::string("qwen3"));
  b.w.set("qwen3.context_length", GgufValue::u32(4096));
  b.w.set("qwen3.embedding_length", GgufValue::u32(d));
  b.w.set("qwen3.block_count", GgufValue::u32(L));
  b.w.set("qwen3.feed_forward_length", GgufValue::u32(ff));
  b.w.set("qwen3.attention.head_count", GgufValue::u32(nh));
  b.w.set("qwen3.attention.head_count_kv", GgufValue::u32(nkv));
  b.w.set("qwen3.attention.key_length", GgufValue::u32(hd));
  b.w.set("qwen3.attention.value_length", GgufValue::u32(hd));
  b.w.set("qwen3.rope.freq_base", GgufValue::f32(1e6f));
  b.w.set("qwen3.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  b.add("token_embd.weight", DType::Q4_K, d, V, 1.f);
  b.norm("output_norm.weight", d);
  b.add("output.weight", DType::Q6_K, d, V, 0.1f);
  for (int il = 0; il < L; ++il) {
    b.norm(blkn(il, "attn_norm"), d);
    b.add(blkn(il, "attn_q"), DType::Q4_K, d, nh * hd, 0.1f);
    b.add(blkn(il, "attn_k"), DType::Q4_K, d, nkv * hd, 0.1f);
    b.add(blkn(il, "attn_v"), DType::Q6_K, d, nkv * hd, 0.1f);
    b.add(blkn(il, "attn_output"), DType::Q4_K, nh * hd, d, 0.1f);
    b.norm(blkn(il, "attn_q_norm"), hd);
    b.norm(blkn(il, "attn_k_norm"), hd);
    b.norm(blkn(il, "ffn_norm"), d);
    b.add(blkn(il, "ffn_gate"), DType::Q4_K, d, ff, 0.1f);
    b.add(blkn(il, "ffn_up"), DType::Q4_K, d, ff, 0.1f);
    b.add(blkn(il, "ffn_down"), DType::Q6_K, ff, d, 0.1f);
  }
  b.w.write(path);
  return path;
}

const GgufFile& gemma4_file() {
  static const GgufFile f = GgufFile::open(write_gemma4(testing::temp_dir() + "/forward_gemma4.gguf"));
  return f;
}
const GgufFile& qwen3_file() {
  static const GgufFile f = GgufFile::open(write_qwen3(testing::temp_dir() + "/forward_qwen3.gguf"));
  return f;
}


double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i])));
  return m;
}

// Rows [row0, row0 + rows) of `got` against the same rows of `want`: max |diff| <= tol * max|want|.
double g_worst_rel = 0;  // largest max|diff| / max|logit| seen by expect_rows_close (printed)

void expect_rows_close(const std::vector<float>& want, const float* got, int row0, int rows, int vocab,
                       const std::string& what) {
  const float* w = want.data() + size_t(row0) * size_t(vocab);
  const size_t n = size_t(rows) * size_t(vocab);
  const double scale = max_abs(w, n);
  ASSERT_GT(scale, 0.1) << what << ": logits are degenerate";
  double worst = 0;
  int worst_row = -1;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << ": non-finite logit at row " << row0 + int(i / size_t(vocab));
    const double e = std::fabs(double(got[i]) - double(w[i]));
    if (e > worst) worst = e, worst_row = row0 + int(i / size_t(vocab));
  }
  EXPECT_LE(worst, 1e-4 * scale) << what << ": worst row " << worst_row;
  g_worst_rel = std::max(g_worst_rel, worst / scale);
}

struct Case {
  const char* name;
  const GgufFile& (*file)();
  Activations mode;
};

class SelfConsistency : public ::testing::TestWithParam<Case> {};

TEST_P(SelfConsistency, PrefillEqualsPrefillPlusDecode) {
  const Case& c = GetParam();
  const int n = 24;
  g_worst_rel = 0;
  ref::Forward fw(c.file(), c.mode, n);
  const int V = fw.config().n_vocab;
  const std::vector<int32_t> tok = random_tokens(n, V, 7);
  const std::vector<float> full = fw.forward(tok.data(), n);
  ASSERT_EQ(full.size(), size_t(n) * size_t(V));
  ASSERT_EQ(fw.n_past(), n);
  for (int k : {1, 3, 9, 17}) {
    fw.reset();
    const std::vector<float> pre = fw.forward(tok.data(), k);
    expect_rows_close(full, pre.data(), 0, k, V, "prefill(" + std::to_string(k) + ")");
    for (int t = k; t < n; ++t) {
      const std::vector<float> one = fw.forward(&tok[size_t(t)], 1);
      ASSERT_EQ(fw.n_past(), t + 1);
      expect_rows_close(full, one.data(), t, 1, V, "prefill(" + std::to_string(k) + ") + decode at " + std::to_string(t));
    }
    // and in two chunks
    fw.reset();
    fw.forward(tok.data(), k);
    const std::vector<float> rest = fw.forward(&tok[size_t(k)], n - k);
    expect_rows_close(full, rest.data(), k, n - k, V, "prefill(" + std::to_string(k) + ") + prefill(rest)");
  }
  printf("%s: worst |prefill - (prefill + decode)| / max|logit| = %.3g\n", c.name, g_worst_rel);
}

TEST_P(SelfConsistency, ResetReproducesAndErrorsLeaveStateAlone) {
  const Case& c = GetParam();
  ref::Forward fw(c.file(), c.mode, 8);
  const int V = fw.config().n_vocab;
  const std::vector<int32_t> tok = random_tokens(8, V, 11);
  const std::vector<float> a = fw.forward(tok.data(), 5);
  EXPECT_THROW(fw.forward(tok.data(), 4), Error);  // 5 + 4 > 8
  EXPECT_EQ(fw.n_past(), 5);
  const int32_t bad[2] = {1, V};
  EXPECT_THROW(fw.forward(bad, 2), Error);
  const int32_t neg = -1;
  EXPECT_THROW(fw.forward(&neg, 1), Error);
  EXPECT_THROW(fw.forward(tok.data(), 0), Error);
  EXPECT_EQ(fw.n_past(), 5);
  fw.reset();
  EXPECT_EQ(fw.n_past(), 0);
  const std::vector<float> b = fw.forward(tok.data(), 5);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Models, SelfConsistency,
                         ::testing::Values(Case{"gemma4_q8_1", gemma4_file, Activations::Q8_1},
                                           Case{"gemma4_exact", gemma4_file, Activations::Exact},
                                           Case{"qwen3_q8_1", qwen3_file, Activations::Q8_1},
                                           Case{"qwen3_exact", qwen3_file, Activations::Exact},
                                           Case{"gemma4_llama", gemma4_file, Activations::LlamaCpu},
                                           Case{"qwen3_llama", qwen3_file, Activations::LlamaCpu}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(ForwardModes, Q8_1DiffersFromExactButStaysClose) {
  for (const GgufFile* f : {&gemma4_file(), &qwen3_file()}) {
    ref::Forward q(*f, Activations::Q8_1, 16), e(*f, Activations::Exact, 16);
    const std::vector<int32_t> tok = random_tokens(16, q.config().n_vocab, 3);
    const std::vector<float> lq = q.forward(tok.data(), 16), le = e.forward(tok.data(), 16);
    const double err = testing::nmse(lq.data(), le.data(), lq.size());
    printf("%s: NMSE(q8_1, exact) = %.3g\n", arch_name(q.config().arch), err);
    EXPECT_GT(err, 1e-9) << "Q8_1 mode did not quantize anything";
    EXPECT_LT(err, 1e-2) << "activation quantization alone should not move logits this much";
  }
}

TEST(ForwardGemma4, SlidingWindowAndSharedLayersAreExercised) {
  const ref::Forward fw(gemma4_file(), Activations::Exact, 1);
  const ModelConfig& c = fw.config();
  ASSERT_EQ(c.sliding_window, 4);
  ASSERT_EQ(c.n_kv_shared, 3);
  EXPECT_EQ(c.layers[3].kv_source, 1);
  EXPECT_EQ(c.layers[4].kv_source, 1);
  EXPECT_EQ(c.layers[5].kv_source, 2);
  EXPECT_TRUE(c.layers[2].rope_freq_factors);
  EXPECT_FALSE(c.layers[0].rope_freq_factors);
  EXPECT_EQ(c.ple_dim, 32);
  EXPECT_TRUE(c.tied_output);
}

TEST(ForwardGemma4, FullLayersSeePastTheWindow) {
  // Changing token 0 must change the logits at position 20, far past the window of 4: the full
  // layers (and the shared layer reading a full layer's cache) attend to the whole past.
  ref::Forward fw(gemma4_file(), Activations::Exact, 21);
  std::vector<int32_t> tok = random_tokens(21, fw.config().n_vocab, 5);
  const std::vector<float> a = fw.forward(tok.data(), 21);
  tok[0] = (tok[0] + 1) % fw.config().n_vocab;
  fw.reset();
  const std::vector<float> b = fw.forward(tok.data(), 21);
  const size_t V = size_t(fw.config().n_vocab);
  EXPECT_GT(testing::nmse(&b[20 * V], &a[20 * V], V), 1e-8);
}

TEST(ForwardGreedy, FeedsBackArgmax) {
  ref::Forward fw(qwen3_file(), Activations::Q8_1, 16);
  const int V = fw.config().n_vocab;
  const std::vector<int32_t> prompt = random_tokens(6, V, 9);
  const std::vector<int32_t> gen = ref::greedy(fw, prompt, 5);
  ASSERT_EQ(gen.size(), 5u);
  EXPECT_EQ(fw.n_past(), 10);  // the last generated token is not fed back
  // the same sequence through one batch: each generated token is the argmax of the row before it
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  fw.reset();
  const std::vector<float> l = fw.forward(all.data(), int(all.size()));
  for (size_t i = 0; i < gen.size(); ++i)
    EXPECT_EQ(gen[i], ref::argmax(&l[(prompt.size() - 1 + i) * size_t(V)], V)) << "step " << i;
}

TEST(ForwardArgmax, LowestIndexOnTiesAndSkipsNan) {
  const float nan = std::nanf("");
  const float a[] = {1.f, 3.f, -2.f, 3.f};
  EXPECT_EQ(ref::argmax(a, 4), 1);
  const float b[] = {nan, -5.f, -4.f, -4.f};
  EXPECT_EQ(ref::argmax(b, 4), 2);
  const float c[] = {0.5f};
  EXPECT_EQ(ref::argmax(c, 1), 0);
}

// ---- kiln logits -------------------------------------------------------------------------------

int run_cli(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  return cli_logits(int(argv.size()), argv.data());
}

TEST(CliLogits, WritesTheReferenceLogits) {
  const std::string out = testing::temp_dir() + "/cli_logits.f32";
  std::remove(out.c_str());
  const std::vector<int32_t> tok = {5, 17, 3, 90, 41, 2, 77};
  ASSERT_EQ(run_cli({"logits", "--model", gemma4_file().path(), "--tokens", "5,17,3,90,41,2,77", "--out", out}),
            kExitOk);
  ref::Forward fw(gemma4_file(), Activations::Q8_1, 7);
  const std::vector<float> want = fw.forward(tok.data(), 7);
  std::ifstream in(out, std::ios::binary);
  std::vector<float> got(want.size() + 1, std::nanf(""));
  in.read(reinterpret_cast<char*>(got.data()), std::streamsize(got.size() * sizeof(float)));
  ASSERT_EQ(size_t(in.gcount()), want.size() * sizeof(float)) << "file size";
  EXPECT_EQ(0, memcmp(want.data(), got.data(), want.size() * sizeof(float)));

  // --exact gives the exact-mode logits
  ASSERT_EQ(run_cli({"logits", "--model", gemma4_file().path(), "--tokens", "5,17,3,90,41,2,77", "--out", out,
                     "--exact"}),
            kExitOk);
  ref::Forward fe(gemma4_file(), Activations::Exact, 7);
  const std::vector<float> want_e = fe.forward(tok.data(), 7);
  std::ifstream in2(out, std::ios::binary);
  in2.read(reinterpret_cast<char*>(got.data()), std::streamsize(want_e.size() * sizeof(float)));
  EXPECT_EQ(0, memcmp(want_e.data(), got.data(), want_e.size() * sizeof(float)));
}

TEST(CliLogits, BadUsageAndBadInput) {
  const std::string m = qwen3_file().path();
  EXPECT_THROW(run_cli({"logits", "--tokens", "1,2"}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,,2"}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,x"}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,2", "--backend", "tpu"}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,2", "--bogus"}), UsageError);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,2,128"}), Error);  // vocab is 128
  EXPECT_THROW(run_cli({"logits", "--model", m + ".missing", "--tokens", "1"}), Error);
  EXPECT_THROW(run_cli({"logits", "--model", m, "--tokens", "1,2", "--backend", "gpu", "--exact"}), UsageError);
  if (!testing::have_gpu()) {  // with a GPU the same call runs the runner (tests/runner_test.cpp)
    try {
      run_cli({"logits", "--model", m, "--tokens", "1,2", "--backend", "gpu"});
      ADD_FAILURE() << "--backend gpu without a CUDA device must fail";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace kiln
