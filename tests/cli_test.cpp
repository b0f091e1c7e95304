// The `kiln` binary (KILN_CLI) against bad input: for every row of docs/bad-input.md, run the real
// command and check the exit code (1: bad input or runtime failure, 2: usage) and the exact first
// line it prints on stderr. Inputs are written to the build tree; models are kiln's synthetic
// presets (weights left as a sparse hole where nothing reads them) or hand-built GGUF bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "models/synth.h"
#include "runner/engine.h"
#include "runner/skip_ops.h"
#include "tests/gguf_bytes.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

std::string dir() {
  static const std::string d = [] {
    const std::string p = testing::temp_dir() + "/cli";
    mkdir(p.c_str(), 0755);
    return p;
  }();
  return d;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct CliResult {
  int code = -1;
  std::string out, err;
  std::string first_err() const { return err.substr(0, err.find('\n')); }
};

// Runs `kiln <args>` (args are shell words, already quoted where needed) with TMPDIR in the build
// tree and `env` (shell assignments) in its environment; returns the exit status and both streams.
CliResult kiln_env(const std::string& env, const std::string& args) {
  static int n = 0;
  const std::string base = dir() + "/run" + std::to_string(getpid()) + "_" + std::to_string(n++);
  const std::string cmd = env + " TMPDIR='" + dir() + "' '" + std::string(KILN_CLI) + "' " + args + " >'" + base +
                          ".out' 2>'" + base + ".err' </dev/null";
  const int st = std::system(cmd.c_str());
  CliResult r;
  r.code = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}
CliResult kiln(const std::string& args) { return kiln_env("", args); }

using Bytes = testing::GgufBytes;  // tests/gguf_bytes.h

std::string sz(const Bytes& b) { return std::to_string(b.b.size()); }

// qwen3-tiny with an edit applied, written with its weights as a sparse hole (inspect reads none).
template <class Edit>
std::string qwen_variant(const std::string& name, Edit edit, bool with_data = false) {
  SynthModel m = synth_model("qwen3-tiny", 5);
  edit(m);
  const std::string p = dir() + "/" + name;
  synth_write(m, p, {}, with_data);
  return p;
}
void set_meta(SynthModel& m, const std::string& key, GgufValue v) {
  for (auto& kv : m.metadata)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  FAIL() << "no key " << key;
}
void drop_meta(SynthModel& m, const std::string& key) {
  for (size_t i = 0; i < m.metadata.size(); ++i)
    if (m.metadata[i].first == key) {
      m.metadata.erase(m.metadata.begin() + long(i));
      return;
    }
  FAIL() << "no key " << key;
}
SynthTensor& tensor_of(SynthModel& m, const std::string& name) {
  for (SynthTensor& t : m.tensors)
    if (t.name == name) return t;
  throw Error("no tensor " + name);
}

void expect_error(const CliResult& r, int code, const std::string& line) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.first_err(), line);
}

// ---- GGUF files ------------------------------------------------------------------------------

TEST(CliGguf, ValidModelInspectsCleanly) {  // the control: the same path succeeds on a good file
  const std::string p = qwen_variant("good.gguf", [](SynthModel&) {});
  const CliResult r = kiln("inspect '" + p + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("arch qwen3"));
  EXPECT_THAT(r.out, HasSubstr("weight bytes read per decode token"));
}

TEST(CliGguf, MissingFile) {
  const std::string p = dir() + "/does-not-exist.gguf";
  expect_error(kiln("inspect '" + p + "'"), 1, "kiln inspect: error: " + p + ": cannot open (No such file or directory)");
}

TEST(CliGguf, DirectoryInsteadOfFile) {
  expect_error(kiln("inspect '" + dir() + "'"), 1, "kiln inspect: error: " + dir() + ": not a regular file");
}

TEST(CliGguf, EmptyFile) {
  const std::string p = Bytes().write(dir() + "/empty.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": truncated file: magic needs 4 bytes, 0 left (at byte 0 of 0)");
}

TEST(CliGguf, BadMagic) {
  Bytes b;
  b.header(0, 0, 3, 0x4c4d4747u);  // "GGML"
  const std::string p = b.write(dir() + "/magic.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": bad magic 0x4c4d4747: not a GGUF file (at byte 0 of 24)");
}

TEST(CliGguf, UnsupportedVersion) {
  Bytes b;
  b.header(0, 0, 1);
  const std::string p = b.write(dir() + "/v1.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": unsupported GGUF version 1 (kiln reads versions 2 and 3) (at byte 4 of 24)");
}

TEST(CliGguf, TruncatedHeader) {
  Bytes b;
  b.header(0, 1).str("general.architecture");  // the value type and value are missing
  const std::string p = b.write(dir() + "/trunc-header.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": truncated file: metadata value type needs 4 bytes, 0 left (at byte " +
                   sz(b) + " of " + sz(b) + ")");
}

TEST(CliGguf, TruncatedTensorData) {
  Bytes b;
  b.header(1, 0).tensor("w", {64}, 0, 0).pad().data(100);  // 64 F32 need 256 bytes
  const std::string p = b.write(dir() + "/trunc-data.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'w': data [0, 256) lies outside the data section of 100 bytes (truncated file?)");
}

TEST(CliGguf, TruncatedRealModel) {
  const std::string full = qwen_variant("full.gguf", [](SynthModel&) {}, /*with_data=*/true);
  const std::string s = slurp(full);
  const std::string p = dir() + "/half.gguf";
  std::ofstream(p, std::ios::binary).write(s.data(), std::streamsize(s.size() / 2));
  const CliResult r = kiln("inspect '" + p + "'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.first_err(), StartsWith("kiln inspect: error: " + p + ": tensor '"));
  EXPECT_THAT(r.first_err(), HasSubstr("lies outside the data section of"));
  EXPECT_THAT(r.first_err(), HasSubstr("(truncated file?)"));
}

TEST(CliGguf, UnknownTensorType) {
  Bytes b;
  size_t at = 0;
  b.header(1, 0).tensor("w", {32}, 99, 0, &at).pad().data(128);
  const std::string p = b.write(dir() + "/type99.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": tensor 'w': unknown tensor type id 99 (at byte " + std::to_string(at) +
                   " of " + sz(b) + ")");
}

TEST(CliGguf, UnsupportedQuantType) {
  Bytes b;
  size_t at = 0;
  b.header(1, 0).tensor("blk.0.attn_q.weight", {32}, 2, 0, &at).pad().data(32);  // Q4_0
  const std::string p = b.write(dir() + "/q4_0.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'blk.0.attn_q.weight': unsupported tensor type Q4_0 (kiln supports F32, F16, BF16, Q8_0, "
                   "Q4_K, Q6_K) (at byte " + std::to_string(at) + " of " + sz(b) + ")");
}

TEST(CliGguf, RowNotAMultipleOfTheBlock) {
  Bytes b;
  b.header(1, 0).tensor("w", {48}, 8, 0).pad().data(64);  // Q8_0 rows are multiples of 32
  const std::string p = b.write(dir() + "/q8-48.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'w': row length 48 is not a multiple of the Q8_0 block size 32 (at byte 24 of " + sz(b) + ")");
}

TEST(CliGguf, OverflowingDimensions) {
  Bytes b;
  b.header(1, 0).tensor("w", {1ull << 40, 1ull << 40}, 0, 0).pad();
  const std::string p = b.write(dir() + "/overflow.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": tensor 'w': element count overflows 64 bits (at byte 24 of " + sz(b) + ")");
}

TEST(CliGguf, OffsetOutsideTheFile) {
  Bytes b;
  b.header(1, 0).tensor("w", {8}, 0, 1ull << 50).pad().data(32);
  const std::string p = b.write(dir() + "/offset.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'w': data [1125899906842624, 1125899906842656) lies outside the data section of 32 bytes "
                   "(truncated file?)");
}

TEST(CliGguf, ArrayLongerThanTheFile) {
  Bytes b;
  b.header(0, 1).str("tokenizer.ggml.tokens").pod<uint32_t>(9).pod<uint32_t>(8).pod<uint64_t>(1ull << 40);
  const std::string p = b.write(dir() + "/array.gguf");
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": metadata 'tokenizer.ggml.tokens': array length 1099511627776 exceeds what the 0 bytes left can "
                   "hold (at byte 57 of 69)");
}

TEST(CliGguf, UnsupportedArchitecture) {
  const std::string p = qwen_variant("mamba.gguf", [](SynthModel& m) {
    set_meta(m, "general.architecture", GgufValue::string("mamba"));
  });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": unsupported architecture 'mamba' (kiln supports gemma4, qwen3, llama)");
}

TEST(CliGguf, MissingMetadataKey) {
  const std::string p = qwen_variant("nokey.gguf", [](SynthModel& m) { drop_meta(m, "qwen3.embedding_length"); });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": missing metadata key 'qwen3.embedding_length'");
}

TEST(CliGguf, WrongMetadataType) {
  const std::string p = qwen_variant("strkey.gguf", [](SynthModel& m) {
    set_meta(m, "qwen3.block_count", GgufValue::string("4"));
  });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p + ": metadata 'qwen3.block_count': expected an integer value, found string");
}

TEST(CliGguf, MissingTensor) {
  const std::string p = qwen_variant("notensor.gguf", [](SynthModel& m) {
    for (size_t i = 0; i < m.tensors.size(); ++i)
      if (m.tensors[i].name == "blk.1.ffn_up.weight") m.tensors.erase(m.tensors.begin() + long(i));
  });
  expect_error(kiln("inspect '" + p + "'"), 1, "kiln inspect: error: " + p + ": missing tensor 'blk.1.ffn_up.weight'");
}

TEST(CliGguf, MisShapedTensor) {
  const std::string p = qwen_variant("shape.gguf", [](SynthModel& m) {
    tensor_of(m, "blk.0.attn_q.weight").ne = {256, 128};
  });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'blk.0.attn_q.weight' has shape [256, 128], expected [256, 256]");
}

TEST(CliGguf, NormVectorNotF32) {
  const std::string p = qwen_variant("normtype.gguf", [](SynthModel& m) {
    tensor_of(m, "output_norm.weight").spec.type = DType::F16;
  });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": tensor 'output_norm.weight' is F16; norm and scale vectors must be F32");
}

TEST(CliGguf, HeadCountOverflowsTheQWidth) {  // the fuzzer's finding, through the CLI
  const std::string p = qwen_variant("heads.gguf", [](SynthModel& m) {
    set_meta(m, "qwen3.attention.head_count", GgufValue::u32(0x02000004u));
  });
  expect_error(kiln("inspect '" + p + "'"), 1,
               "kiln inspect: error: " + p +
                   ": layer 0: 33554436 heads of 64 make a Q width of 2147483904 (kiln's limit is 2^24)");
}

// ---- command-line arguments --------------------------------------------------------------------

TEST(CliArgs, NoCommand) {
  const CliResult r = kiln("");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.first_err(), "usage: kiln <command> [options]");
}

TEST(CliArgs, HelpIsNotAnError) {
  const CliResult r = kiln("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, StartsWith("usage: kiln <command> [options]"));
  EXPECT_EQ(r.err, "");
}

TEST(CliArgs, UnknownCommand) {
  const CliResult r = kiln("frobnicate");
  expect_error(r, 2, "kiln: unknown command 'frobnicate'");
  EXPECT_THAT(r.err, HasSubstr("usage: kiln <command>"));
}

TEST(CliArgs, BadFlagValue) {
  expect_error(kiln("run --prompt-tokens abc"), 2,
               "kiln run: --prompt-tokens must be an integer in [1, 1048576], got 'abc' (see kiln --help)");
}

TEST(CliArgs, FlagValueOutOfRange) {
  expect_error(kiln("run --gen -5"), 2, "kiln run: --gen must be an integer in [0, 1048576], got '-5' (see kiln --help)");
}

TEST(CliArgs, FlagWithoutValue) {
  expect_error(kiln("logits --tokens 1 --model"), 2, "kiln logits: --model needs a value (see kiln --help)");
}

TEST(CliArgs, UnexpectedArgument) {
  expect_error(kiln("inspect x.gguf --bogus"), 2, "kiln inspect: unexpected argument '--bogus' (see kiln --help)");
}

TEST(CliArgs, InspectWithoutAFile) {
  expect_error(kiln("inspect"), 2, "kiln inspect: expected exactly one FILE.gguf (see kiln --help)");
}

TEST(CliArgs, ModelAndPresetTogether) {
  expect_error(kiln("run --model a.gguf --preset qwen3-tiny"), 2,
               "kiln run: give --model or --preset, not both (see kiln --help)");
}

TEST(CliArgs, BadBackend) {
  expect_error(kiln("logits --model a.gguf --tokens 1 --backend tpu"), 2,
               "kiln logits: --backend must be cpu or gpu, got 'tpu' (see kiln --help)");
}

TEST(CliArgs, BadPrefillAttention) {
  expect_error(kiln("run --prefill-attention fp8"), 2,
               "kiln run: --prefill-attention must be split or half, got 'fp8' (see kiln --help)");
}

TEST(CliArgs, BadTokenList) {
  expect_error(kiln("logits --model a.gguf --tokens 1,,2"), 2,
               "kiln logits: --tokens must be an integer in [0, 2147483647], got '' (see kiln --help)");
}

TEST(CliArgs, UnknownPreset) {
  expect_error(kiln("synth --preset nope --out '" + dir() + "/nope.gguf'"), 1,
               "kiln synth: error: unknown preset 'nope' (presets: gemma4-e4b, qwen3-8b, gemma4-tiny, qwen3-tiny)");
}

// ---- runtime limits ----------------------------------------------------------------------------

TEST(CliLimits, PromptLongerThanTheContext) {
  expect_error(kiln("run --backend cpu --preset qwen3-tiny --prompt-tokens 4000 --gen 100"), 1,
               "kiln run: error: prompt (4000) + generated (100) tokens exceed the model's context of 4096");
}

TEST(CliLimits, LogitsPromptLongerThanTheContext) {
  const std::string m = dir() + "/ctx-qwen3-tiny.gguf";
  ASSERT_EQ(kiln("synth --preset qwen3-tiny --out '" + m + "'").code, 0);
  std::string toks = "1";
  for (int i = 1; i < 4097; ++i) toks += ",1";
  expect_error(kiln("logits --model '" + m + "' --tokens " + toks), 1,
               "kiln logits: error: 4097 tokens exceed the model's context_length of 4096");
}

TEST(CliLimits, ModelTooLargeForTheCpuPath) {
  // qwen3-8b's metadata with its 5 GB of weights as a sparse hole: refused before any compute.
  const CliResult r = kiln("run --backend cpu --preset qwen3-8b --prompt-tokens 4 --gen 1");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.first_err(),
              MatchesRegex("kiln run: error: preset qwen3-8b: [0-9]+ MB of weights is too large for the CPU "
                           "reference path \\(limit 1073 MB\\); run it on a GPU"));
  const long mb = std::atol(r.first_err().c_str() + std::string("kiln run: error: preset qwen3-8b: ").size());
  EXPECT_GT(mb, 4000);  // Qwen3-8B at Q4_K_M reads ~4.7 GB per token
}

TEST(CliLimits, TokenOutsideTheVocabulary) {
  const std::string p = qwen_variant("vocab.gguf", [](SynthModel&) {});
  expect_error(kiln("logits --model '" + p + "' --tokens 1,600"), 1,
               "kiln logits: error: reference forward: token 600 at index 1 is outside the vocabulary [0, 512)");
}

TEST(CliLimits, ArchitectureWithoutACpuReference) {
  // A valid llama file (qwen3-tiny renamed, no Q/K norms): inspect accepts it, logits cannot run it.
  const std::string p = qwen_variant("llama.gguf", [](SynthModel& m) {
    for (auto& kv : m.metadata)
      if (kv.first.rfind("qwen3.", 0) == 0) kv.first = "llama." + kv.first.substr(6);
    set_meta(m, "general.architecture", GgufValue::string("llama"));
    std::vector<SynthTensor> keep;
    for (SynthTensor& t : m.tensors)
      if (t.name.find("attn_q_norm") == std::string::npos && t.name.find("attn_k_norm") == std::string::npos)
        keep.push_back(t);
    m.tensors = keep;
  });
  EXPECT_EQ(kiln("inspect '" + p + "'").code, 0);
  expect_error(kiln("logits --model '" + p + "' --tokens 1,2"), 1,
               "kiln logits: error: " + p + ": the reference forward pass supports gemma4 and qwen3, not llama");
}

TEST(CliLimits, MissingCudaDevice) {
  if (testing::have_gpu()) GTEST_SKIP() << "a CUDA device is present";
  expect_error(kiln("run --backend gpu --preset qwen3-tiny"), 1, "kiln run: error: --backend gpu: no CUDA device found");
}

TEST(CliLimits, OutputFileThatCannotBeWritten) {
  const std::string p = qwen_variant("out.gguf", [](SynthModel&) {}, /*with_data=*/true);
  const std::string out = dir() + "/no-such-dir/logits.f32";
  expect_error(kiln("logits --model '" + p + "' --tokens 1 --out '" + out + "'"), 1,
               "kiln logits: error: cannot open '" + out + "' for writing: No such file or directory");
}

// KILN_SKIP_OPS (runner/skip_ops.h): the list parser, then the runner refusing a name it does not
// launch (a typo would otherwise silently time the full model).
TEST(SkipOps, ParsesKnownNamesAndIgnoresEmptyItems) {
  EXPECT_TRUE(parse_skip_ops(nullptr).empty());
  EXPECT_TRUE(parse_skip_ops("").empty());
  EXPECT_EQ(parse_skip_ops("rmsnorm,,silu_mul,"), (std::set<std::string>{"rmsnorm", "silu_mul"}));
  EXPECT_EQ(parse_skip_ops("gemm_n_tc"), (std::set<std::string>{"gemm_n_tc"}));
}

TEST(SkipOps, RejectsAnUnknownName) {
  try {
    parse_skip_ops("rmsnorm,rmsnrom");
    FAIL() << "no error for an unknown op";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), StartsWith("KILN_SKIP_OPS: unknown op 'rmsnrom' (ops: attention_decode, attention_prefill, "));
  }
}

// KILN_X_INTERLEAVE_ROWS (runner/engine.h): unset keeps the default, a decimal row count sets it,
// anything else is an error (a typo would otherwise time the other layout).
TEST(XInterleaveKnob, ParsesRowCountsAndRejectsTheRest) {
  EXPECT_EQ(parse_x_interleave_rows(nullptr, 7), 7);
  EXPECT_EQ(parse_x_interleave_rows("0", 7), 0);
  EXPECT_EQ(parse_x_interleave_rows("4096", 0), 4096);
  EXPECT_EQ(parse_x_interleave_rows("999999999999999999", 0), 999999999999999999);
  for (const char* bad : {"", "-1", "on", "4096 ", "1e6", "0x10", "9999999999999999999"}) {
    try {
      parse_x_interleave_rows(bad, 0);
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), StartsWith("KILN_X_INTERLEAVE_ROWS must be a row count (0 = never), not '"));
    }
  }
}

TEST(GpuCli, BadXInterleaveValue) {
  KILN_REQUIRE_GPU();
  const CliResult r =
      kiln_env("KILN_X_INTERLEAVE_ROWS=yes", "run --backend gpu --preset qwen3-tiny --prompt-tokens 4 --gen 2");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.first_err(),
              StartsWith("kiln run: error: KILN_X_INTERLEAVE_ROWS must be a row count (0 = never), not 'yes'"));
}

TEST(GpuCli, UnknownSkippedOp) {
  KILN_REQUIRE_GPU();
  const CliResult r = kiln_env("KILN_SKIP_OPS=rmsnrom", "run --backend gpu --preset qwen3-tiny --prompt-tokens 4 --gen 2");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.first_err(), StartsWith("kiln run: error: KILN_SKIP_OPS: unknown op 'rmsnrom' (ops: attention_decode, "));
}

// GPU: a model whose weights do not fit in device memory is refused before anything is allocated.
// qwen3-tiny with a 2^29-token vocabulary: ~190 GB of weights (a sparse file), more than any
// single H100/H200 holds.
TEST(GpuCli, ModelLargerThanGpuMemory) {
  KILN_REQUIRE_GPU();
  const int64_t vocab = int64_t(1) << 29;
  const std::string p = qwen_variant("huge.gguf", [&](SynthModel& m) {
    set_meta(m, "qwen3.vocab_size", GgufValue::u32(uint32_t(vocab)));
    tensor_of(m, "token_embd.weight").ne = {256, vocab};
    tensor_of(m, "output.weight").ne = {256, vocab};
  });
  const CliResult r = kiln("run --backend gpu --model '" + p + "' --prompt-tokens 1 --gen 1");
  std::remove(p.c_str());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.first_err(), MatchesRegex("kiln run: error: the model needs [0-9]+ MB of GPU memory \\(weights [0-9]+ "
                                          "MB, KV cache [0-9]+ MB, activations [0-9]+ MB\\) but .* has [0-9]+ MB free"));
}

}  // namespace
}  // namespace kiln
