// Oracle for kernels/ple_proj_norm.cu. Contract: bit-exact vs ref::ple_proj_norm<float>; ref<float> within 4e-6 (relative, floor 1) of ref<double>.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/ple_proj_norm.cuh"
#include "reference/ple_proj_norm.h"
#include "tests/device_testing.h"
#include "tests/testing.h"
#include "models/quant.h"
#include "reference/embed.h"
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

struct Inputs {
  std::vector<float> proj, w;
  std::vector<uint8_t> table;
  std::vector<int32_t> ids;
  size_t stride;
};
Inputs make_inputs(DType t, int64_t T, int L, int P, int64_t vocab, uint64_t seed) {
  Inputs in;
  const int64_t W = int64_t(L) * P;
  in.proj = random_normal(size_t(T * W), seed, 8.f);
  in.w = random_floats(size_t(P), seed + 1, 0.5f, 1.5f);
  in.stride = row_bytes(t, W);
  in.table.resize(in.stride * size_t(vocab));
  for (int64_t r = 0; r < vocab; ++r) {
    const auto v = random_normal(size_t(W), seed + 10 + uint64_t(r), 0.1f);
    encode_row(t, v.data(), in.table.data() + size_t(r) * in.stride, W);
  }
  const auto u = random_floats(size_t(T), seed + 2, 0.f, 1.f);
  for (int64_t i = 0; i < T; ++i) in.ids.push_back(int32_t(std::min<int64_t>(vocab - 1, int64_t(u[size_t(i)] * float(vocab)))));
  return in;
}

TEST(PleProjNormRef, FloatWithinDoubleBound) {
  for (DType t : {DType::Q8_0, DType::F16, DType::F32}) {
    const int64_t T = 3, vocab = 5;
    const int L = 42, P = 256;
    auto in = make_inputs(t, T, L, P, vocab, 5);
    std::vector<double> projd(in.proj.begin(), in.proj.end()), od(size_t(T * L * P));
    std::vector<float> of(size_t(T * L * P));
    const float ps = 1.f / std::sqrt(2560.f), rs = 16.f, os = 1.f / std::sqrt(2.f);
    ref::ple_proj_norm<float>(in.proj.data(), T, L, P, ps, in.w.data(), 1e-6f, t, in.table.data(), in.stride,
                              in.ids.data(), rs, os, of.data());
    ref::ple_proj_norm<double>(projd.data(), T, L, P, ps, in.w.data(), 1e-6f, t, in.table.data(), in.stride,
                               in.ids.data(), rs, os, od.data());
    EXPECT_LE(rel_err(of, od, 1.0), 4e-6) << dtype_name(t);
  }
}

// Layout and formula checked against an independent composition of other references:
// out[t][l] = (rmsnorm(proj[t][l] * ps) * w + embed(row)[l] * rs) * os.
TEST(PleProjNormRef, EqualsComposition) {
  const int64_t T = 2, vocab = 4;
  const int L = 3, P = 64;
  auto in = make_inputs(DType::Q8_0, T, L, P, vocab, 9);
  const float ps = 0.125f, rs = 8.f, os = 0.5f;
  std::vector<double> projd(in.proj.begin(), in.proj.end()), od(size_t(T * L * P));
  ref::ple_proj_norm<double>(projd.data(), T, L, P, ps, in.w.data(), 1e-6f, DType::Q8_0, in.table.data(), in.stride,
                             in.ids.data(), rs, os, od.data());
  std::vector<double> e(size_t(T * L * P));
  ref::embed<double>(DType::Q8_0, in.table.data(), vocab, int64_t(L) * P, in.ids.data(), T, rs, e.data());
  for (int64_t t = 0; t < T; ++t)
    for (int l = 0; l < L; ++l) {
      std::vector<double> a(static_cast<size_t>(P)), nrm(static_cast<size_t>(P));
      for (int i = 0; i < P; ++i) a[size_t(i)] = projd[size_t((t * L + l) * P + i)] * double(ps);
      ref::rmsnorm<double>(a.data(), in.w.data(), 1, P, 1e-6f, nrm.data());
      for (int i = 0; i < P; ++i) {
        const double want = (nrm[size_t(i)] + e[size_t((t * L + l) * P + i)]) * double(os);
        ASSERT_NEAR(od[size_t((t * L + l) * P + i)], want, 1e-12 * std::max(1.0, std::fabs(want)));
      }
    }
}

TEST(PleProjNormApi, RejectsBadArguments) {
  PleProjNormOp op;
  float f = 0;
  op.proj = op.w = op.out = &f;
  op.rows = &f;
  op.n_tokens = 1;
  op.n_layers = 3;
  op.P = 10;  // L*P = 30 not a Q8_0 multiple
  op.row_type = DType::Q8_0;
  op.row_stride = 1 << 20;
  op.n_rows = 1;
  EXPECT_THROW(ple_proj_norm(op, nullptr), Error);
  op.row_type = DType::Q4_K;
  op.P = 256;
  EXPECT_THROW(ple_proj_norm(op, nullptr), Error);
  op.row_type = DType::F32;
  op.P = 2048;
  EXPECT_THROW(ple_proj_norm(op, nullptr), Error);
  op.P = 256;
  op.row_stride = 4;
  EXPECT_THROW(ple_proj_norm(op, nullptr), Error);
}

void run_ple(DType t, int64_t T, int L, int P, bool use_ids, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << dtype_name(t) << " T=" << T << " L=" << L << " P=" << P << " ids=" << use_ids);
  Stream s;
  const int64_t vocab = use_ids ? 61 : T;
  auto in = make_inputs(t, T, L, P, vocab, seed);
  if (!use_ids)
    for (int64_t i = 0; i < T; ++i) in.ids[size_t(i)] = int32_t(i);
  const float ps = 1.f / std::sqrt(2560.f), rs = std::sqrt(float(P)), os = 1.f / std::sqrt(2.f);
  auto dproj = up(in.proj, s);
  auto dw = up(in.w, s);
  auto dtab = up(in.table, s);
  auto dids = up(in.ids, s);
  const size_t N = size_t(T * L * P);
  auto dout = poisoned<float>(N, s);
  PleProjNormOp op;
  op.proj = dproj.data();
  op.n_tokens = T;
  op.n_layers = L;
  op.P = P;
  op.proj_scale = ps;
  op.w = dw.data();
  op.row_type = t;
  op.rows = dtab.data();
  op.row_stride = in.stride;
  op.ids = use_ids ? dids.data() : nullptr;
  op.n_rows = vocab;
  op.row_scale = rs;
  op.out_scale = os;
  op.out = dout.data();
  ple_proj_norm(op, s);
  std::vector<float> want(N);
  ref::ple_proj_norm<float>(in.proj.data(), T, L, P, ps, in.w.data(), 1e-6f, t, in.table.data(), in.stride,
                            use_ids ? in.ids.data() : nullptr, rs, os, want.data());
  const auto got = down(dout, s);
  EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), N, "out");
}

TEST(GpuPleProjNorm, BitExactGemma4Shapes) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 100;
  for (DType t : {DType::Q8_0, DType::F16, DType::BF16, DType::F32})
    for (int64_t T : {1, 3, 17, 512}) run_ple(t, T, 42, 256, true, seed += 1000);
  run_ple(DType::Q8_0, 17, 42, 256, false, 7);  // pre-gathered rows
}

TEST(GpuPleProjNorm, BitExactRaggedSlices) {
  KILN_REQUIRE_GPU();
  run_ple(DType::F32, 17, 3, 100, true, 1);   // P % 32 != 0
  run_ple(DType::F32, 3, 5, 37, true, 2);     // P % 4 != 0: scalar path
  run_ple(DType::Q8_0, 17, 2, 48, true, 3);   // L*P % 32 == 0, P % 32 != 0
  run_ple(DType::BF16, 3, 2, 1024, true, 4);  // widest slice
}

}  // namespace
}  // namespace kiln
