// Regression tests for what the GGUF fuzzer (fuzz/gguf_fuzz.cpp) and the sanitizer builds found.
// Each finding has a named test that checks the exact rejection kiln now gives; every stored
// artifact under tests/data/fuzz/ is also replayed through the fuzz target itself (compiled in
// below), so under the `asan` preset a reintroduced bug is a sanitizer report, not just a wrong
// message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/config.h"
#include "models/gguf.h"
#include "tests/gguf_bytes.h"
#include "tests/testing.h"

// The fuzz target, verbatim: LLVMFuzzerTestOneInput is an ordinary function without libFuzzer.
#include "fuzz/gguf_fuzz.cpp"

namespace kiln {
namespace {

using ::testing::HasSubstr;

const std::string kDataDir = std::string(KILN_SOURCE_DIR) + "/tests/data/fuzz";

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What the fuzzer does with an even-sized input: the header followed by a zero data section.
std::vector<uint8_t> with_zero_data(std::vector<uint8_t> b) {
  b.resize(b.size() + (8u << 20), 0);
  return b;
}

std::string config_error(const std::vector<uint8_t>& image) {
  try {
    const GgufFile f = GgufFile::parse(image.data(), image.size(), "crash.gguf");
    (void)parse_config(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

using Bytes = testing::GgufBytes;  // tests/gguf_bytes.h

TEST(FuzzRegression, EveryStoredArtifactReplaysWithoutAFinding) {
  DIR* d = opendir(kDataDir.c_str());
  ASSERT_NE(d, nullptr) << kDataDir;
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  ASSERT_FALSE(names.empty());
  for (const std::string& n : names) {
    SCOPED_TRACE(n);
    const std::vector<uint8_t> b = read_file(kDataDir + "/" + n);
    ASSERT_FALSE(b.empty());
    // Aborts (and fails the whole test binary) on a finding; sanitizer reports are fatal under
    // the asan preset.
    EXPECT_EQ(LLVMFuzzerTestOneInput(b.data(), b.size()), 0);
  }
}

// Finding 1 (fuzzer, UBSan): qwen3-tiny's header with attention.head_count = 0x02000004. The
// per-layer Q width n_head * head_dim was computed in int: signed overflow (UB) at
// models/config.cpp, and the wrapped negative width reached the shape checks.
TEST(FuzzRegression, HeadCountTimesHeadDimOverflow) {
  const std::vector<uint8_t> img = with_zero_data(read_file(kDataDir + "/config-q-width-overflow.hdr"));
  EXPECT_THAT(config_error(img), HasSubstr("crash.gguf: layer 0: 33554436 heads of 64 make a Q width of "
                                           "2147483904 (kiln's limit is 2^24)"));
}

// The same path just inside the limit still reaches (and fails) the tensor shape checks, so the
// limit does not reject more than it must.
TEST(FuzzRegression, HeadCountWithinTheLimitReachesTheShapeCheck) {
  std::vector<uint8_t> hdr = read_file(kDataDir + "/config-q-width-overflow.hdr");
  const std::string key = "qwen3.attention.head_count";
  auto it = std::search(hdr.begin(), hdr.end(), key.begin(), key.end());
  ASSERT_NE(it, hdr.end());
  const size_t at = size_t(it - hdr.begin()) + key.size() + 4;  // skip the u32 type tag
  const uint32_t heads = (1u << 24) / 64;  // Q width exactly 2^24
  memcpy(&hdr[at], &heads, 4);
  EXPECT_THAT(config_error(with_zero_data(hdr)),
              HasSubstr("tensor 'blk.0.attn_q.weight' has shape [256, 256], expected [256, 16777216]"));
}

// Finding 2 (fuzzer, RSS growth; confirmed by measurement): every metadata value costs ~96 bytes
// of host memory however few bytes it takes in the file, so a 64 MB file holding one u8 array made
// the reader allocate 6.2 GB. Metadata values and tensors are now capped in absolute terms.
TEST(FuzzRegression, MetadataArrayBombIsRejectedBeforeAllocating) {
  const uint64_t n = (uint64_t(1) << 23) + 1;
  Bytes r;
  r.header(0, 1).str("tokenizer.ggml.scores").pod<uint32_t>(9).pod<uint32_t>(0).pod<uint64_t>(n);
  r.b.resize(r.b.size() + n, 0);
  try {
    GgufFile::parse(r.b.data(), r.b.size(), "bomb.gguf");
    FAIL() << "parsed";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bomb.gguf: metadata 'tokenizer.ggml.scores': array length 8388609 takes "
                                    "the file past kiln's limit of 8388608 metadata values"));
  }
}

TEST(FuzzRegression, TensorCountIsCapped) {
  const uint64_t n = (uint64_t(1) << 20) + 1;
  Bytes r;
  r.header(n, 0);
  r.b.resize(r.b.size() + n * 24, 0);  // enough bytes that the count passes the file-size check
  try {
    GgufFile::parse(r.b.data(), r.b.size(), "many.gguf");
    FAIL() << "parsed";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("many.gguf: tensor count 1048577 exceeds kiln's limit of 1048576"));
  }
}

TEST(FuzzRegression, RealSizedTokenizerArraysStillParse) {
  // Gemma's 262144-entry score array is far below the limit.
  const uint64_t n = 262144;
  Bytes r;
  r.header(0, 1).str("tokenizer.ggml.scores").pod<uint32_t>(9).pod<uint32_t>(6).pod<uint64_t>(n);
  for (uint64_t i = 0; i < n; ++i) r.pod<float>(-float(i));
  const GgufFile f = GgufFile::parse(r.b.data(), r.b.size(), "tok.gguf");
  ASSERT_EQ(f.get("tokenizer.ggml.scores").arr.size(), n);
  EXPECT_EQ(f.get("tokenizer.ggml.scores").arr[n - 1].as_f64(), -double(n - 1));
}

// Finding 3 (review while triaging finding 1): token_embd rows were narrowed to int without a
// bound; 2^31 rows (an 8 GB file, or a sparse one) gave a negative vocabulary size.
TEST(FuzzRegression, VocabularyAboveTheLimit) {
  const uint64_t rows = uint64_t(1) << 31;
  Bytes r;
  r.header(1, 4).kv_str("general.architecture", "qwen3").kv_u32("qwen3.block_count", 1);
  r.kv_u32("qwen3.embedding_length", 1).kv_u32("qwen3.context_length", 8);
  r.str("token_embd.weight").pod<uint32_t>(2).pod<uint64_t>(1).pod<uint64_t>(rows).pod<uint32_t>(0).pod<uint64_t>(0);
  const size_t data_off = (r.b.size() + 31) / 32 * 32;
  const size_t size = data_off + rows * 4;
  // 8 GB of untouched anonymous zero pages: virtual only.
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) GTEST_SKIP() << "cannot reserve 8 GB of address space";
  memcpy(m, r.b.data(), r.b.size());
  std::string err;
  try {
    const GgufFile f = GgufFile::parse(static_cast<const uint8_t*>(m), size, "vocab.gguf");
    (void)parse_config(f);
  } catch (const Error& e) {
    err = e.what();
  }
  munmap(m, size);
  EXPECT_THAT(err, HasSubstr("vocab.gguf: tensor 'token_embd.weight' has 2147483648 rows; kiln's vocabulary "
                             "limit is 2^30"));
}

}  // namespace
}  // namespace kiln
