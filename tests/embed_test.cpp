// Oracle for kernels/embed.cu. Contract: bit-exact vs ref::embed<float> (and, fused, vs ref::embed<float> + ref::rmsnorm_fused<float>); ref<float> within 1e-6 of ref<double> relative to 10% of the row's max.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/embed.cuh"
#include "reference/embed.h"
#include "reference/quantize_q8_1.h"
#include "tests/device_testing.h"
#include "tests/testing.h"
#include "models/quant.h"
#include "reference/rmsnorm.h"

namespace kiln {
namespace {

using ::kiln::testing::random_floats;
using ::kiln::testing::random_normal;

// Device helpers: tests/device_testing.h
using ::kiln::testing::down;
using ::kiln::testing::first_diff;
using ::kiln::testing::poisoned;
using ::kiln::testing::rel_err;
using ::kiln::testing::up;

struct Table {
  DType type;
  int64_t vocab, n;
  std::vector<uint8_t> bytes;
};
Table make_table(DType t, int64_t vocab, int64_t n, uint64_t seed) {
  Table tb{t, vocab, n, std::vector<uint8_t>(row_bytes(t, n) * size_t(vocab))};
  for (int64_t r = 0; r < vocab; ++r) {
    const auto v = random_normal(size_t(n), seed + uint64_t(r), 0.05f);
    encode_row(t, v.data(), tb.bytes.data() + size_t(r) * row_bytes(t, n), n);
  }
  return tb;
}
std::vector<int32_t> make_ids(int64_t T, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(T));
  const auto u = random_floats(size_t(T), seed, 0.f, 1.f);
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = int32_t(std::min<int64_t>(vocab - 1, int64_t(u[size_t(t)] * float(vocab))));
  if (T > 2) ids[2] = ids[0];  // a repeated token
  return ids;
}

TEST(EmbedRef, FloatWithinDoubleBound) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t n = 2560, vocab = 40, T = 17;
    const auto tb = make_table(t, vocab, n, 7);
    const auto ids = make_ids(T, vocab, 8);
    std::vector<float> f(size_t(T * n));
    std::vector<double> d(size_t(T * n));
    const float scale = std::sqrt(2560.f);
    ref::embed<float>(t, tb.bytes.data(), vocab, n, ids.data(), T, scale, f.data());
    ref::embed<double>(t, tb.bytes.data(), vocab, n, ids.data(), T, scale, d.data());
    double mx = 0;
    for (double v : d) mx = std::max(mx, std::fabs(v));
    EXPECT_GT(mx, 0.0);
    EXPECT_LE(rel_err(f, d, 0.1 * mx), 1e-6) << dtype_name(t);
  }
}

TEST(EmbedRef, F32RowsAreScaledCopies) {  // independent expected values
  const int64_t n = 37, vocab = 5;
  const auto v = random_normal(size_t(n * vocab), 3);
  const int32_t ids[3] = {4, 0, 4};
  std::vector<float> out(size_t(3 * n));
  ref::embed<float>(DType::F32, v.data(), vocab, n, ids, 3, 2.f, out.data());
  for (int t = 0; t < 3; ++t)
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(t * n + i)], v[size_t(ids[t] * n + i)] * 2.f);
}

TEST(EmbedApi, RejectsBadArguments) {
  EmbedOp op;
  int32_t id = 0;
  float f = 0;
  op.table = &f;
  op.ids = &id;
  op.out = &f;
  op.n_vocab = 1;
  op.n_tokens = 1;
  op.type = DType::Q4_K;
  op.n = 100;  // not a multiple of 256
  EXPECT_THROW(embed(op, nullptr), Error);
  op.type = DType::Q8_1;
  op.n = 64;
  EXPECT_THROW(embed(op, nullptr), Error);
  op.type = DType::F32;
  op.n = 20000;
  op.norm_out = &f;
  EXPECT_THROW(embed(op, nullptr), Error);
  op.n = 64;
  op.q_layout = Q8Layout(9);
  EXPECT_THROW(embed(op, nullptr), Error);  // unknown Q8_1 layout
}

void run_embed(DType t, int64_t n, int64_t T, bool fused, uint64_t seed) {
  static int calls = 0;  // Q8_1 outputs in both column layouts, alternately
  const Q8Layout ql = calls++ % 2 ? Q8Layout::Interleaved : Q8Layout::Blocks;
  SCOPED_TRACE(::testing::Message() << dtype_name(t) << " n=" << n << " T=" << T << " fused=" << fused
                                    << " layout=" << int(ql));
  Stream s;
  const int64_t vocab = 97;
  const auto tb = make_table(t, vocab, n, seed);
  const auto ids = make_ids(T, vocab, seed + 1);
  const auto w = random_floats(size_t(n), seed + 2, 0.5f, 1.5f);
  const float scale = std::sqrt(float(n));
  auto dtab = up(tb.bytes, s);
  auto dids = up(ids, s);
  auto dw = up(w, s);
  const size_t N = size_t(T * n), NB = size_t(T * (n / 32));
  const bool q = fused && n % 32 == 0;
  auto dout = poisoned<float>(N, s);
  auto dno = poisoned<float>(fused ? N : 0, s);
  auto dnq = poisoned<BlockQ8_1>(q ? NB : 0, s);
  auto dxq = poisoned<BlockQ8_1>(q ? NB : 0, s);
  EmbedOp op;
  op.type = t;
  op.table = dtab.data();
  op.n_vocab = vocab;
  op.n = n;
  op.ids = dids.data();
  op.n_tokens = T;
  op.scale = scale;
  op.out = dout.data();
  if (fused) {
    op.w = dw.data();
    op.norm_out = dno.data();
    op.norm_q = q ? dnq.data() : nullptr;
    op.x_q = q ? dxq.data() : nullptr;
    op.q_layout = ql;
  }
  embed(op, s);
  std::vector<float> want(N), nwant(N);
  std::vector<BlockQ8_1> nq(q ? NB : 0), xq(q ? NB : 0);
  ref::embed<float>(t, tb.bytes.data(), vocab, n, ids.data(), T, scale, want.data());
  const auto got = down(dout, s);
  EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), N, "rows");
  if (fused) {
    std::vector<float> x = want;
    ref::rmsnorm_fused<float>(x.data(), nullptr, false, nullptr, 1.f, w.data(), T, n, 1e-6f, nwant.data(),
                              q ? nq.data() : nullptr, q ? xq.data() : nullptr);
    const auto gno = down(dno, s);
    EXPECT_FLOATS_BITS_EQ(gno.data(), nwant.data(), N, "norm_out");
    if (q) {
      const auto gnq = down(dnq, s);
      const auto gxq = down(dxq, s);
      std::vector<BlockQ8_1> nql(NB), xql(NB);
      ref::q8_1_to_layout(nq.data(), T, n / 32, ql, nql.data());
      ref::q8_1_to_layout(xq.data(), T, n / 32, ql, xql.data());
      EXPECT_BITS_EQ(gnq.data(), nql.data(), NB, "norm_q");
      EXPECT_BITS_EQ(gxq.data(), xql.data(), NB, "x_q");
    }
  }
}

TEST(GpuEmbed, BitExactAllTypesModelWidths) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 10;
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_K, DType::Q6_K})
    for (int64_t n : {2560, 4096})
      for (int64_t T : {1, 3, 17, 512}) run_embed(t, n, T, false, seed += 100);
}

TEST(GpuEmbed, BitExactFusedNorm) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 20000;
  for (DType t : {DType::Q8_0, DType::Q6_K, DType::BF16})
    for (int64_t T : {1, 3, 17, 512}) run_embed(t, 2560, T, true, seed += 100);
  run_embed(DType::Q4_K, 4096, 17, true, 30000);
}

TEST(GpuEmbed, BitExactRaggedAndPleWidths) {
  KILN_REQUIRE_GPU();
  run_embed(DType::F32, 37, 17, false, 40000);
  run_embed(DType::F16, 1001, 3, false, 40100);
  run_embed(DType::F32, 1001, 3, true, 40200);
  run_embed(DType::Q8_0, 42 * 256, 17, false, 40300);  // Gemma 4 PLE row width
}

TEST(GpuEmbed, OutOfRangeIdGivesNaNRow) {
  KILN_REQUIRE_GPU();
  Stream s;
  const int64_t n = 64, vocab = 3;
  const auto v = random_normal(size_t(n * vocab), 1);
  const std::vector<int32_t> ids = {1, 3, -1};
  auto dt = up(v, s);
  auto di = up(ids, s);
  auto dout = poisoned<float>(size_t(3 * n), s);
  KILN_CUDA_CHECK(cudaMemsetAsync(dout.data(), 0, dout.bytes(), s));
  EmbedOp op;
  op.type = DType::F32;
  op.table = dt.data();
  op.n_vocab = vocab;
  op.n = n;
  op.ids = di.data();
  op.n_tokens = 3;
  op.out = dout.data();
  embed(op, s);
  const auto got = down(dout, s);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(got[size_t(i)], v[size_t(n + i)]);
    EXPECT_TRUE(std::isnan(got[size_t(n + i)]));
    EXPECT_TRUE(std::isnan(got[size_t(2 * n + i)]));
  }
}

}  // namespace
}  // namespace kiln
