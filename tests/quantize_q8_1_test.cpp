// quantize_q8_1 oracle tests. CPU: the reference's dequantized values stay within the per-block
// bound used by gemm_n (reference/gemm_n.h), the s field matches d * sum(q), bad K is rejected
// before any CUDA call. GPU: the kernel's bytes equal the reference's bytes (aligned and
// unaligned input, zero blocks, tiny values whose scale is an f16 subnormal), in both column
// layouts (the interleaved one against ref::q8_1_to_layout of the reference bytes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/quantize_q8_1.cuh"
#include "reference/quantize_q8_1.h"
#include "tests/testing.h"

namespace kiln {
namespace {

std::vector<float> make_x(int64_t rows, int64_t k, uint64_t seed) {
  std::vector<float> x = testing::random_normal(size_t(rows * k), seed, 1.f);
  const auto bs = testing::random_floats(size_t(rows * k / 32), seed + 1, -6.f, 2.f);  // log10 scale per block
  for (size_t i = 0; i < x.size(); ++i) x[i] *= std::pow(10.f, bs[i / 32]);
  for (size_t i = 0; i < 32 && i < x.size(); ++i) x[i] = 0.f;  // one all-zero block (d = 0 path)
  return x;
}

TEST(QuantizeQ8_1Ref, DequantizedWithinBound) {
  const int64_t rows = 4, k = 4096;
  const auto x = make_x(rows, k, 3);
  std::vector<BlockQ8_1> q(size_t(rows * k / 32));
  ref::quantize_q8_1(x.data(), rows, k, q.data());
  for (size_t b = 0; b < q.size(); ++b) {
    float amax = 0.f;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b * 32 + i]));
    const double d = double(amax / 127.f);
    const double e = d * (0.5 + std::ldexp(1.0, -15)) + 127.0 * std::max(std::ldexp(d, -11), std::ldexp(1.0, -25));
    const double dq = f16_to_f32(q[b].d);
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      ASSERT_LE(std::fabs(dq * q[b].qs[i] - x[b * 32 + i]), e) << "block " << b << " i " << i;
      ASSERT_GE(q[b].qs[i], -127);
      sum += q[b].qs[i];
    }
    EXPECT_EQ(q[b].s, f32_to_f16(float(d) * float(sum))) << "block " << b;
  }
}

// The interleaved layout (kernels/common/blocks.h) is a permutation of a column's words, Blocks is
// the identity, and within a group the same word of consecutive blocks is adjacent -- the property
// gemm_n's loads rely on (and even blocks' words stay 8-byte aligned where K % 256 == 0).
// Positions checked by hand from the formula's words: nb = 80 blocks is a group of 64 then a short
// group of 16.
TEST(Q8LayoutCpu, InterleavedIsAPermutationWithAdjacentWords) {
  EXPECT_EQ(q8_1_word(Q8Layout::Blocks, 5, 3, 80), 48);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 0, 0, 80), 0);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 1, 0, 80), 1);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 0, 1, 80), 64);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 63, 8, 80), 8 * 64 + 63);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 64, 0, 80), 576);
  EXPECT_EQ(q8_1_word(Q8Layout::Interleaved, 70, 3, 80), 576 + 3 * 16 + 6);
  for (int64_t nb : {1, 8, 63, 64, 65, 80, 128, 384}) {
    std::vector<int> seen(size_t(nb * 9), 0);
    for (int64_t b = 0; b < nb; ++b)
      for (int w = 0; w < 9; ++w) {
        const int64_t i = q8_1_word(Q8Layout::Interleaved, b, w, nb);
        ASSERT_GE(i, 0);
        ASSERT_LT(i, nb * 9);
        ++seen[size_t(i)];
        if (b % kQ8Group != 0) {
          EXPECT_EQ(i, q8_1_word(Q8Layout::Interleaved, b - 1, w, nb) + 1) << nb << " " << b;
        }
        // gemm_n reads a Q4_K slice pair (b even) as one 64-bit load per word: K % 256 == 0
        // (nb % 8 == 0) must keep that word 8-byte aligned in an aligned column.
        if (nb % 8 == 0 && b % 2 == 0) {
          EXPECT_EQ(i % 2, 0) << "nb=" << nb << " block " << b << " word " << w;
        }
      }
    for (size_t i = 0; i < seen.size(); ++i) {
      ASSERT_EQ(seen[i], 1) << "nb=" << nb << " word " << i;
    }
  }
  // q8_1_to_layout moves whole words to those places.
  const int64_t nb = 80;
  std::vector<BlockQ8_1> a(size_t(2 * nb)), b(a.size());
  auto* aw = reinterpret_cast<uint32_t*>(a.data());
  for (size_t i = 0; i < a.size() * 9; ++i) aw[i] = uint32_t(i * 2654435761u);
  ref::q8_1_to_layout(a.data(), 2, nb, Q8Layout::Interleaved, b.data());
  const auto* bw = reinterpret_cast<const uint32_t*>(b.data());
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t k = 0; k < nb; ++k)
      for (int w = 0; w < 9; ++w) {
        ASSERT_EQ(bw[r * nb * 9 + q8_1_word(Q8Layout::Interleaved, k, w, nb)], aw[(r * nb + k) * 9 + w]);
      }
  EXPECT_THROW(ref::q8_1_to_layout(a.data(), 2, nb, Q8Layout::Interleaved, a.data()), Error);
}

TEST(QuantizeQ8_1Validation, RejectsBadShapes) {
  auto* fx = reinterpret_cast<const float*>(uintptr_t(0x10000));
  auto* fo = reinterpret_cast<BlockQ8_1*>(uintptr_t(0x20000));
  EXPECT_THROW(quantize_q8_1(fx, 2, 33, fo, nullptr), Error);
  EXPECT_THROW(quantize_q8_1(fx, 0, 64, fo, nullptr), Error);
  EXPECT_THROW(quantize_q8_1(nullptr, 1, 64, fo, nullptr), Error);
  EXPECT_THROW(ref::quantize_q8_1(fx, 1, 48, fo), Error);
  EXPECT_THROW(quantize_q8_1(fx, 1, 64, fo, nullptr, Q8Layout(7)), Error);
}

TEST(GpuQuantizeQ8_1, BitExactVsReference) {
  KILN_REQUIRE_GPU();
  Stream s;
  for (int64_t rows : {1, 3, 17})
    for (int64_t k : {32, 96, 2560, 4096})
      for (int offset : {0, 1})  // offset 1: input not 16-byte aligned (scalar loads)
        for (Q8Layout layout : {Q8Layout::Blocks, Q8Layout::Interleaved}) {
          const auto x = make_x(rows, k, uint64_t(rows * 131 + k));
          std::vector<BlockQ8_1> blocks(size_t(rows * k / 32)), want(blocks.size());
          ref::quantize_q8_1(x.data(), rows, k, blocks.data());
          ref::q8_1_to_layout(blocks.data(), rows, k / 32, layout, want.data());
          DeviceBuffer<float> dx(x.size() + 1);
          copy_to_device(dx.view().slice(size_t(offset), x.size()), x.data(), x.size(), s);
          DeviceBuffer<BlockQ8_1> dq(want.size());
          KILN_CUDA_CHECK(cudaMemsetAsync(dq.data(), 0xa5, dq.bytes(), s));  // poison
          quantize_q8_1(dx.data() + offset, rows, k, dq.data(), s, layout);
          std::vector<BlockQ8_1> got(want.size());
          copy_to_host(got.data(), View<const BlockQ8_1>(dq.data(), dq.size()), got.size(), s);
          s.sync();
          for (size_t b = 0; b < got.size(); ++b) {
            ASSERT_EQ(memcmp(&got[b], &want[b], sizeof(BlockQ8_1)), 0)
                << "rows=" << rows << " k=" << k << " offset=" << offset << " layout=" << int(layout) << " block "
                << b;
          }
        }
}

}  // namespace
}  // namespace kiln
