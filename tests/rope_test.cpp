// Oracle for kernels/rope.cu. Contract: bit-exact vs ref::rope_neox<float> (same host-built cos/sin table); ref<float> within 1e-6 (relative, floor 1) of ref<double>.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/rope.cuh"
#include "reference/rope.h"
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

// Gemma 4 full layers: freq factors (proportional rope); huge factors switch dims off.
std::vector<float> freq_factors(int n_rot, uint64_t seed) {
  auto ff = random_floats(size_t(n_rot / 2), seed, 1.f, 4.f);
  for (size_t i = ff.size() / 2; i < ff.size(); i += 3) ff[i] = 1e30f;
  return ff;
}
std::vector<int32_t> positions(int64_t T, int64_t n_pos, uint64_t seed) {
  const auto u = random_floats(size_t(T), seed, 0.f, 1.f);
  std::vector<int32_t> p;
  for (float v : u) p.push_back(int32_t(std::min<int64_t>(n_pos - 1, int64_t(v * float(n_pos)))));
  if (T > 1) p[0] = 0;
  return p;
}

TEST(RopeRef, HandComputedPair) {
  double x[4] = {1.0, 2.0, 3.0, 4.0};  // head_dim 4, n_rot 4: pairs (0,2), (1,3)
  const int32_t pos = 3;
  ref::rope_neox<double>(x, 1, 1, 4, 4, &pos, 100.f, nullptr);
  const double a0 = 3.0, a1 = 3.0 / 10.0;  // theta^(-2i/n_rot): 1, 100^-0.5
  EXPECT_NEAR(x[0], 1 * std::cos(a0) - 3 * std::sin(a0), 1e-12);
  EXPECT_NEAR(x[2], 1 * std::sin(a0) + 3 * std::cos(a0), 1e-12);
  EXPECT_NEAR(x[1], 2 * std::cos(a1) - 4 * std::sin(a1), 1e-12);
  EXPECT_NEAR(x[3], 2 * std::sin(a1) + 4 * std::cos(a1), 1e-12);
}

TEST(RopeRef, PositionZeroAndUnrotatedDimsAreIdentity) {
  auto x = random_normal(2 * 256, 3);
  auto y = x;
  const int32_t pos[2] = {0, 5};
  ref::rope_neox<float>(y.data(), 2, 1, 256, 64, pos, 10000.f, nullptr);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[size_t(i)], x[size_t(i)]) << i;           // pos 0: c = 1, s = 0
  for (int i = 64; i < 256; ++i) EXPECT_EQ(y[size_t(256 + i)], x[size_t(256 + i)]) << i;  // dims >= n_rot
}

TEST(RopeRef, TableMatchesCosSin) {
  const auto ff = freq_factors(64, 4);
  const auto t = ref::rope_table(100, 64, 1e6f, ff.data());
  for (int p : {0, 1, 57, 99})
    for (int i : {0, 5, 31}) {
      float c, s;
      ref::rope_cos_sin(p, i, 64, 1e6f, ff.data(), c, s);
      EXPECT_EQ(t[size_t(2 * (p * 32 + i))], c);
      EXPECT_EQ(t[size_t(2 * (p * 32 + i) + 1)], s);
    }
}

TEST(RopeRef, FloatWithinDoubleBound) {
  const int64_t T = 17;
  const int H = 4, hd = 512;
  const auto ff = freq_factors(hd, 5);
  const auto pos = positions(T, 32768, 6);
  auto xf = random_normal(size_t(T * H * hd), 7);
  std::vector<double> xd(xf.begin(), xf.end());
  ref::rope_neox<float>(xf.data(), T, H, hd, hd, pos.data(), 1e6f, ff.data());
  ref::rope_neox<double>(xd.data(), T, H, hd, hd, pos.data(), 1e6f, ff.data());
  EXPECT_LE(rel_err(xf, xd, 1.0), 1e-6);
}

TEST(RopeApi, RejectsBadArguments) {
  RopeOp op;
  float f = 0;
  int32_t p = 0;
  op.q = &f;
  op.pos = &p;
  op.table = reinterpret_cast<const float2*>(&f);
  op.n_pos = 1;
  op.n_q_heads = 1;
  op.n_tokens = 1;
  op.head_dim = 128;
  op.n_rot = 130;
  EXPECT_THROW(rope(op, nullptr), Error);
  op.n_rot = 63;
  EXPECT_THROW(rope(op, nullptr), Error);
  op.n_rot = 64;
  op.table = nullptr;
  EXPECT_THROW(rope(op, nullptr), Error);
  EXPECT_THROW(ref::rope_table(10, 63, 1e4f, nullptr), Error);
}

struct Layer {
  const char* name;
  int nq, nkv, hd, n_rot;
  float theta;
  bool ff;
};

void run_rope(const Layer& L, int64_t T, bool fused_qkv, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << L.name << " T=" << T << " fused_qkv=" << fused_qkv);
  Stream s;
  const int64_t n_pos = 4096;
  const auto ff = L.ff ? freq_factors(L.n_rot, seed) : std::vector<float>();
  const auto table = ref::rope_table(n_pos, L.n_rot, L.theta, L.ff ? ff.data() : nullptr);
  const auto pos = positions(T, n_pos, seed + 1);
  const int64_t qn = int64_t(L.nq) * L.hd, kn = int64_t(L.nkv) * L.hd;
  // fused: one [T][q | k | v] buffer; otherwise separate q and k buffers
  const int64_t stride = fused_qkv ? qn + 2 * kn : 0;
  std::vector<float> q, k;
  if (fused_qkv) {
    q = random_normal(size_t(T * stride), seed + 2);
  } else {
    q = random_normal(size_t(T * qn), seed + 2);
    k = random_normal(size_t(T * kn), seed + 3);
  }
  auto dq = up(q, s);
  auto dk = up(k, s);
  auto dt = up(table, s);
  auto dp = up(pos, s);
  RopeOp op;
  op.q = dq.data();
  op.q_stride = fused_qkv ? stride : qn;
  op.n_q_heads = L.nq;
  op.k = fused_qkv ? dq.data() + qn : dk.data();
  op.k_stride = fused_qkv ? stride : kn;
  op.n_kv_heads = L.nkv;
  op.head_dim = L.hd;
  op.n_rot = L.n_rot;
  op.n_tokens = T;
  op.pos = dp.data();
  op.table = reinterpret_cast<const float2*>(dt.data());
  op.n_pos = n_pos;
  rope(op, s);
  const auto gq = down(dq, s);
  const float* ffp = L.ff ? ff.data() : nullptr;
  if (fused_qkv) {
    auto want = q;
    for (int64_t t = 0; t < T; ++t) {
      ref::rope_neox<float>(want.data() + t * stride, 1, L.nq, L.hd, L.n_rot, pos.data() + t, L.theta, ffp);
      ref::rope_neox<float>(want.data() + t * stride + qn, 1, L.nkv, L.hd, L.n_rot, pos.data() + t, L.theta, ffp);
    }
    EXPECT_FLOATS_BITS_EQ(gq.data(), want.data(), want.size(), "qkv");  // v part must be untouched
  } else {
    auto wq = q, wk = k;
    ref::rope_neox<float>(wq.data(), T, L.nq, L.hd, L.n_rot, pos.data(), L.theta, ffp);
    ref::rope_neox<float>(wk.data(), T, L.nkv, L.hd, L.n_rot, pos.data(), L.theta, ffp);
    const auto gk = down(dk, s);
    EXPECT_FLOATS_BITS_EQ(gq.data(), wq.data(), wq.size(), "q");
    EXPECT_FLOATS_BITS_EQ(gk.data(), wk.data(), wk.size(), "k");
  }
}

const Layer kLayers[] = {
    {"qwen3", 32, 8, 128, 128, 1e6f, false},
    {"gemma4-sliding", 8, 2, 256, 256, 1e4f, false},
    {"gemma4-full", 8, 2, 512, 512, 1e6f, true},
    {"partial-rotary", 8, 2, 256, 64, 1e4f, false},
    {"odd-head", 3, 1, 100, 42, 1e4f, false},
};

TEST(GpuRope, BitExactModelShapes) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 1;
  for (const Layer& L : kLayers)
    for (int64_t T : {1, 3, 17, 512}) run_rope(L, T, false, seed += 10);
}

TEST(GpuRope, BitExactFusedQkvStrides) {
  KILN_REQUIRE_GPU();
  run_rope(kLayers[0], 17, true, 500);
  run_rope(kLayers[2], 3, true, 600);
}

TEST(GpuRope, OutOfTablePositionGivesNaN) {
  KILN_REQUIRE_GPU();
  Stream s;
  const auto table = ref::rope_table(8, 64, 1e4f, nullptr);
  const std::vector<int32_t> pos = {3, 8};
  auto x = random_normal(2 * 64, 1);
  auto dx = up(x, s);
  auto dt = up(table, s);
  auto dp = up(pos, s);
  RopeOp op;
  op.q = dx.data();
  op.q_stride = 64;
  op.n_q_heads = 1;
  op.head_dim = 64;
  op.n_rot = 64;
  op.n_tokens = 2;
  op.pos = dp.data();
  op.table = reinterpret_cast<const float2*>(dt.data());
  op.n_pos = 8;
  rope(op, s);
  const auto g = down(dx, s);
  for (int i = 0; i < 64; ++i) {
    EXPECT_FALSE(std::isnan(g[size_t(i)]));
    EXPECT_TRUE(std::isnan(g[size_t(64 + i)]));
  }
}

}  // namespace
}  // namespace kiln
