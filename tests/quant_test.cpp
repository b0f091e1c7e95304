// Block formats: exact half/bfloat16 conversion, known-answer blocks packed by hand from the
// format definitions, encode/decode round trips within each format's error bound, and decode of
// the external parity files against sums computed by an independent decoder (the `gguf` Python
// package that ships with llama.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "models/quant.h"
#include "tests/testing.h"

namespace kiln {
namespace {

TEST(Half, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (f != f) {
      EXPECT_EQ(f32_to_f16(f) & 0x7c00, 0x7c00);  // NaN stays NaN
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << "h=" << h;
  }
}

TEST(Half, KnownValuesAndRounding) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);               // rounds up to inf
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half of smallest subnormal: tie to even 0
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(BFloat16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    const float f = bf16_to_f32(uint16_t(h));
    if (f != f) continue;
    ASSERT_EQ(f32_to_bf16(f), uint16_t(h));
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f818000u)), 0x3f82);
}

TEST(Q8_0, KnownAnswerBlock) {
  BlockQ8_0 b;
  b.d = 0x3800;  // 0.5
  for (int i = 0; i < 32; ++i) b.qs[i] = int8_t(i - 16);
  float y[32];
  decode_row(DType::Q8_0, &b, y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * float(i - 16));
}

TEST(Q4_K, KnownAnswerBlockPackedByHand) {
  // Sub-block j: scale sc[j], min m[j] (6 bits each). Packing per the format: bytes 0-3 hold
  // sc[0..3] in bits 0-5 and the top bits of sc[4..7] in bits 6-7; bytes 4-7 the same for m;
  // bytes 8-11 hold the low nibbles of sc[4..7] (bits 0-3) and m[4..7] (bits 4-7).
  const int sc[8] = {1, 2, 3, 63, 17, 40, 55, 33};
  const int m[8] = {0, 5, 62, 7, 48, 19, 63, 36};
  BlockQ4K b;
  b.d = 0x3c00;     // 1.0
  b.dmin = 0x3400;  // 0.25
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = uint8_t(m[j] | ((m[j + 4] >> 4) << 6));
    b.scales[j + 8] = uint8_t((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
  // Element i lives in byte 32*(i/64) + i%32, low nibble for i%64 < 32, high nibble otherwise.
  int q[256];
  memset(b.qs, 0, sizeof b.qs);
  for (int i = 0; i < 256; ++i) {
    q[i] = (i * 7 + 3) % 16;
    b.qs[32 * (i / 64) + i % 32] |= uint8_t(i % 64 < 32 ? q[i] : q[i] << 4);
  }
  float y[256];
  decode_row(DType::Q4_K, &b, y, 256);
  for (int i = 0; i < 256; ++i)
    ASSERT_EQ(y[i], 1.0f * float(sc[i / 32]) * float(q[i]) - 0.25f * float(m[i / 32])) << i;
}

TEST(Q6_K, KnownAnswerBlockPackedByHand) {
  // Element i: half h = i/128, r = i%128, l = r%32, quarter = r/32. Low 4 bits in
  // ql[64h + l + 32*(quarter&1)] (low nibble for quarters 0-1, high for 2-3); high 2 bits in
  // qh[32h + l] at bit 2*quarter; value d * scales[i/16] * (q - 32).
  BlockQ6K b;
  memset(&b, 0, sizeof b);
  b.d = 0x3000;  // 0.125
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j % 2 ? -(j * 8 + 1) : j * 8 + 1);
  int q[256];
  for (int i = 0; i < 256; ++i) {
    q[i] = (i * 11 + 5) % 64;
    const int h = i / 128, r = i % 128, l = r % 32, quarter = r / 32;
    uint8_t& lo = b.ql[64 * h + l + 32 * (quarter & 1)];
    lo |= uint8_t(quarter < 2 ? (q[i] & 15) : (q[i] & 15) << 4);
    b.qh[32 * h + l] |= uint8_t((q[i] >> 4) << (2 * quarter));
  }
  float y[256];
  decode_row(DType::Q6_K, &b, y, 256);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(y[i], 0.125f * float(b.scales[i / 16]) * float(q[i] - 32)) << i;
}

TEST(Q8_1, RuleAndSum) {
  const std::vector<float> x = testing::random_floats(32, 3, -2.f, 2.f);
  BlockQ8_1 b;
  encode_row(DType::Q8_1, x.data(), &b, 32);
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float d = amax / 127.f;
  EXPECT_EQ(b.d, f32_to_f16(d));
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(int(b.qs[i]), int(std::lround(x[size_t(i)] / d))) << i;  // round(x * (1/d)) agrees here
    sum += b.qs[i];
  }
  EXPECT_EQ(b.s, f32_to_f16(d * float(sum)));
  EXPECT_LE(std::abs(int(*std::max_element(b.qs, b.qs + 32))), 127);
  BlockQ8_1 z;
  const float zeros[32] = {};
  encode_row(DType::Q8_1, zeros, &z, 32);
  EXPECT_EQ(z.d, 0);
  for (int8_t v : z.qs) EXPECT_EQ(v, 0);
}

// Encode then decode random rows: error within each format's step size.
struct Bound {
  DType t;
  double max_err_over_range;  // max |x - decode(encode(x))| / (max|x| of the block)
};
class RoundTrip : public ::testing::TestWithParam<Bound> {};

TEST_P(RoundTrip, DecodeOfEncodeIsWithinTheFormatsStep) {
  const Bound p = GetParam();
  const int n = 256 * 8;
  const std::vector<float> x = testing::random_normal(size_t(n), 11, 1.f);
  std::vector<uint8_t> buf(row_bytes(p.t, n));
  encode_row(p.t, x.data(), buf.data(), n);
  std::vector<float> y(static_cast<size_t>(n));
  decode_row(p.t, buf.data(), y.data(), n);
  const int be = std::max(dtype_traits(p.t).block_elems, 32);
  for (int b = 0; b < n / be; ++b) {
    float amax = 0;
    for (int i = 0; i < be; ++i) amax = std::max(amax, std::fabs(x[size_t(b * be + i)]));
    for (int i = 0; i < be; ++i) {
      const size_t k = size_t(b * be + i);
      ASSERT_LE(std::fabs(x[k] - y[k]), p.max_err_over_range * amax) << dtype_name(p.t) << " element " << k;
    }
  }
}

// Step sizes: Q8 amax/127 (half a step + f16 scale rounding); Q6_K amax/31 per 16 with 8-bit
// scales; Q4_K range/15 per 32 with 6-bit scale and min; F16 and BF16 relative rounding.
INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip,
                         ::testing::Values(Bound{DType::F32, 0.0}, Bound{DType::F16, 1.0 / 1024},
                                           Bound{DType::BF16, 1.0 / 128}, Bound{DType::Q8_0, 0.6 / 127},
                                           Bound{DType::Q8_1, 0.6 / 127}, Bound{DType::Q6_K, 1.5 / 31},
                                           Bound{DType::Q4_K, 2.5 / 15}),
                         [](const auto& info) { return std::string(dtype_name(info.param.t)); });

TEST(Quant, RejectsPartialBlocks) {
  float x[40] = {};
  uint8_t buf[64];
  EXPECT_THROW(encode_row(DType::Q8_0, x, buf, 40), Error);
  EXPECT_THROW(decode_row(DType::Q4_K, buf, x, 32), Error);
}

// Sums over whole tensors of the parity files, decoded by the gguf Python package (llama.cpp's
// reference writer/reader): an independent decoder of every format kiln reads from files.
TEST(Quant, ParityFileTensorsMatchAnIndependentDecoder) {
  const std::string dir = testing::parity_dir();
  if (dir.empty()) GTEST_SKIP() << "parity set not found (../shared/parity or $KILN_PARITY_DIR)";
  struct Case {
    const char* file;
    const char* tensor;
    double sum, sum_sq, first;
  };
  const Case cases[] = {
      {"qwen3-tiny-s1.gguf", "token_embd.weight", 12.673334002494812, 509.07322370008444, 0.06399106979370117},
      {"qwen3-tiny-s1.gguf", "output.weight", -201.06547605991364, 530.0642874714955, -0.0017970800399780273},
      {"gemma4-tiny-s1.gguf", "token_embd.weight", -63.58150100708008, 520.0102178587408, 0.03135395050048828},
      {"gemma4-tiny-s1.gguf", "per_layer_model_proj.weight", -11.519025027751923, 380.29430340007116,
       -0.0654296875},
  };
  for (const Case& c : cases) {
    const GgufFile f = GgufFile::open(dir + "/" + c.file);
    const GgufTensor& t = f.tensor(c.tensor);
    const std::vector<float> y = dequantize(t.type, t.data, t.rows(), t.cols());
    double s = 0, s2 = 0;
    for (float v : y) {
      s += v;
      s2 += double(v) * v;
    }
    EXPECT_NEAR(s, c.sum, 1e-6 * (1 + std::fabs(c.sum))) << c.file << " " << c.tensor;
    EXPECT_NEAR(s2, c.sum_sq, 1e-6 * c.sum_sq) << c.file << " " << c.tensor;
    EXPECT_FLOAT_EQ(y[0], float(c.first)) << c.file << " " << c.tensor;
  }
}

}  // namespace
}  // namespace kiln
