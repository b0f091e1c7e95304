// Oracle for kernels/gelu_tanh_mul_strided.cu. Contract: bit-exact vs ref::gelu_tanh_mul_strided<float> (floats and Q8_1 bytes); ref<float> within 1e-6 (relative, floor 1) of ref<double>.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/gelu_tanh_mul_strided.cuh"
#include "reference/gelu_tanh_mul_strided.h"
#include "reference/quantize_q8_1.h"
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

TEST(GatedMulRef, KnownValues) {  // independent constants: tanh-GELU(1) and SiLU(1)
  const double g = 1.0, b = 2.0;
  double o;
  ref::gelu_tanh_mul_strided<double>(false, &g, 1, &b, 1, 1, 1, &o, nullptr);
  EXPECT_NEAR(o, 2.0 * 0.8411919906082768, 1e-12);
  ref::gelu_tanh_mul_strided<double>(true, &g, 1, &b, 1, 1, 1, &o, nullptr);
  EXPECT_NEAR(o, 2.0 * 0.7310585786300049, 1e-12);
  const float gf = 1.f, bf = 2.f;
  float of;
  ref::gelu_tanh_mul_strided<float>(false, &gf, 1, &bf, 1, 1, 1, &of, nullptr);
  EXPECT_NEAR(of, 2.0 * 0.8411919906082768, 1e-6);
}

TEST(GatedMulRef, FloatWithinDoubleBound) {
  for (bool silu_act : {false, true}) {
    const int64_t T = 5, n = 10240;
    const auto g = random_normal(size_t(T * n), 1, 3.f);
    const auto b = random_normal(size_t(T * n), 2, 1.f);
    std::vector<double> gd(g.begin(), g.end()), bd(b.begin(), b.end()), od(size_t(T * n));
    std::vector<float> of(size_t(T * n));
    ref::gelu_tanh_mul_strided<float>(silu_act, g.data(), n, b.data(), n, T, n, of.data(), nullptr);
    ref::gelu_tanh_mul_strided<double>(silu_act, gd.data(), n, bd.data(), n, T, n, od.data(), nullptr);
    EXPECT_LE(rel_err(of, od, 1.0), 1e-6) << (silu_act ? "silu" : "gelu");
  }
}

TEST(GatedMulApi, RejectsBadArguments) {
  GatedMulOp op;
  float f = 0;
  op.gate = op.b = op.out = &f;
  op.n_tokens = 2;
  op.n = 100;
  op.gate_stride = op.b_stride = 100;
  op.out_q = reinterpret_cast<BlockQ8_1*>(&f);
  EXPECT_THROW(gelu_tanh_mul_strided(op, nullptr), Error);  // Q8_1 needs n % 32 == 0
  op.out_q = nullptr;
  op.b_stride = 50;
  EXPECT_THROW(gelu_tanh_mul_strided(op, nullptr), Error);  // stride shorter than a row
  op.b_stride = 100;
  op.q_layout = Q8Layout(2);
  EXPECT_THROW(gelu_tanh_mul_strided(op, nullptr), Error);  // unknown layout
  op.q_layout = Q8Layout::Blocks;
  op.n = 0;
  EXPECT_THROW(gelu_tanh_mul_strided(op, nullptr), Error);
}

// b is a strided view into a larger buffer (b_off elements in, token stride b_stride): the PLE case.
void run_glu(GatedAct act, int64_t T, int64_t n, int64_t gate_stride, int64_t b_stride, int64_t b_off, bool want_out,
             bool want_q, uint64_t seed) {
  static int calls = 0;  // Q8_1 outputs in both column layouts, alternately
  const Q8Layout ql = calls++ % 2 ? Q8Layout::Interleaved : Q8Layout::Blocks;
  SCOPED_TRACE(::testing::Message() << (act == GatedAct::Silu ? "silu" : "gelu") << " T=" << T << " n=" << n
                                    << " gs=" << gate_stride << " bs=" << b_stride << " off=" << b_off
                                    << " q=" << want_q << " layout=" << int(ql));
  Stream s;
  const auto g = random_normal(size_t(T * gate_stride), seed, 2.5f);
  const auto b = random_normal(size_t(T * b_stride + b_off), seed + 1, 1.f);
  auto dg = up(g, s);
  auto db = up(b, s);
  const size_t N = size_t(T * n), NB = size_t(T * (n / 32));
  auto dout = poisoned<float>(want_out ? N : 0, s);
  auto dq = poisoned<BlockQ8_1>(want_q ? NB : 0, s);
  GatedMulOp op;
  op.act = act;
  op.gate = dg.data();
  op.gate_stride = gate_stride;
  op.b = db.data() + b_off;
  op.b_stride = b_stride;
  op.n_tokens = T;
  op.n = n;
  op.out = want_out ? dout.data() : nullptr;
  op.out_q = want_q ? dq.data() : nullptr;
  op.q_layout = ql;
  gelu_tanh_mul_strided(op, s);
  std::vector<float> want(N);
  std::vector<BlockQ8_1> wq(want_q ? NB : 0);
  ref::gelu_tanh_mul_strided<float>(act == GatedAct::Silu, g.data(), gate_stride, b.data() + b_off, b_stride, T, n,
                                    want.data(), want_q ? wq.data() : nullptr);
  if (want_out) {
    const auto got = down(dout, s);
    EXPECT_FLOATS_BITS_EQ(got.data(), want.data(), N, "out");
  }
  if (want_q) {
    const auto gq = down(dq, s);
    std::vector<BlockQ8_1> wql(NB);
    ref::q8_1_to_layout(wq.data(), T, n / 32, ql, wql.data());
    EXPECT_BITS_EQ(gq.data(), wql.data(), NB, "out_q");
  }
}

TEST(GpuGatedMul, BitExactPleStrided) {
  KILN_REQUIRE_GPU();
  const int L = 42, P = 256;
  uint64_t seed = 1;
  for (int64_t T : {1, 3, 17, 512})
    for (int l : {0, 17, 41}) run_glu(GatedAct::GeluTanh, T, P, P, int64_t(L) * P, int64_t(l) * P, true, true, seed += 10);
}

TEST(GpuGatedMul, BitExactFfnForms) {
  KILN_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (int64_t T : {1, 3, 17, 512}) {
    run_glu(GatedAct::GeluTanh, T, 10240, 10240, 10240, 0, true, true, seed += 10);   // Gemma 4 GeGLU
    run_glu(GatedAct::Silu, T, 12288, 12288, 12288, 0, false, true, seed += 10);      // Qwen3 SwiGLU -> Q8_1 only
    run_glu(GatedAct::Silu, T, 12288, 2 * 12288, 2 * 12288, 12288, true, false, seed += 10);  // fused gate|up rows
  }
}

TEST(GpuGatedMul, BitExactRagged) {
  KILN_REQUIRE_GPU();
  run_glu(GatedAct::GeluTanh, 17, 1000, 1000, 1003, 1, true, false, 5000);  // misaligned b: scalar chunk loads
  run_glu(GatedAct::Silu, 17, 999, 1001, 999, 0, true, false, 5001);        // n % 4 != 0: element path
  run_glu(GatedAct::GeluTanh, 3, 96, 100, 96, 4, true, true, 5002);         // n % 32 == 0 but not 256
}

}  // namespace
}  // namespace kiln
