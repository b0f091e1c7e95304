// persistent_chain oracle tests. CPU (CI): ref<float> within 1e-4 (relative, floor 1) of
// ref<double>; the float dot product's order against a hand-built case; host-side validation.
// GPU: both modes (one launch per phase with PDL; one persistent kernel with grid barriers)
// bit-exact vs ref<float> on ragged and full-width shapes, a 64-layer chain (192 grid barriers in
// one launch) and repeated launches (the barrier is left zero for the next one), in a captured
// graph too. Scratch is NaN-poisoned before each call.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/common/blocks.h"
#include "kernels/common/device.cuh"
#include "kernels/persistent_chain.cuh"
#include "reference/persistent_chain.h"
#include "tests/device_testing.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using testing::down;
using testing::first_diff;
using testing::poisoned;
using testing::random_normal;
using testing::up;

struct Chain {
  int d = 0, f = 0, layers = 0;
  std::vector<uint16_t> wa, wb;  // BF16, ~N(0, 1/K) so that activations stay O(1)
  std::vector<float> x;          // ~N(0, 1)
};
Chain make_chain(int d, int f, int layers, uint64_t seed) {
  Chain c{d, f, layers, {}, {}, random_normal(size_t(d), seed, 1.f)};
  const size_t n = size_t(d) * size_t(f) * size_t(layers);
  const std::vector<float> a = random_normal(n, seed + 1, float(1.0 / std::sqrt(double(d))));
  const std::vector<float> b = random_normal(n, seed + 2, float(1.0 / std::sqrt(double(f))));
  c.wa.resize(n);
  c.wb.resize(n);
  for (size_t i = 0; i < n; ++i) {
    c.wa[i] = f32_to_bf16(a[i]);
    c.wb[i] = f32_to_bf16(b[i]);
  }
  return c;
}
constexpr float kEps = 1e-6f;

std::vector<float> ref_float(const Chain& c) {
  std::vector<float> x = c.x;
  ref::persistent_chain<float>(c.d, c.f, c.layers, kEps, c.wa.data(), c.wb.data(), x.data());
  return x;
}

// ---- cpu ----------------------------------------------------------------------------------------

TEST(PersistentChainRef, FloatWithinDoubleBound) {
  for (auto [d, f, layers] : {std::tuple{64, 128, 3}, {1000, 2040, 2}, {2560, 8192, 1}}) {
    SCOPED_TRACE(::testing::Message() << "d=" << d << " f=" << f << " layers=" << layers);
    const Chain c = make_chain(d, f, layers, 11);
    const std::vector<float> xf = ref_float(c);
    std::vector<double> xd(c.x.begin(), c.x.end());
    ref::persistent_chain<double>(d, f, layers, kEps, c.wa.data(), c.wb.data(), xd.data());
    EXPECT_LE(testing::max_rel_err(xf.data(), xd.data(), xf.size(), 1.0), 1e-4);
    // A chain that did nothing would be far from the double result: x must have moved.
    double moved = 0;
    for (int i = 0; i < d; ++i) moved = std::fmax(moved, std::fabs(xd[size_t(i)] - c.x[size_t(i)]));
    EXPECT_GT(moved, 0.1);
  }
}

TEST(PersistentChainRef, DotOrderIsTheKernels) {
  // K = 16: lane 0 owns elements 0..7, lane 1 elements 8..15; the tree adds lane 1 to lane 0.
  // Seven 2^-24 terms after a 1 in lane 0 each round away (ties to even); summed first, in any
  // order, they would survive as 2 + 2^-21 in float.
  std::vector<uint16_t> w(16, f32_to_bf16(1.f));
  std::vector<float> x(16, 0.f);
  x[0] = 1.f;
  for (int i = 1; i < 8; ++i) x[size_t(i)] = std::ldexp(1.f, -24);  // each lost against 1 in lane 0
  x[8] = 1.f;
  // lane 0: 1 (the seven 2^-24 round away one at a time); lane 1: 1; total 2.
  EXPECT_EQ(ref::chain_dot<float>(w.data(), x.data(), 16), 2.f);
  // A plain left-to-right sum in double keeps them.
  EXPECT_EQ(ref::chain_dot<double>(w.data(), std::vector<double>(x.begin(), x.end()).data(), 16),
            2.0 + 7 * std::ldexp(1.0, -24));
}

TEST(PersistentChainApi, RejectsBadShapes) {
  alignas(16) float buf[64] = {};
  alignas(16) unsigned bar[kChainBarrierWords] = {};
  auto* w = reinterpret_cast<const uint16_t*>(buf);
  ChainOp op;
  op.d = 64;
  op.f = 128;
  op.layers = 1;
  op.wa = w;
  op.wb = w;
  op.x = buf;
  op.xn = buf;
  op.h = buf;
  op.barrier = bar;
  for (ChainMode m : {ChainMode::Launches, ChainMode::Persistent}) {
    ChainOp b = op;
    b.d = 12;  // not a multiple of 8
    EXPECT_THROW(persistent_chain(b, m, nullptr), Error);
    b = op;
    b.f = kChainMaxWidth + 8;
    EXPECT_THROW(persistent_chain(b, m, nullptr), Error);
    b = op;
    b.layers = 0;
    EXPECT_THROW(persistent_chain(b, m, nullptr), Error);
    b = op;
    b.barrier = nullptr;
    EXPECT_THROW(persistent_chain(b, m, nullptr), Error);
    b = op;
    b.x = buf + 1;  // misaligned
    EXPECT_THROW(persistent_chain(b, m, nullptr), Error);
  }
}

// ---- gpu: bit-exact vs ref<float> ---------------------------------------------------------------

struct DevChain {
  DeviceBuffer<uint16_t> wa, wb;
  DeviceBuffer<float> x, xn, h;
  DeviceBuffer<unsigned> bar;
  ChainOp op;
  DevChain(const Chain& c, cudaStream_t s)
      : wa(up(c.wa, s)), wb(up(c.wb, s)), x(up(c.x, s)), xn(poisoned<float>(size_t(c.d), s)),
        h(poisoned<float>(size_t(c.f), s)), bar(kChainBarrierWords) {
    KILN_CUDA_CHECK(cudaMemsetAsync(bar.data(), 0, bar.bytes(), s));
    op.d = c.d;
    op.f = c.f;
    op.layers = c.layers;
    op.eps = kEps;
    op.wa = wa.data();
    op.wb = wb.data();
    op.x = x.data();
    op.xn = xn.data();
    op.h = h.data();
    op.barrier = bar.data();
  }
  void reset(const Chain& c, cudaStream_t s) {
    copy_to_device(x.view(), c.x.data(), c.x.size(), s);
    KILN_CUDA_CHECK(cudaMemsetAsync(xn.data(), 0xff, xn.bytes(), s));
    KILN_CUDA_CHECK(cudaMemsetAsync(h.data(), 0xff, h.bytes(), s));
  }
};

void expect_modes_match_ref(int d, int f, int layers, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "d=" << d << " f=" << f << " layers=" << layers);
  Stream s;
  const Chain c = make_chain(d, f, layers, seed);
  const std::vector<float> want = ref_float(c);
  DevChain dc(c, s.get());
  for (ChainMode m : {ChainMode::Launches, ChainMode::Persistent}) {
    SCOPED_TRACE(m == ChainMode::Persistent ? "persistent" : "launches");
    dc.reset(c, s.get());
    persistent_chain(dc.op, m, s.get());
    const std::vector<float> got = down(dc.x, s.get());
    EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), want.size(), "x");
    EXPECT_EQ(down(dc.bar, s.get()), std::vector<unsigned>(kChainBarrierWords, 0u)) << "barrier not left zero";
  }
}

TEST(GpuPersistentChain, BitExactSmallAndRagged) {
  KILN_REQUIRE_GPU();
  expect_modes_match_ref(64, 128, 3, 1);    // fewer row groups than CTAs
  expect_modes_match_ref(1000, 2040, 2, 2); // chunks per row not a multiple of the CTA's threads
  expect_modes_match_ref(8, 8, 1, 3);       // the smallest chain
}

TEST(GpuPersistentChain, BitExactFullWidth) {
  KILN_REQUIRE_GPU();
  expect_modes_match_ref(kChainMaxWidth, 4096, 1, 4);  // every thread's two chunks in use
  expect_modes_match_ref(2048, kChainMaxWidth, 2, 5);
}

TEST(GpuPersistentChain, ManyBarriersAndRepeatedLaunches) {
  KILN_REQUIRE_GPU();
  // 64 layers: 191 grid barriers in one launch; any CTA running ahead of one reads a stale xn or
  // h and breaks the bits.
  expect_modes_match_ref(256, 512, 64, 6);
  // The same chain three times in a row on x, direct and replayed from a captured graph.
  Stream s;
  const Chain c = make_chain(512, 1024, 4, 7);
  Chain c3 = c;
  c3.layers = 12;
  c3.wa.clear();
  c3.wb.clear();
  for (int r = 0; r < 3; ++r) {
    c3.wa.insert(c3.wa.end(), c.wa.begin(), c.wa.end());
    c3.wb.insert(c3.wb.end(), c.wb.begin(), c.wb.end());
  }
  const std::vector<float> want = ref_float(c3);
  DevChain dc(c, s.get());
  for (bool graph : {false, true}) {
    SCOPED_TRACE(graph ? "graph" : "direct");
    dc.reset(c, s.get());
    if (!graph) {
      for (int r = 0; r < 3; ++r) persistent_chain(dc.op, ChainMode::Persistent, s.get());
    } else {
      cudaGraph_t g;
      cudaGraphExec_t ge;
      KILN_CUDA_CHECK(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
      persistent_chain(dc.op, ChainMode::Persistent, s.get());
      KILN_CUDA_CHECK(cudaStreamEndCapture(s.get(), &g));
      KILN_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
      for (int r = 0; r < 3; ++r) KILN_CUDA_CHECK(cudaGraphLaunch(ge, s.get()));
      KILN_CUDA_CHECK(cudaGraphExecDestroy(ge));
      KILN_CUDA_CHECK(cudaGraphDestroy(g));
    }
    const std::vector<float> got = down(dc.x, s.get());
    EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), want.size(), "x after 3 launches");
  }
}

}  // namespace
}  // namespace kiln
