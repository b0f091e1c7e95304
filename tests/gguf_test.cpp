// GGUF reader/writer: round trips, and every hostile-input case the reader must reject with a
// clear kiln::Error (never a crash, never an out-of-bounds read: the CI sanitizer preset runs
// these under ASan/UBSan).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "tests/gguf_bytes.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

using Raw = testing::GgufBytes;  // tests/gguf_bytes.h

std::string parse_error(const Raw& r) {
  try {
    GgufFile::parse(r.b.data(), r.b.size(), "mem.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A valid file: one kv, two F32 tensors.
Raw valid() {
  Raw r;
  r.header(2, 1).kv_u32("general.alignment", 32);
  r.tensor("a", {4, 2}, 0, 0).tensor("b", {8}, 0, 32);
  r.pad().data(64);
  return r;
}

TEST(Gguf, ValidMinimalFileParses) {
  const Raw r = valid();
  const GgufFile f = GgufFile::parse(r.b.data(), r.b.size(), "mem.gguf");
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensor("a").nbytes, 32u);
  EXPECT_EQ(f.tensor("b").data - f.tensor("a").data, 32);
  EXPECT_EQ(f.tensor("a").data[0], 1);  // first data byte written by Raw::data
  EXPECT_EQ(f.get_u32("general.alignment"), 32u);
}

TEST(Gguf, EveryTruncationIsAnErrorNotACrash) {
  const Raw full = valid();
  for (size_t n = 0; n < full.b.size(); ++n) {
    Raw r;
    r.b.assign(full.b.begin(), full.b.begin() + long(n));
    const std::string e = parse_error(r);
    ASSERT_FALSE(e.empty()) << "prefix of " << n << " bytes parsed";
    EXPECT_THAT(e, HasSubstr("mem.gguf")) << e;
  }
}

TEST(Gguf, BadMagic) {
  Raw r = valid();
  r.b[0] = 'X';
  EXPECT_THAT(parse_error(r), HasSubstr("bad magic"));
}

TEST(Gguf, UnsupportedVersion) {
  Raw r;
  r.header(0, 0, 1);
  EXPECT_THAT(parse_error(r), HasSubstr("unsupported GGUF version 1"));
  Raw r4;
  r4.header(0, 0, 4);
  EXPECT_THAT(parse_error(r4), HasSubstr("unsupported GGUF version 4"));
}

TEST(Gguf, CountsLargerThanTheFile) {
  Raw r;
  r.header(1ull << 60, 0);
  EXPECT_THAT(parse_error(r), HasSubstr("tensor count"));
  Raw k;
  k.header(0, 1ull << 62);
  EXPECT_THAT(parse_error(k), HasSubstr("metadata count"));
}

TEST(Gguf, StringLengthLargerThanTheFile) {
  Raw r;
  r.header(0, 1).pod<uint64_t>(1ull << 40).data(64);  // key length
  EXPECT_THAT(parse_error(r), HasSubstr("string length"));
  Raw v;
  v.header(0, 1).str("k").pod<uint32_t>(8).pod<uint64_t>(~0ull);  // string value length
  EXPECT_THAT(parse_error(v), HasSubstr("string length"));
}

TEST(Gguf, ArrayLengthLargerThanTheFile) {
  Raw r;
  r.header(0, 1).str("k").pod<uint32_t>(9).pod<uint32_t>(4).pod<uint64_t>(1ull << 61);
  EXPECT_THAT(parse_error(r), HasSubstr("array length"));
}

TEST(Gguf, NestedArraysTooDeep) {
  Raw r;
  r.header(0, 1).str("k").pod<uint32_t>(9);
  for (int i = 0; i < 20; ++i) r.pod<uint32_t>(9).pod<uint64_t>(1);
  r.pod<uint32_t>(4).pod<uint64_t>(1).pod<uint32_t>(7);
  EXPECT_THAT(parse_error(r), HasSubstr("nested deeper"));
}

TEST(Gguf, NestedArraysWithinLimitParse) {
  Raw r;
  r.header(0, 1).str("k").pod<uint32_t>(9).pod<uint32_t>(9).pod<uint64_t>(2);
  for (int i = 0; i < 2; ++i) r.pod<uint32_t>(8).pod<uint64_t>(1).str(i ? "y" : "x");
  const GgufFile f = GgufFile::parse(r.b.data(), r.b.size(), "mem.gguf");
  const GgufValue& v = f.get("k");
  ASSERT_EQ(v.arr.size(), 2u);
  EXPECT_EQ(v.arr[1].arr[0].as_string(), "y");
}

TEST(Gguf, UnknownValueTypeAndBadBool) {
  Raw r;
  r.header(0, 1).str("k").pod<uint32_t>(13).pod<uint32_t>(0);
  EXPECT_THAT(parse_error(r), HasSubstr("unknown value type 13"));
  Raw b;
  b.header(0, 1).str("k").pod<uint32_t>(7).pod<uint8_t>(2);
  EXPECT_THAT(parse_error(b), HasSubstr("bool value 2"));
}

TEST(Gguf, DuplicateKeysAndTensors) {
  Raw r;
  r.header(0, 2).kv_u32("x", 1).kv_u32("x", 2);
  EXPECT_THAT(parse_error(r), HasSubstr("duplicate metadata key 'x'"));
  Raw t;
  t.header(2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad().data(64);
  EXPECT_THAT(parse_error(t), HasSubstr("duplicate tensor name 'a'"));
}

TEST(Gguf, DimensionCountAndZeroDims) {
  Raw r;
  r.header(1, 0).tensor("a", {}, 0, 0);
  EXPECT_THAT(parse_error(r), HasSubstr("0 dimensions"));
  Raw r5;
  r5.header(1, 0).tensor("a", {1, 1, 1, 1, 1}, 0, 0);
  EXPECT_THAT(parse_error(r5), HasSubstr("5 dimensions"));
  Raw z;
  z.header(1, 0).tensor("a", {4, 0}, 0, 0);
  EXPECT_THAT(parse_error(z), HasSubstr("dimension 1 is 0"));
}

TEST(Gguf, DimensionProductOverflow) {
  Raw r;
  r.header(1, 0).tensor("a", {1ull << 40, 1ull << 40}, 0, 0);
  EXPECT_THAT(parse_error(r), HasSubstr("overflows"));
}

TEST(Gguf, UnknownAndUnsupportedTensorTypes) {
  Raw r;
  r.header(1, 0).tensor("a", {32}, 99, 0).pad().data(64);
  EXPECT_THAT(parse_error(r), HasSubstr("unknown tensor type id 99"));
  Raw q;
  q.header(1, 0).tensor("w", {32}, 2, 0).pad().data(64);  // Q4_0
  const std::string e = parse_error(q);
  EXPECT_THAT(e, HasSubstr("unsupported tensor type Q4_0"));
  EXPECT_THAT(e, HasSubstr("Q4_K"));  // lists what is supported
}

TEST(Gguf, RowNotAMultipleOfTheBlock) {
  Raw r;
  r.header(1, 0).tensor("w", {33}, 8, 0).pad().data(64);  // Q8_0 needs multiples of 32
  EXPECT_THAT(parse_error(r), HasSubstr("not a multiple of the Q8_0 block size 32"));
}

TEST(Gguf, OffsetsOutsideTheFileOrMisaligned) {
  Raw r;
  r.header(1, 0).tensor("a", {8}, 0, 1ull << 50).pad().data(32);
  EXPECT_THAT(parse_error(r), HasSubstr("outside the data section"));
  Raw e;
  e.header(1, 0).tensor("a", {16}, 0, 0).pad().data(32);  // needs 64 bytes, has 32
  EXPECT_THAT(parse_error(e), HasSubstr("outside the data section"));
  Raw m;
  m.header(1, 0).tensor("a", {8}, 0, 4).pad().data(64);
  EXPECT_THAT(parse_error(m), HasSubstr("not a multiple of the alignment"));
  Raw w;
  w.header(1, 0).tensor("a", {8}, 0, ~0ull - 15).pad().data(64);  // offset + size wraps
  EXPECT_FALSE(parse_error(w).empty());
}

TEST(Gguf, OverlappingTensors) {
  Raw r;
  r.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().data(96);
  EXPECT_THAT(parse_error(r), HasSubstr("overlap"));
}

TEST(Gguf, BadAlignment) {
  Raw r;
  r.header(0, 1).kv_u32("general.alignment", 3);
  EXPECT_THAT(parse_error(r), HasSubstr("not a power of two"));
  Raw t;
  t.header(0, 1).str("general.alignment").pod<uint32_t>(8).str("32");
  EXPECT_THAT(parse_error(t), HasSubstr("must be u32"));
}

TEST(Gguf, MissingKeysAndTensorsNameTheFile) {
  const Raw r = valid();
  const GgufFile f = GgufFile::parse(r.b.data(), r.b.size(), "mem.gguf");
  try {
    f.get("nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("mem.gguf: missing metadata key 'nope'"));
  }
  EXPECT_THROW(f.tensor("nope"), Error);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(Gguf, OpenMissingFileAndDirectory) {
  try {
    GgufFile::open("/nonexistent/x.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/x.gguf: cannot open"));
  }
  EXPECT_THROW(GgufFile::open("/tmp"), Error);
}

TEST(Gguf, WriterRoundTripsMetadataAndTensors) {
  const std::string path = testing::temp_dir() + "/roundtrip.gguf";
  std::vector<float> a = testing::random_floats(64, 1);
  std::vector<uint8_t> q(34 * 4);
  for (size_t i = 0; i < q.size(); ++i) q[i] = uint8_t(i * 13 + 5);
  GgufWriter w;
  w.set("s", GgufValue::string("hello"));
  w.set("u", GgufValue::u32(7));
  w.set("f", GgufValue::f32(1.5f));
  w.set("arr", GgufValue::array(GgufType::BOOL, {GgufValue::boolean(true), GgufValue::boolean(false)}));
  w.set("u", GgufValue::u32(9));  // replaces in place
  w.add_tensor("a", DType::F32, {16, 4}, a.data());
  w.add_tensor("q", DType::Q8_0, {64, 2}, q.data());
  w.write(path, 64);

  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_str("s"), "hello");
  EXPECT_EQ(f.get_u32("u"), 9u);
  EXPECT_EQ(f.get_f32("f"), 1.5f);
  EXPECT_TRUE(f.get("arr").arr[0].as_bool());
  EXPECT_FALSE(f.get("arr").arr[1].as_bool());
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensor("a").type, DType::F32);
  EXPECT_EQ(f.tensor("a").ne, (std::vector<int64_t>{16, 4}));
  EXPECT_EQ(0, memcmp(f.tensor("a").data, a.data(), a.size() * 4));
  EXPECT_EQ(f.tensor("q").nbytes, q.size());
  EXPECT_EQ(0, memcmp(f.tensor("q").data, q.data(), q.size()));
  EXPECT_EQ(uintptr_t(f.tensor("q").data - f.tensor("a").data) % 64, 0u);
}

TEST(Gguf, ReadsTheExternalParityFiles) {
  const std::string dir = testing::parity_dir();
  if (dir.empty()) GTEST_SKIP() << "parity set not found (../shared/parity or $KILN_PARITY_DIR)";
  for (const char* name : {"gemma4-tiny-s1.gguf", "qwen3-tiny-s1.gguf"}) {
    const GgufFile f = GgufFile::open(dir + "/" + name);
    EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "none") << name;
    EXPECT_GT(f.tensors().size(), 40u) << name;
    EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr) << name;
  }
}

}  // namespace
}  // namespace kiln
