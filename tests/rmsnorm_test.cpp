// Oracle for kernels/rmsnorm.cu. Contract: bit-exact vs ref::rmsnorm_fused<float> (floats of x, out
// and the Q8_1 bytes); ref<float> within 4e-6 (relative, floor 1) of ref<double>.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/rmsnorm.cuh"
#include "reference/quantize_q8_1.h"
#include "reference/rmsnorm.h"
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

enum class Mode { Plain, Add, PostAdd, PostAddScaled, PostAddWeightless, ScaleOnly };
const char* name(Mode m) {
  switch (m) {
    case Mode::Plain: return "plain";
    case Mode::Add: return "add";
    case Mode::PostAdd: return "post-add";
    case Mode::PostAddScaled: return "post-add-scaled";
    case Mode::PostAddWeightless: return "post-add-weightless";
    case Mode::ScaleOnly: return "scale-only";
  }
  return "?";
}

struct Case {
  std::vector<float> x, y, wy, w;
  bool has_y = false, norm_y = false, has_wy = false;
  float scale = 1.f;
};
Case make_case(Mode m, int64_t rows, int64_t n, uint64_t seed) {
  Case c;
  c.x = random_normal(size_t(rows * n), seed, 2.f);
  c.w = random_floats(size_t(n), seed + 1, 0.5f, 1.5f);
  c.has_y = m != Mode::Plain && m != Mode::ScaleOnly;
  c.norm_y = m == Mode::PostAdd || m == Mode::PostAddScaled || m == Mode::PostAddWeightless;
  c.has_wy = m == Mode::PostAdd || m == Mode::PostAddScaled;
  if (c.has_y) c.y = random_normal(size_t(rows * n), seed + 2, 0.7f);
  if (c.has_wy) c.wy = random_floats(size_t(n), seed + 3, -1.f, 1.f);
  if (m == Mode::PostAddScaled) c.scale = 0.4375f + 0.001f * float(seed % 7);
  if (m == Mode::ScaleOnly) c.scale = 1.7f;
  return c;
}

// ---- cpu: reference semantics and precision ----------------------------------------------------

TEST(RmsnormRef, HandComputedRow) {
  const float x[2] = {3.f, 4.f};
  const float w[2] = {2.f, 0.5f};
  double out[2];
  const double xd[2] = {3.0, 4.0};
  ref::rmsnorm<double>(xd, w, 1, 2, 0.f, out);
  const double r = 1.0 / std::sqrt(12.5);
  EXPECT_NEAR(out[0], 3.0 * r * 2.0, 1e-12);
  EXPECT_NEAR(out[1], 4.0 * r * 0.5, 1e-12);
  float of[2];
  ref::rmsnorm<float>(x, w, 1, 2, 0.f, of);
  EXPECT_NEAR(of[0], 3.0 * r * 2.0, 1e-6);
  EXPECT_NEAR(of[1], 4.0 * r * 0.5, 1e-6);
}

TEST(RmsnormRef, OrderedSumMatchesPlainSumClosely) {
  for (int64_t n : {1, 7, 256, 2560, 4096, 16384}) {
    const auto x = random_normal(size_t(n), 11 + uint64_t(n));
    double plain = 0;
    for (float v : x) plain += double(v) * double(v);
    const float f = ref::sum_sq_ordered(x.data(), n, ref::kRmsnormWarps);
    const float f1 = ref::sum_sq_ordered(x.data(), n, ref::kSliceNormWarps);
    EXPECT_NEAR(f, plain, 2e-6 * plain) << n;
    EXPECT_NEAR(f1, plain, 2e-6 * plain) << n;
  }
}

TEST(RmsnormRef, FloatWithinDoubleBound) {
  for (Mode m : {Mode::Plain, Mode::Add, Mode::PostAdd, Mode::PostAddScaled, Mode::PostAddWeightless}) {
    for (int64_t n : {2560, 4096, 1000, 37}) {
      const int64_t rows = 5;
      Case c = make_case(m, rows, n, 100 + uint64_t(n));
      std::vector<float> xf = c.x, of(size_t(rows * n));
      std::vector<double> xd(c.x.begin(), c.x.end()), yd(c.y.begin(), c.y.end()), od(size_t(rows * n));
      ref::rmsnorm_fused<float>(xf.data(), c.has_y ? c.y.data() : nullptr, c.norm_y, c.has_wy ? c.wy.data() : nullptr,
                                c.scale, c.w.data(), rows, n, 1e-6f, of.data(), nullptr, nullptr);
      ref::rmsnorm_fused<double>(xd.data(), c.has_y ? yd.data() : nullptr, c.norm_y, c.has_wy ? c.wy.data() : nullptr,
                                 c.scale, c.w.data(), rows, n, 1e-6f, od.data(), nullptr, nullptr);
      EXPECT_LE(rel_err(of, od, 1.0), 4e-6) << name(m) << " n=" << n;
      EXPECT_LE(rel_err(xf, xd, 1.0), 4e-6) << name(m) << " n=" << n;
    }
  }
}

TEST(RmsnormRef, FusedPlainEqualsSharedSignature) {
  const int64_t rows = 3, n = 2560;
  auto x = random_normal(size_t(rows * n), 5);
  const auto w = random_floats(size_t(n), 6, 0.5f, 1.5f);
  std::vector<float> a(size_t(rows * n)), b(size_t(rows * n));
  ref::rmsnorm<float>(x.data(), w.data(), rows, n, 1e-6f, a.data());
  ref::rmsnorm_fused<float>(x.data(), nullptr, false, nullptr, 1.f, w.data(), rows, n, 1e-6f, b.data(), nullptr, nullptr);
  EXPECT_BITS_EQ(a.data(), b.data(), a.size(), "rmsnorm vs rmsnorm_fused(plain)");
}

TEST(RmsnormApi, RejectsBadShapes) {
  RmsnormOp op;
  float dummy = 0;
  op.x = &dummy;
  op.rows = 1;
  op.n = 0;
  EXPECT_THROW(rmsnorm(op, nullptr), Error);
  op.n = 16385;
  EXPECT_THROW(rmsnorm(op, nullptr), Error);
  op.n = 100;
  op.x_q = reinterpret_cast<BlockQ8_1*>(&dummy);
  EXPECT_THROW(rmsnorm(op, nullptr), Error);  // Q8_1 needs n % 32 == 0
  op.x_q = nullptr;
  op.q_layout = Q8Layout(3);
  EXPECT_THROW(rmsnorm(op, nullptr), Error);  // unknown layout
  op.q_layout = Q8Layout::Blocks;
  op.norm_y = true;
  EXPECT_THROW(rmsnorm(op, nullptr), Error);  // norm_y without y
  op.norm_y = false;
  op.x = nullptr;
  EXPECT_THROW(rmsnorm(op, nullptr), Error);
}

// ---- gpu: bit-exact vs ref<float> ----------------------------------------------------------------

// Q8_1 outputs alternate between the two column layouts from call to call (Interleaved checked
// against ref::q8_1_to_layout of the reference bytes).
void run_case(Mode m, int64_t rows, int64_t n, bool want_q, int misalign, uint64_t seed) {
  static int calls = 0;
  const Q8Layout ql = calls++ % 2 ? Q8Layout::Interleaved : Q8Layout::Blocks;
  SCOPED_TRACE(::testing::Message() << name(m) << " rows=" << rows << " n=" << n << " q=" << want_q
                                    << " misalign=" << misalign << " layout=" << int(ql));
  Stream s;
  Case c = make_case(m, rows, n, seed);
  const size_t N = size_t(rows * n), NB = size_t(rows * (n / 32));
  // device copies (misalign shifts x by `misalign` floats to force the scalar path)
  std::vector<float> xpad(N + size_t(misalign));
  std::copy(c.x.begin(), c.x.end(), xpad.begin() + misalign);
  auto dx = up(xpad, s);
  DeviceBuffer<float> dy = c.has_y ? up(c.y, s) : DeviceBuffer<float>();
  DeviceBuffer<float> dwy = c.has_wy ? up(c.wy, s) : DeviceBuffer<float>();
  auto dw = up(c.w, s);
  auto dout = poisoned<float>(N, s);
  auto doq = poisoned<BlockQ8_1>(want_q ? NB : 0, s);
  auto dxq = poisoned<BlockQ8_1>(want_q ? NB : 0, s);
  RmsnormOp op;
  op.rows = rows;
  op.n = n;
  op.eps = 1e-6f;
  op.x = dx.data() + misalign;
  op.y = dy.data();
  op.norm_y = c.norm_y;
  op.w_y = dwy.data();
  op.scale = c.scale;
  op.w = dw.data();
  op.out = dout.data();
  op.out_q = want_q ? doq.data() : nullptr;
  op.x_q = want_q ? dxq.data() : nullptr;
  op.q_layout = ql;
  rmsnorm(op, s);
  std::vector<float> xr = c.x, outr(N);
  std::vector<BlockQ8_1> oqr(want_q ? NB : 0), xqr(want_q ? NB : 0);
  ref::rmsnorm_fused<float>(xr.data(), c.has_y ? c.y.data() : nullptr, c.norm_y, c.has_wy ? c.wy.data() : nullptr,
                            c.scale, c.w.data(), rows, n, 1e-6f, outr.data(), want_q ? oqr.data() : nullptr,
                            want_q ? xqr.data() : nullptr);
  const auto gx = down(dx, s);
  const auto gout = down(dout, s);
  EXPECT_FLOATS_BITS_EQ(gx.data() + misalign, xr.data(), N, "x (residual)");
  EXPECT_FLOATS_BITS_EQ(gout.data(), outr.data(), N, "out");
  if (want_q) {
    const auto goq = down(doq, s);
    const auto gxq = down(dxq, s);
    std::vector<BlockQ8_1> oql(NB), xql(NB);
    ref::q8_1_to_layout(oqr.data(), rows, n / 32, ql, oql.data());
    ref::q8_1_to_layout(xqr.data(), rows, n / 32, ql, xql.data());
    EXPECT_BITS_EQ(goq.data(), oql.data(), NB, "out_q");
    EXPECT_BITS_EQ(gxq.data(), xql.data(), NB, "x_q");
  }
}

TEST(GpuRmsnorm, BitExactModelShapes) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (Mode m : {Mode::Plain, Mode::Add, Mode::PostAdd, Mode::PostAddScaled, Mode::PostAddWeightless,
                 Mode::ScaleOnly})
    for (int64_t n : {2560, 4096})
      for (int64_t T : {1, 3, 17, 512}) run_case(m, T, n, true, 0, ++seed);
}

TEST(GpuRmsnorm, BitExactRaggedWidths) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (Mode m : {Mode::Plain, Mode::PostAddScaled, Mode::Add})
    for (int64_t n : {1, 37, 100, 999, 1000, 8192, 10240, 16384})
      for (int64_t T : {1, 17}) run_case(m, T, n, n % 32 == 0, 0, ++seed);
}

TEST(GpuRmsnorm, BitExactMisalignedScalarPath) {
  KILN_REQUIRE_GPU();
  run_case(Mode::PostAddScaled, 17, 2560, true, 1, 3001);
  run_case(Mode::Plain, 3, 4096, false, 3, 3002);
}

TEST(GpuRmsnorm, PlainOverloadLeavesInputAlone) {
  KILN_REQUIRE_GPU();
  Stream s;
  const int64_t rows = 3, n = 2560;
  const auto x = random_normal(size_t(rows * n), 77);
  const auto w = random_floats(size_t(n), 78, 0.5f, 1.5f);
  auto dx = up(x, s);
  auto dw = up(w, s);
  auto dout = poisoned<float>(size_t(rows * n), s);
  rmsnorm(dx.data(), dw.data(), rows, n, 1e-6f, dout.data(), s);
  std::vector<float> want(size_t(rows * n));
  ref::rmsnorm<float>(x.data(), w.data(), rows, n, 1e-6f, want.data());
  const auto got = down(dout, s);
  const auto gx = down(dx, s);
  EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), want.size(), "out");
  EXPECT_FLOATS_BITS_EQ(gx.data(), x.data(), x.size(), "x unchanged");
}

}  // namespace
}  // namespace kiln
