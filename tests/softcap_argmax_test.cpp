// Oracle for kernels/softcap_argmax.cu. Contract: bit-exact vs ref::softcap_argmax<float> (index and capped values); ref<float> capped values within 1e-5 absolute of ref<double>, and the float argmax is a double argmax up to that bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/softcap_argmax.cuh"
#include "reference/softcap_argmax.h"
#include "tests/device_testing.h"
#include "tests/testing.h"

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

TEST(SoftcapArgmaxRef, TiesGoToLowestIndexAndNaNsAreIgnored) {
  std::vector<float> x = {1.f, 5.f, NAN, 5.f, -2.f};
  int32_t idx = 7;
  ref::softcap_argmax<float>(x.data(), 1, 5, 30.f, nullptr, &idx);
  EXPECT_EQ(idx, 1);
  std::vector<float> all_nan = {NAN, NAN};
  ref::softcap_argmax<float>(all_nan.data(), 1, 2, 0.f, nullptr, &idx);
  EXPECT_EQ(idx, -1);
}

TEST(SoftcapArgmaxRef, FloatWithinDoubleBound) {
  const int64_t n = 262144;
  const auto x = random_normal(size_t(n), 3, 20.f);
  std::vector<double> xd(x.begin(), x.end()), cd(static_cast<size_t>(n));
  std::vector<float> cf(static_cast<size_t>(n));
  int32_t fi = -1, di = -1;
  ref::softcap_argmax<float>(x.data(), 1, n, 30.f, cf.data(), &fi);
  ref::softcap_argmax<double>(xd.data(), 1, n, 30.f, cd.data(), &di);
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(cf[size_t(i)]) - cd[size_t(i)]));
  EXPECT_LE(m, 1e-5);
  ASSERT_GE(fi, 0);
  EXPECT_GE(cd[size_t(fi)], cd[size_t(di)] - 1e-5);
}

TEST(SoftcapArgmaxApi, RejectsBadArguments) {
  SoftcapArgmaxOp op;
  float f = 0;
  int32_t i = 0;
  op.logits = &f;
  op.idx = &i;
  op.rows = 1;
  op.n = 10;
  EXPECT_THROW(softcap_argmax(op, nullptr), Error);  // no workspace
  op.workspace = &f;
  op.n = 0;
  EXPECT_THROW(softcap_argmax(op, nullptr), Error);
  op.n = 10;
  op.rows = 2;
  op.pos = &i;
  EXPECT_THROW(softcap_argmax(op, nullptr), Error);  // feed / pos: one row only
  op.pos = nullptr;
  op.feed = &i;
  EXPECT_THROW(softcap_argmax(op, nullptr), Error);
}

void run_sa(int64_t rows, int64_t n, float cap, bool with_capped, int misalign, uint64_t seed, bool plant_tie,
            int launches = 1) {
  SCOPED_TRACE(::testing::Message() << "rows=" << rows << " n=" << n << " cap=" << cap << " misalign=" << misalign);
  Stream s;
  std::vector<float> x = random_normal(size_t(rows * n + misalign), seed, 8.f);
  std::vector<int32_t> planted(size_t(rows), -1);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x.data() + misalign + r * n;
    row[(r * 7919) % n] = NAN;
    if (plant_tie) {  // two equal maxima: the lower index must win
      const int64_t a = (n / 3 + r * 101) % n, b = (2 * n / 3 + r * 37) % n;
      row[a] = row[b] = 1000.f;
      planted[size_t(r)] = int32_t(std::min(a, b));
    }
  }
  auto dx = up(x, s);
  auto dcap = poisoned<float>(with_capped ? size_t(rows * n) : 0, s);
  auto didx = poisoned<int32_t>(size_t(rows), s);
  DeviceBuffer<uint8_t> ws(softcap_argmax_workspace_bytes(rows));
  KILN_CUDA_CHECK(cudaMemsetAsync(ws.data(), 0, ws.bytes(), s));
  SoftcapArgmaxOp op;
  op.logits = dx.data() + misalign;
  op.rows = rows;
  op.n = n;
  op.cap = cap;
  op.capped = with_capped ? dcap.data() : nullptr;
  op.idx = didx.data();
  op.workspace = ws.data();
  std::vector<float> want(size_t(rows * n));
  std::vector<int32_t> widx(static_cast<size_t>(rows));
  ref::softcap_argmax<float>(x.data() + misalign, rows, n, cap, want.data(), widx.data());
  for (int64_t r = 0; r < rows; ++r)
    if (plant_tie) {
      EXPECT_EQ(widx[size_t(r)], planted[size_t(r)]) << "reference tie-break, row " << r;
    }
  for (int l = 0; l < launches; ++l) {  // repeated launches: the workspace must reset itself
    KILN_CUDA_CHECK(cudaMemsetAsync(didx.data(), 0xff, didx.bytes(), s));
    softcap_argmax(op, s);
    const auto gi = down(didx, s);
    EXPECT_BITS_EQ(gi.data(), widx.data(), size_t(rows), "idx (launch " << l << ")");
  }
  if (with_capped) {
    const auto gc = down(dcap, s);
    // bit-exact, except that a NaN input gives a NaN whose payload is not part of the contract
    int64_t bad = -1;
    for (size_t i = 0; i < gc.size() && bad < 0; ++i)
      if (std::memcmp(&gc[i], &want[i], 4) != 0 && !(std::isnan(gc[i]) && std::isnan(want[i]))) bad = int64_t(i);
    EXPECT_EQ(bad, -1) << "capped: first differing element";
  }
}

TEST(GpuSoftcapArgmax, BitExactGemma4Vocab) {
  KILN_REQUIRE_GPU();
  run_sa(1, 262144, 30.f, true, 0, 1, false, 3);
  run_sa(1, 262144, 30.f, false, 0, 2, true, 2);
  run_sa(3, 262144, 30.f, true, 0, 3, true);
  run_sa(17, 151936, 0.f, false, 0, 4, true);  // Qwen3 vocab, no softcap
}

// A decode step's end: every launch also writes the winner to *feed and adds one to *pos (the
// runner's next input token and position), repeated launches as graph replays do.
TEST(GpuSoftcapArgmax, FeedsAndAdvancesTheStep) {
  KILN_REQUIRE_GPU();
  Stream s;
  const int64_t n = 262144;
  std::vector<float> x = random_normal(size_t(n), 8, 8.f);
  auto dx = up(x, s);
  auto didx = poisoned<int32_t>(1, s);
  auto dfeed = poisoned<int32_t>(1, s);
  auto dpos = up(std::vector<int32_t>{41}, s);
  DeviceBuffer<uint8_t> ws(softcap_argmax_workspace_bytes(1));
  KILN_CUDA_CHECK(cudaMemsetAsync(ws.data(), 0, ws.bytes(), s));
  int32_t want = -1;
  ref::softcap_argmax<float>(x.data(), 1, n, 30.f, nullptr, &want);
  ASSERT_GE(want, 0);
  SoftcapArgmaxOp op;
  op.logits = dx.data();
  op.rows = 1;
  op.n = n;
  op.cap = 30.f;
  op.idx = didx.data();
  op.feed = dfeed.data();
  op.pos = dpos.data();
  op.workspace = ws.data();
  for (int l = 0; l < 3; ++l) {
    KILN_CUDA_CHECK(cudaMemsetAsync(dfeed.data(), 0xff, dfeed.bytes(), s));
    softcap_argmax(op, s);
    EXPECT_EQ(down(didx, s)[0], want) << "launch " << l;
    EXPECT_EQ(down(dfeed, s)[0], want) << "launch " << l;
    EXPECT_EQ(down(dpos, s)[0], 42 + l) << "launch " << l;
  }
}

TEST(GpuSoftcapArgmax, BitExactRagged) {
  KILN_REQUIRE_GPU();
  run_sa(1, 1001, 30.f, true, 0, 5, true);
  run_sa(3, 262144, 30.f, true, 1, 6, true);  // misaligned: scalar path
  run_sa(2, 5, 0.f, true, 0, 7, false);
}

}  // namespace
}  // namespace kiln
