// Oracle for kernels/head_norm_dual.cu. Contract: bit-exact vs ref::head_norm_dual<float> (with and without
// fused RoPE; the fused cache append vs ref::kv_append of its rows); ref<float> within 4e-6 (relative, floor 1)
// of ref<double>.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/head_norm_dual.cuh"
#include "reference/attention.h"
#include "reference/head_norm_dual.h"
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
struct Shape {
  const char* name;
  int nq, nkv, hd, n_rot;
  float theta;
  bool ff, v;
};
const Shape kShapes[] = {
    {"gemma4-sliding", 8, 2, 256, 256, 1e4f, false, true},
    {"gemma4-full", 8, 2, 512, 512, 1e6f, true, true},
    {"qwen3", 32, 8, 128, 128, 1e6f, false, false},
    {"partial-rotary", 8, 2, 256, 64, 1e4f, false, true},
    {"ragged", 3, 1, 100, 42, 1e4f, false, true},
    {"ragged-odd", 2, 1, 37, 0, 1e4f, false, true},
};

std::vector<float> freq_factors(int n_rot, uint64_t seed) {
  auto ff = random_floats(size_t(n_rot / 2), seed, 1.f, 4.f);
  for (size_t i = ff.size() / 2; i < ff.size(); i += 3) ff[i] = 1e30f;
  return ff;
}

TEST(HeadNormDualRef, FloatWithinDoubleBound) {
  const Shape& S = kShapes[1];
  const int64_t T = 5, stride = int64_t(S.nq + 2 * S.nkv) * S.hd;
  auto x = random_normal(size_t(T * stride), 3, 3.f);
  const auto wq = random_floats(size_t(S.hd), 4, 0.5f, 1.5f), wk = random_floats(size_t(S.hd), 5, 0.5f, 1.5f);
  const auto ff = freq_factors(S.n_rot, 6);
  const std::vector<int32_t> pos = {0, 7, 1000, 31, 4095};
  std::vector<double> xd(x.begin(), x.end());
  const int64_t qn = int64_t(S.nq) * S.hd, kn = int64_t(S.nkv) * S.hd;
  ref::head_norm_dual<float>(T, S.nq, S.nkv, S.hd, 1e-6f, x.data(), stride, wq.data(), x.data() + qn, stride,
                             wk.data(), x.data() + qn + kn, stride, pos.data(), S.n_rot, S.theta, ff.data());
  ref::head_norm_dual<double>(T, S.nq, S.nkv, S.hd, 1e-6f, xd.data(), stride, wq.data(), xd.data() + qn, stride,
                              wk.data(), xd.data() + qn + kn, stride, pos.data(), S.n_rot, S.theta, ff.data());
  EXPECT_LE(rel_err(x, xd, 1.0), 4e-6);
}

TEST(HeadNormDualRef, NormOfEachHeadHasUnitRms) {  // weightless V: mean square 1 (up to eps)
  const int64_t T = 2;
  const int nkv = 2, hd = 256;
  auto v = random_normal(size_t(T * nkv * hd), 8, 5.f);
  std::vector<double> vd(v.begin(), v.end());
  ref::head_norm_dual<double>(T, 0, nkv, hd, 1e-6f, nullptr, 0, nullptr, nullptr, 0, nullptr, vd.data(),
                              int64_t(nkv) * hd, nullptr, 0, 0.f, nullptr);
  for (int64_t h = 0; h < T * nkv; ++h) {
    double ms = 0;
    for (int i = 0; i < hd; ++i) ms += vd[size_t(h * hd + i)] * vd[size_t(h * hd + i)];
    EXPECT_NEAR(ms / hd, 1.0, 1e-6);
  }
}

TEST(HeadNormDualApi, RejectsBadArguments) {
  HeadNormOp op;
  float f = 0;
  op.n_tokens = 1;
  op.n_q_heads = 1;
  op.q = &f;
  op.head_dim = 1024;
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.head_dim = 128;
  int32_t p = 0;
  op.pos = &p;  // RoPE without table
  op.n_rot = 128;
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.table = reinterpret_cast<const float2*>(&f);
  op.n_pos = 1;
  op.n_rot = 130;
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.n_rot = 128;
  op.pos = nullptr;  // RoPE without positions
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.table = nullptr;
  op.v = &f;
  op.norm_v = false;  // V neither normed nor appended
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  uint16_t c[4];
  op.n_kv_heads = 1;
  op.k = &f;
  op.pos = &p;
  op.k_cache = c;  // without v_cache
  op.cache_cap = 1;
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.v_cache = c;
  op.cache_cap = 0;
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
  op.cache_cap = 1;
  op.head_dim = 126;  // cache rows need head_dim % 4 == 0
  EXPECT_THROW(head_norm_dual(op, nullptr), Error);
}

// What one run_hn call exercises. which: bit 0 q, bit 1 k, bit 2 v.
struct HnRun {
  bool rope = true;
  int which = 7;
  bool norm_v = true;  // false: V rows only appended (needs cache)
  bool cache = false;  // fused KV-cache append; positions then distinct modulo the ring
  bool skip = false;   // with cache and no RoPE: one token at position -1 (not appended)
};

// Fused QKV buffer [T][q | k | v], in place; optional cache ring of T + 3 rows.
void run_hn(const Shape& S, int64_t T, HnRun r, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << S.name << " T=" << T << " rope=" << r.rope << " which=" << r.which
                                    << " norm_v=" << r.norm_v << " cache=" << r.cache << " skip=" << r.skip);
  Stream s;
  const int64_t qn = int64_t(S.nq) * S.hd, kn = int64_t(S.nkv) * S.hd, stride = qn + 2 * kn;
  const int64_t n_pos = 4096, cap = T + 3;
  auto x = random_normal(size_t(T * stride), seed, 3.f);
  const auto wq = random_floats(size_t(S.hd), seed + 1, 0.5f, 1.5f);
  const auto wk = random_floats(size_t(S.hd), seed + 2, -1.5f, 1.5f);
  const auto ff = S.ff ? freq_factors(S.n_rot, seed + 3) : std::vector<float>();
  const bool rope = r.rope && S.n_rot > 0;
  const auto table = rope ? ref::rope_table(n_pos, S.n_rot, S.theta, S.ff ? ff.data() : nullptr) : std::vector<float>(2);
  std::vector<int32_t> pos;
  const auto u = random_floats(size_t(T), seed + 4, 0.f, 1.f);
  if (r.cache) {  // consecutive from a random start: distinct rows of the ring, wrapping
    const int32_t p0 = int32_t(u[0] * float(n_pos - T));
    for (int64_t t = 0; t < T; ++t) pos.push_back(p0 + int32_t(t));
    if (r.skip) pos[size_t(T / 2)] = -1;
  } else {
    for (float v : u) pos.push_back(int32_t(std::min<int64_t>(n_pos - 1, int64_t(v * float(n_pos)))));
  }
  auto dx = up(x, s);
  auto dwq = up(wq, s);
  auto dwk = up(wk, s);
  auto dt = up(table, s);
  auto dp = up(pos, s);
  auto kc = poisoned<uint16_t>(size_t(cap * kn), s), vc = poisoned<uint16_t>(size_t(cap * kn), s);
  const bool hq = r.which & 1, hk = r.which & 2, hv = (r.which & 4) && (S.v || r.cache);
  HeadNormOp op;
  op.n_tokens = T;
  op.n_q_heads = S.nq;
  op.n_kv_heads = S.nkv;
  op.head_dim = S.hd;
  op.eps = 1e-6f;
  op.q = hq ? dx.data() : nullptr;
  op.q_stride = stride;
  op.wq = dwq.data();
  op.k = hk ? dx.data() + qn : nullptr;
  op.k_stride = stride;
  op.wk = dwk.data();
  op.v = hv ? dx.data() + qn + kn : nullptr;
  op.v_stride = stride;
  op.norm_v = r.norm_v;
  op.pos = dp.data();
  if (rope) {
    op.table = reinterpret_cast<const float2*>(dt.data());
    op.n_pos = n_pos;
    op.n_rot = S.n_rot;
  }
  if (r.cache) {
    op.k_cache = kc.data();
    op.v_cache = vc.data();
    op.cache_cap = cap;
  }
  head_norm_dual(op, s);
  auto want = x;
  const bool ref_v = hv && r.norm_v;  // V rows the reference norms (the others stay as they are)
  ref::head_norm_dual<float>(T, S.nq, S.nkv, S.hd, 1e-6f, hq ? want.data() : nullptr, stride, wq.data(),
                             hk ? want.data() + qn : nullptr, stride, wk.data(),
                             ref_v ? want.data() + qn + kn : nullptr, stride, rope ? pos.data() : nullptr, S.n_rot,
                             S.theta, S.ff ? ff.data() : nullptr);
  const auto got = down(dx, s);
  EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), want.size(), "qkv");
  if (r.cache) {  // every row not appended keeps its poison
    std::vector<uint16_t> ek(size_t(cap * kn), 0xffff), ev(size_t(cap * kn), 0xffff);
    ref::kv_append(want.data() + qn, want.data() + qn + kn, stride, T, pos.data(), ek.data(), ev.data(), cap, kn);
    EXPECT_EQ(down(kc, s), ek) << "k cache";
    EXPECT_EQ(down(vc, s), ev) << "v cache";
  }
}

TEST(GpuHeadNormDual, BitExactModelShapesWithRope) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 1;
  for (const Shape& S : kShapes)
    for (int64_t T : {1, 3, 17, 512}) run_hn(S, T, HnRun{}, seed += 10);
}

TEST(GpuHeadNormDual, BitExactNormOnly) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 5000;
  for (const Shape& S : kShapes)
    for (int64_t T : {1, 17}) run_hn(S, T, HnRun{false}, seed += 10);
}

TEST(GpuHeadNormDual, BitExactSubsets) {  // KV-shared layers: Q only; K+V only
  KILN_REQUIRE_GPU();
  run_hn(kShapes[1], 17, HnRun{true, 1}, 9000);
  run_hn(kShapes[0], 3, HnRun{true, 6}, 9001);
  run_hn(kShapes[2], 3, HnRun{true, 3}, 9002);
}

// The fused KV append (Gemma 4: V normed; Qwen3: V only appended), ring wrap, a skipped token.
TEST(GpuHeadNormDual, BitExactCacheAppend) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 12000;
  for (const Shape& S : kShapes) {
    if (S.hd % 4) continue;  // the cache needs head_dim % 4 == 0 (rejected: RejectsBadArguments)
    for (int64_t T : {1, 17, 512}) {
      run_hn(S, T, HnRun{true, 7, true, true}, seed += 10);
      run_hn(S, T, HnRun{true, 7, false, true}, seed += 10);
    }
    run_hn(S, 17, HnRun{false, 6, S.v, true, true}, seed += 10);
  }
}

}  // namespace
}  // namespace kiln
