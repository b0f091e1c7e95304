// gemm_n oracle tests. CPU (CI): the reference's Q8_1 mode against the exact double product within
// the activation-quantization bound stated in reference/gemm_n.h; float references against double;
// host-side shape validation of the launch API; dispatch by N. GPU: the integer and float paths
// bit-exact against ref::gemm_n_q8_1<float> / ref::gemm_n_f<float> over many shapes (ragged M,
// several K, N in {1,2,3,4,5,8} and > 8), N columns == N matvecs, the Add epilogue, multi-matrix
// launches, and the tensor-core path within its stated tolerance of ref::gemm_n_f<double>.
#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "kernels/gemm_n.cuh"
#include "kernels/gemm_n_mma.h"
#include "kernels/gemm_n_plan.h"
#include "models/quant.h"
#include "reference/gemm_n.h"
#include "reference/quantize_q8_1.h"
#include "tests/testing.h"

namespace kiln {
namespace {

using testing::random_floats;
using testing::random_normal;

std::vector<uint8_t> make_weights(DType t, int64_t M, int64_t K, uint64_t seed) {
  std::vector<float> f = random_normal(size_t(M * K), seed, 1.f);
  const std::vector<float> rs = random_floats(size_t(M), seed + 1, 0.2f, 2.f);  // per-row scale
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) f[size_t(m * K + k)] *= rs[size_t(m)];
  const size_t rb = row_bytes(t, K);
  std::vector<uint8_t> w(rb * size_t(M) + 16, 0);
  for (int64_t m = 0; m < M; ++m) encode_row(t, f.data() + m * K, w.data() + size_t(m) * rb, K);
  return w;
}

// Activations with per-32-block magnitudes spread over two decades.
std::vector<float> make_acts(int64_t N, int64_t K, uint64_t seed) {
  std::vector<float> x = random_normal(size_t(N * K), seed, 1.f);
  const std::vector<float> bs = random_floats(size_t(N * K / 32 + 1), seed + 7, 0.05f, 5.f);
  for (size_t i = 0; i < x.size(); ++i) x[i] *= bs[i / 32];
  return x;
}

std::vector<BlockQ8_1> quantize(const std::vector<float>& x, int64_t N, int64_t K) {
  std::vector<BlockQ8_1> q(size_t(N * K / 32));
  ref::quantize_q8_1(x.data(), N, K, q.data());
  return q;
}

// ---- the activation-quantization bound of reference/gemm_n.h, per output ----
double e_block(const BlockQ8_1& xb, const float* x) {
  float amax = 0.f;
  for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const double d = double(amax / 127.f);
  return d * (0.5 + std::ldexp(1.0, -15)) + 127.0 * std::max(std::ldexp(d, -11), std::ldexp(1.0, -25));
}

struct Bounds {
  double quant = 0;  // activation quantization
  double mag = 0;    // sum of |unit contribution| (float rounding scale)
};

Bounds q8_1_bounds(DType t, const uint8_t* row, int64_t K, const float* x, const BlockQ8_1* xq) {
  Bounds b;
  const int64_t U = K / 32;
  std::vector<float> w(static_cast<size_t>(K));
  decode_row(t, row, w.data(), K);
  for (int64_t u = 0; u < U; ++u) {
    const BlockQ8_1& xb = xq[u];
    const double e = e_block(xb, x + 32 * u);
    const double dx = f16_to_f32(xb.d);
    if (t == DType::Q4_K) {
      BlockQ4K blk;
      memcpy(&blk, row + (u / 8) * sizeof blk, sizeof blk);
      int sc, mn;
      q4k_scale_min(blk.scales, int(u % 8), sc, mn);
      const double A = double(f16_to_f32(blk.d)) * sc, B = double(f16_to_f32(blk.dmin)) * mn;
      double aqx = 0, wabs = 0;
      int qsum = 0;
      for (int i = 0; i < 32; ++i) {
        const int q = q4k_quant(blk, int(32 * (u % 8) + i));
        aqx += A * q * std::fabs(dx * xb.qs[i]);
        wabs += std::fabs(double(w[size_t(32 * u + i)]));
        qsum += xb.qs[i];
      }
      float amax = 0.f;
      for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[32 * u + i]));
      const double d = double(amax / 127.f);
      // sum_i w_i (xhat_i - x_i) + B (sum_i xhat_i - s): the f16 rounding of d and of s
      b.quant += wabs * e + B * (std::max(std::ldexp(d, -11), std::ldexp(1.0, -25)) * std::abs(qsum) +
                                 std::ldexp(d * std::abs(qsum), -11) + std::ldexp(1.0, -25));
      b.mag += aqx + B * std::fabs(double(f16_to_f32(xb.s)));
    } else {
      for (int i = 0; i < 32; ++i) {
        b.quant += std::fabs(double(w[size_t(32 * u + i)])) * e;
        b.mag += std::fabs(double(w[size_t(32 * u + i)]) * dx * xb.qs[i]);
      }
    }
  }
  return b;
}

const DType kQuant[] = {DType::Q8_0, DType::Q4_K, DType::Q6_K};
const DType kFloat[] = {DType::F32, DType::F16, DType::BF16};

// ================================================================ CPU: reference numerics

TEST(GemmNRef, Q8_1ModeWithinQuantizationBoundOfExact) {
  for (DType t : kQuant) {
    for (int64_t K : {256, 512, 2560}) {
      const int64_t M = 23, N = 3;
      const auto w = make_weights(t, M, K, 11 + K);
      const auto x = make_acts(N, K, 5 + K);
      const auto xq = quantize(x, N, K);
      std::vector<float> yf(size_t(N * M));
      std::vector<double> yd(size_t(N * M));
      ref::gemm_n_q8_1<float>(t, w.data(), M, K, xq.data(), N, yf.data());
      ref::gemm_n_f<double>(t, w.data(), M, K, x.data(), N, yd.data());
      double max_err = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t m = 0; m < M; ++m) {
          const uint8_t* row = w.data() + size_t(m) * row_bytes(t, K);
          const Bounds b = q8_1_bounds(t, row, K, x.data() + n * K, xq.data() + n * (K / 32));
          const double fr = (double(K / 32) + 40) * std::ldexp(1.0, -23) * b.mag;
          const double err = std::fabs(double(yf[size_t(n * M + m)]) - yd[size_t(n * M + m)]);
          ASSERT_LE(err, b.quant + fr) << dtype_name(t) << " K=" << K << " m=" << m << " n=" << n;
          // the bound is not vacuous: well below the size of the terms
          double absum = 0;
          std::vector<float> wr(static_cast<size_t>(K));
          decode_row(t, row, wr.data(), K);
          for (int64_t k = 0; k < K; ++k) absum += std::fabs(double(wr[size_t(k)]) * x[size_t(n * K + k)]);
          ASSERT_LT(b.quant, 0.02 * absum) << dtype_name(t);
          max_err = std::max(max_err, err);
        }
      EXPECT_GT(max_err, 0.0) << "quantization error expected for " << dtype_name(t);
    }
  }
}

TEST(GemmNRef, Q8_1FloatFollowsDoubleWithinRounding) {
  for (DType t : kQuant) {
    const int64_t M = 9, K = 4096, N = 2;
    const auto w = make_weights(t, M, K, 3);
    const auto x = make_acts(N, K, 4);
    const auto xq = quantize(x, N, K);
    std::vector<float> yf(size_t(N * M));
    std::vector<double> yd(size_t(N * M));
    ref::gemm_n_q8_1<float>(t, w.data(), M, K, xq.data(), N, yf.data());
    ref::gemm_n_q8_1<double>(t, w.data(), M, K, xq.data(), N, yd.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = 0; m < M; ++m) {
        const Bounds b = q8_1_bounds(t, w.data() + size_t(m) * row_bytes(t, K), K, x.data() + n * K,
                                     xq.data() + n * (K / 32));
        const double tol = (double(K / 32) + 40) * std::ldexp(1.0, -23) * b.mag;
        EXPECT_LE(std::fabs(yf[size_t(n * M + m)] - yd[size_t(n * M + m)]), tol) << dtype_name(t);
        EXPECT_NE(yf[size_t(n * M + m)], 0.f);
      }
  }
}

TEST(GemmNRef, FloatWeightsFollowDoubleWithinRounding) {
  for (DType t : kFloat)
    for (int64_t K : {8, 100, 1000}) {
      const int64_t M = 7, N = 3;
      const auto w = make_weights(t, M, K, 21);
      const auto x = make_acts(N, K + 32, 22);
      std::vector<float> yf(size_t(N * M)), wr(static_cast<size_t>(K));
      std::vector<double> yd(size_t(N * M));
      ref::gemm_n_f<float>(t, w.data(), M, K, x.data(), N, yf.data());
      ref::gemm_n_f<double>(t, w.data(), M, K, x.data(), N, yd.data());
      for (int64_t m = 0; m < M; ++m) {
        decode_row(t, w.data() + size_t(m) * row_bytes(t, K), wr.data(), K);
        for (int64_t n = 0; n < N; ++n) {
          double mag = 0;
          for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(wr[size_t(k)]) * x[size_t(n * K + k)]);
          EXPECT_LE(std::fabs(yf[size_t(n * M + m)] - yd[size_t(n * M + m)]),
                    (double(K) + 40) * std::ldexp(1.0, -23) * mag)
              << dtype_name(t) << " K=" << K;
        }
      }
    }
}

TEST(GemmNRef, RejectsBadShapes) {
  std::vector<uint8_t> w(1 << 16);
  std::vector<BlockQ8_1> x(64);
  std::vector<float> xf(4096), y(64);
  EXPECT_THROW(ref::gemm_n_q8_1<float>(DType::Q4_K, w.data(), 2, 288, x.data(), 1, y.data()), Error);
  EXPECT_THROW(ref::gemm_n_q8_1<float>(DType::Q8_0, w.data(), 2, 48, x.data(), 1, y.data()), Error);
  EXPECT_THROW(ref::gemm_n_q8_1<float>(DType::F16, w.data(), 2, 64, x.data(), 1, y.data()), Error);
  EXPECT_THROW(ref::gemm_n_f<double>(DType::Q6_K, w.data(), 2, 128, xf.data(), 1, reinterpret_cast<double*>(y.data())),
               Error);
}

// ================================================================ CPU: launch API validation
// Every check runs on the host before any CUDA call, so these need no device (fake pointers).

TEST(GemmNValidation, RejectsBadShapesBeforeAnyCudaCall) {
  auto* fake = reinterpret_cast<const void*>(uintptr_t(0x10000));
  auto* fx = reinterpret_cast<const BlockQ8_1*>(uintptr_t(0x20000));
  auto* ff = reinterpret_cast<const float*>(uintptr_t(0x20000));
  auto* fy = reinterpret_cast<float*>(uintptr_t(0x30000));
  auto expect_error = [](auto&& f, const char* needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { gemm_n_q8_1({DType::Q8_0, fake, 64, 100}, fx, 1, fy, Epilogue::Store, nullptr); },
               "not a multiple of the Q8_0 block size 32");
  expect_error([&] { gemm_n_q8_1({DType::Q4_K, fake, 64, 2560 + 32}, fx, 1, fy, Epilogue::Store, nullptr); },
               "not a multiple of the Q4_K block size 256");
  expect_error([&] { gemm_n_q8_1({DType::Q6_K, fake, 64, 128}, fx, 1, fy, Epilogue::Store, nullptr); },
               "Q6_K block size 256");
  expect_error([&] { gemm_n_q8_1({DType::Q8_0, fake, 0, 256}, fx, 1, fy, Epilogue::Store, nullptr); }, "empty");
  expect_error([&] { gemm_n_q8_1({DType::Q8_0, fake, 8, 256}, fx, 0, fy, Epilogue::Store, nullptr); }, "N=0");
  expect_error([&] { gemm_n_q8_1({DType::Q8_0, nullptr, 8, 256}, fx, 1, fy, Epilogue::Store, nullptr); }, "null");
  expect_error(
      [&] {
        gemm_n_q8_1({DType::Q8_0, static_cast<const uint8_t*>(fake) + 2, 8, 256}, fx, 1, fy, Epilogue::Store, nullptr);
      },
      "16-byte aligned");
  expect_error([&] { gemm_n_q8_1({DType::BF16, fake, 8, 256}, fx, 1, fy, Epilogue::Store, nullptr); },
               "not Q8_0/Q4_K/Q6_K");
  expect_error([&] { gemm_n_f({DType::Q8_0, fake, 8, 256}, ff, 1, fy, Epilogue::Store, nullptr); },
               "not F32/F16/BF16");
  const GemmNTarget two[2] = {{{DType::Q4_K, fake, 8, 512}, fy}, {{DType::Q6_K, fake, 8, 256}, fy}};
  expect_error([&] { gemm_n_q8_1_multi(two, 2, fx, 1, Epilogue::Store, nullptr); }, "shares one input");
  expect_error([&] { gemm_n_q8_1_multi(two, 0, fx, 1, Epilogue::Store, nullptr); }, "matrices");
  expect_error([&] { gemm_n_q8_1_multi(two, kGemmNMaxMats + 1, fx, 1, Epilogue::Store, nullptr); }, "matrices");
  auto* fake_handle = reinterpret_cast<cublasHandle_t>(uintptr_t(0x40000));
  expect_error(
      [&] {
        gemm_n_tc({DType::Q8_0, fake, 300, 512}, ff, 128, fy, Epilogue::Store, const_cast<void*>(fake), 1000,
                  fake_handle, nullptr);
      },
      "workspace");
  expect_error(
      [&] {
        gemm_n_tc({DType::Q8_0, fake, 300, 512}, ff, 128, fy, Epilogue::Store,
                  const_cast<char*>(static_cast<const char*>(fake)) + 8, size_t(1) << 30, fake_handle, nullptr);
      },
      "16-byte aligned");
  expect_error(
      [&] { gemm_n_tc({DType::Q4_K, fake, 300, 320}, ff, 128, fy, Epilogue::Store, nullptr, 0, fake_handle, nullptr); },
      "Q4_K block size");
  GemmNContext ctx;
  expect_error([&] { gemm_n({DType::Q8_0, fake, 8, 256}, ff, nullptr, 4, fy, Epilogue::Store, ctx, nullptr); },
               "needs Q8_1 activations");
  expect_error(
      [&] { gemm_n_q8_1({DType::Q8_0, fake, 8, 256}, fx, 3, fy, Epilogue::Store, nullptr, Q8Layout::Interleaved); },
      "interleaved Q8_1 activations are read at N <= 2");
  expect_error([&] { gemm_n_q8_1({DType::Q8_0, fake, 8, 256}, fx, 1, fy, Epilogue::Store, nullptr, Q8Layout(5)); },
               "unknown Q8_1 layout");
}

TEST(GemmNDispatch, ChoosesByN) {
  EXPECT_EQ(gemm_n_path(DType::Q4_K, 1), GemmNPath::Int8Dp4a);
  EXPECT_EQ(gemm_n_path(DType::Q8_0, 63), GemmNPath::Int8Dp4a);
  EXPECT_EQ(gemm_n_path(DType::Q6_K, 64), GemmNPath::TensorCore);
  EXPECT_EQ(gemm_n_path(DType::BF16, 8), GemmNPath::Float);
  EXPECT_EQ(gemm_n_path(DType::F32, 4096), GemmNPath::TensorCore);
  EXPECT_EQ(gemm_n_plan::gemm_n_split(DType::Q8_0, 262144, 2560), 1);
  EXPECT_EQ(gemm_n_plan::gemm_n_split(DType::Q8_0, 1024, 4096), 4);
  EXPECT_EQ(gemm_n_plan::gemm_n_split(DType::Q4_K, 1024, 4096), 2);  // 64 units: 2 chunks per row
  EXPECT_EQ(gemm_n_plan::gemm_n_split(DType::Q4_K, 256, 2560), 2);  // 40 units: 2 chunks per row
  EXPECT_EQ(gemm_n_plan::gemm_n_split(DType::Q6_K, 512, 256), 1);   // 4 units: 1 chunk
}

// The Q4_K MMA tiling (kernels/gemm_n_mma.h) against the PTX fragment layout of
// mma.m16n8k32: D register q of thread (g, t) is row g + 8 (q / 2), column 2t + q % 2. Each
// thread must hold exactly one entry whose A-row unit equals its B-column unit, at used_reg, for
// the row g % 4 and column t / 2 that it stores; the 32 threads must cover every (row, column,
// unit) once; and the butterfly partners must hold units v ^ 2 and v ^ 1 of the same entry.
TEST(GemmNMma, TilingKeepsOneUsedEntryPerThreadAndPairsThePlanLanes) {
  namespace mma = gemm_n_mma;
  int seen[4][2][4] = {};
  struct Held { int r, n, v; };
  Held held[32] = {};
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    EXPECT_EQ(mma::a_unit(g), mma::a_unit_lo(g));
    EXPECT_EQ(mma::a_unit(g + 8), mma::a_unit_hi(g));
    int used = 0;
    for (int q = 0; q < 4; ++q) {
      const int row = g + 8 * (q / 2), col = 2 * t + q % 2;
      const int va = mma::a_unit(row), vb = mma::b_unit(col);
      if (va != vb) continue;
      ++used;
      EXPECT_EQ(q, mma::used_reg(g, t)) << "lane " << lane;
      EXPECT_EQ(va, mma::used_unit(g, t)) << "lane " << lane;
      EXPECT_EQ(row % 4, g % 4) << "lane " << lane;
      EXPECT_EQ(col / 4, t / 2) << "lane " << lane;
      ++seen[row % 4][col / 4][va];
      held[lane] = {row % 4, col / 4, va};
    }
    EXPECT_EQ(used, 1) << "lane " << lane;
  }
  for (auto& r : seen)
    for (auto& n : r)
      for (int v = 0; v < 4; ++v) EXPECT_EQ(n[v], 1);
  for (int lane = 0; lane < 32; ++lane) {
    const int p2 = mma::partner2(lane), p1 = mma::partner1(lane);
    ASSERT_TRUE(p2 >= 0 && p2 < 32 && p1 >= 0 && p1 < 32);
    EXPECT_EQ(mma::partner2(p2), lane);
    EXPECT_EQ(mma::partner1(p1), lane);
    const Held& h = held[lane];
    EXPECT_TRUE(held[p2].r == h.r && held[p2].n == h.n && held[p2].v == (h.v ^ 2)) << "lane " << lane;
    EXPECT_TRUE(held[p1].r == h.r && held[p1].n == h.n && held[p1].v == (h.v ^ 1)) << "lane " << lane;
  }
}

// Units cover every 32-element slice of a row exactly once, and a K-quant unit's two slices share
// their quant bytes (Q4_K: one 32-byte qs group; Q6_K: one ql group of the same 128-element half).
TEST(GemmNPlan, UnitsPartitionTheSlices) {
  namespace plan = gemm_n_plan;
  for (DType t : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t K = 16384, slices = K / 32;  // 256 Q4_K/Q6_K units: 8 chunks
    std::vector<int> seen(size_t(slices), 0);
    for (int64_t u = 0; u < plan::units_per_row(t, K); ++u)
      for (int o = 0; o < plan::slices_per_unit(t); ++o) {
        const int64_t i = plan::slice_of(t, u, o);
        // The kernel's instantiation (32-bit unsigned unit index) gives the same slice.
        ASSERT_EQ(int64_t(plan::slice_of(t, uint32_t(u), o)), i) << dtype_name(t) << " unit " << u;
        ASSERT_GE(i, 0);
        ASSERT_LT(i, slices);
        ++seen[size_t(i)];
        if (t == DType::Q4_K) {
          EXPECT_EQ(i / 2, u) << "Q4_K unit " << u;
        } else if (t == DType::Q6_K) {
          EXPECT_EQ(i / 4, u / 2) << "Q6_K unit " << u << ": same 128-element half";
          EXPECT_EQ(i % 2, u % 2) << "Q6_K unit " << u << ": same ql bytes (quarter mod 2)";
        }
      }
    for (int64_t i = 0; i < slices; ++i) EXPECT_EQ(seen[size_t(i)], 1) << dtype_name(t) << " slice " << i;
  }
}

// ================================================================ GPU

struct Dev {
  Stream s;
  template <class T>
  DeviceBuffer<T> up(const std::vector<T>& v) {
    DeviceBuffer<T> d(v.size());
    copy_to_device(d.view(), v.data(), v.size(), s);
    return d;
  }
  template <class T>
  std::vector<T> down(const DeviceBuffer<T>& d) {
    std::vector<T> v(d.size());
    copy_to_host(v.data(), View<const T>(d.data(), d.size()), d.size(), s);
    s.sync();
    return v;
  }
  void poison(DeviceBuffer<float>& d) { KILN_CUDA_CHECK(cudaMemsetAsync(d.data(), 0xff, d.bytes(), s)); }
};

::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "size " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (memcmp(&a[i], &b[i], 4) != 0)
      return ::testing::AssertionFailure() << "index " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

struct Shape {
  DType t;
  int64_t M, K;
};

// The integer path's shapes: ragged M, every type, the grid and staging variants.
const Shape kIntShapes[] = {
    {DType::Q8_0, 1, 32},     {DType::Q8_0, 5, 96},      {DType::Q8_0, 37, 160},   {DType::Q8_0, 130, 2560},
    {DType::Q8_0, 1029, 1056}, {DType::Q8_0, 2049, 4096}, {DType::Q8_0, 6150, 512}, {DType::Q4_K, 1, 256},
    {DType::Q4_K, 37, 512},   {DType::Q4_K, 259, 2560},  {DType::Q4_K, 1537, 4096}, {DType::Q4_K, 6147, 768},
    {DType::Q6_K, 3, 256},    {DType::Q6_K, 77, 2560},   {DType::Q6_K, 1030, 1280}, {DType::Q6_K, 6145, 512},
    // Activations too large for the shared-memory stage (N = 1 and/or N = 2 read global memory).
    {DType::Q8_0, 67, 16384}, {DType::Q4_K, 45, 8192},   {DType::Q6_K, 29, 15360},
    // Q8_0 at N = 1 runs a wide grid below 32 MB of weights and the deep one from there (34 MB).
    {DType::Q8_0, 12401, 2560},
    // Q4_K at N = 2 stages its activations in shared memory only with >= 48 KB of weights per
    // CTA (kXStageMinCtaBytes): 28 MB here, ~54 KB per CTA on a 132-SM GPU.
    {DType::Q4_K, 12289, 4096},
};

TEST(GpuGemmN, IntegerPathBitExactAcrossShapesAndN) {
  KILN_REQUIRE_GPU();
  Dev d;
  for (const Shape& sh : kIntShapes) {
    const int64_t Nmax = 8;
    const auto w = make_weights(sh.t, sh.M, sh.K, uint64_t(sh.M * 7 + sh.K));
    const auto x = make_acts(Nmax, sh.K, uint64_t(sh.K + 3));
    const auto xq = quantize(x, Nmax, sh.K);
    auto dw = d.up(w);
    auto dx = d.up(xq);
    std::vector<float> want(size_t(Nmax * sh.M));
    ref::gemm_n_q8_1<float>(sh.t, w.data(), sh.M, sh.K, xq.data(), Nmax, want.data());
    for (int64_t N : {1, 2, 3, 4, 5, 8}) {
      DeviceBuffer<float> dy(size_t(N * sh.M));
      d.poison(dy);
      gemm_n_q8_1({sh.t, dw.data(), sh.M, sh.K}, dx.data(), N, dy.data(), Epilogue::Store, d.s);
      const auto got = d.down(dy);
      EXPECT_TRUE(same_bits(got, std::vector<float>(want.begin(), want.begin() + N * sh.M)))
          << dtype_name(sh.t) << " M=" << sh.M << " K=" << sh.K << " N=" << N;
    }
  }
}

TEST(GpuGemmN, ColumnsEqualSeparateMatvecsAndWideN) {
  KILN_REQUIRE_GPU();
  Dev d;
  for (DType t : kQuant) {
    const int64_t M = 333, K = 2560, N = 11;  // N > 8: two column groups
    const auto w = make_weights(t, M, K, 99);
    const auto x = make_acts(N, K, 98);
    const auto xq = quantize(x, N, K);
    auto dw = d.up(w);
    auto dx = d.up(xq);
    DeviceBuffer<float> dy(size_t(N * M)), d1(static_cast<size_t>(M));
    d.poison(dy);
    gemm_n_q8_1({t, dw.data(), M, K}, dx.data(), N, dy.data(), Epilogue::Store, d.s);
    const auto all = d.down(dy);
    std::vector<float> want(size_t(N * M));
    ref::gemm_n_q8_1<float>(t, w.data(), M, K, xq.data(), N, want.data());
    EXPECT_TRUE(same_bits(all, want)) << dtype_name(t);
    for (int64_t n = 0; n < N; ++n) {
      d.poison(d1);
      gemm_n_q8_1({t, dw.data(), M, K}, dx.data() + n * (K / 32), 1, d1.data(), Epilogue::Store, d.s);
      EXPECT_TRUE(same_bits(d.down(d1), std::vector<float>(all.begin() + n * M, all.begin() + (n + 1) * M)))
          << dtype_name(t) << " column " << n;
    }
  }
}

// Epilogue::Add with several matrices per launch, split-K slots (S = 2, 4) and slots that own
// several row groups (each group's old output is loaded at the group's start), N = 1..8.
TEST(GpuGemmN, AddEpilogueAndMultiMatrix) {
  KILN_REQUIRE_GPU();
  Dev d;
  struct Launch {
    int64_t K, N;
    std::vector<Shape> mats;  // (Shape::K unused: the launch's K)
  };
  const Launch launches[] = {
      {1024, 3, {{DType::Q4_K, 300, 0}, {DType::Q6_K, 77, 0}, {DType::Q8_0, 1500, 0}}},
      {2048, 1, {{DType::Q8_0, 6000, 0}, {DType::Q4_K, 1000, 0}, {DType::Q6_K, 12001, 0}}},  // S 2, 1, 1
      {2048, 8, {{DType::Q8_0, 6000, 0}, {DType::Q6_K, 12001, 0}}},
      {4096, 2, {{DType::Q8_0, 1000, 0}, {DType::Q4_K, 3001, 0}}},  // S 4, 2
  };
  uint64_t seed = 50;
  for (const Launch& L : launches) {
    const int64_t K = L.K, N = L.N;
    const int count = int(L.mats.size());
    const auto x = make_acts(N, K, seed++);
    const auto xq = quantize(x, N, K);
    auto dx = d.up(xq);
    std::vector<std::vector<uint8_t>> w;
    std::vector<DeviceBuffer<uint8_t>> dw;
    std::vector<DeviceBuffer<float>> dy;
    std::vector<std::vector<float>> y0, want;
    GemmNTarget tg[kGemmNMaxMats];
    for (int i = 0; i < count; ++i) {
      const Shape& m = L.mats[size_t(i)];
      w.push_back(make_weights(m.t, m.M, K, seed++));
      dw.push_back(d.up(w.back()));
      y0.push_back(random_floats(size_t(N * m.M), seed++, -3.f, 3.f));
      dy.push_back(d.up(y0.back()));
      want.emplace_back(size_t(N * m.M));
      ref::gemm_n_q8_1<float>(m.t, w[size_t(i)].data(), m.M, K, xq.data(), N, want.back().data());
      tg[i] = {{m.t, dw.back().data(), m.M, K}, dy.back().data()};
    }
    gemm_n_q8_1_multi(tg, count, dx.data(), N, Epilogue::Add, d.s);
    for (int i = 0; i < count; ++i) {
      std::vector<float> e(want[size_t(i)].size());
      for (size_t j = 0; j < e.size(); ++j) e[j] = y0[size_t(i)][j] + want[size_t(i)][j];
      EXPECT_TRUE(same_bits(d.down(dy[size_t(i)]), e)) << "Add, K " << K << " N " << N << " matrix " << i;
      d.poison(dy[size_t(i)]);
    }
    gemm_n_q8_1_multi(tg, count, dx.data(), N, Epilogue::Store, d.s);
    for (int i = 0; i < count; ++i)
      EXPECT_TRUE(same_bits(d.down(dy[size_t(i)]), want[size_t(i)])) << "Store, K " << K << " N " << N << " matrix " << i;
  }
}

// Activations in Q8Layout::Interleaved (the decode layout, N <= 2) give the same bits as the
// reference on the Blocks bytes, on the integer path's shapes (every type, short last groups such
// as K = 2560's 64 + 16 blocks, the packed short chunks, Q8_0's wide and deep grids, the Q4_K N = 2
// shared-memory stage), and in a mixed-type multi-matrix launch with the Add epilogue.
TEST(GpuGemmN, InterleavedActivationsSameBits) {
  KILN_REQUIRE_GPU();
  Dev d;
  for (const Shape& sh : kIntShapes) {
    const int64_t nb = sh.K / 32;
    const auto w = make_weights(sh.t, sh.M, sh.K, uint64_t(sh.M * 5 + sh.K));
    const auto xq = quantize(make_acts(2, sh.K, uint64_t(sh.K + 11)), 2, sh.K);
    std::vector<BlockQ8_1> xi(xq.size());
    ref::q8_1_to_layout(xq.data(), 2, nb, Q8Layout::Interleaved, xi.data());
    auto dw = d.up(w);
    auto dx = d.up(xi);
    std::vector<float> want(size_t(2 * sh.M));
    ref::gemm_n_q8_1<float>(sh.t, w.data(), sh.M, sh.K, xq.data(), 2, want.data());
    for (int64_t N : {1, 2}) {
      DeviceBuffer<float> dy(size_t(N * sh.M));
      d.poison(dy);
      gemm_n_q8_1({sh.t, dw.data(), sh.M, sh.K}, dx.data(), N, dy.data(), Epilogue::Store, d.s, Q8Layout::Interleaved);
      EXPECT_TRUE(same_bits(d.down(dy), std::vector<float>(want.begin(), want.begin() + N * sh.M)))
          << dtype_name(sh.t) << " M=" << sh.M << " K=" << sh.K << " N=" << N;
    }
  }
  // Qwen3's Q / K / V launch (Q4_K, Q4_K, Q6_K) on one interleaved column, Add epilogue.
  const int64_t K = 4096, M[3] = {4096, 1024, 1024};
  const DType T[3] = {DType::Q4_K, DType::Q4_K, DType::Q6_K};
  const auto xq = quantize(make_acts(1, K, 77), 1, K);
  std::vector<BlockQ8_1> xi(xq.size());
  ref::q8_1_to_layout(xq.data(), 1, K / 32, Q8Layout::Interleaved, xi.data());
  auto dx = d.up(xi);
  std::vector<DeviceBuffer<uint8_t>> dw;
  std::vector<DeviceBuffer<float>> dy;
  std::vector<std::vector<float>> want;
  GemmNTarget tg[3];
  for (int i = 0; i < 3; ++i) {
    const auto w = make_weights(T[i], M[i], K, uint64_t(80 + i));
    const auto y0 = random_floats(size_t(M[i]), uint64_t(90 + i), -3.f, 3.f);
    want.emplace_back(size_t(M[i]));
    ref::gemm_n_q8_1<float>(T[i], w.data(), M[i], K, xq.data(), 1, want.back().data());
    for (size_t j = 0; j < y0.size(); ++j) want.back()[j] = y0[j] + want.back()[j];
    dw.push_back(d.up(w));
    dy.push_back(d.up(y0));
    tg[i] = {{T[i], dw.back().data(), M[i], K}, dy.back().data()};
  }
  gemm_n_q8_1_multi(tg, 3, dx.data(), 1, Epilogue::Add, d.s, Q8Layout::Interleaved);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(d.down(dy[size_t(i)]), want[size_t(i)])) << "QKV matrix " << i;
}

TEST(GpuGemmN, FloatPathBitExact) {
  KILN_REQUIRE_GPU();
  Dev d;
  for (DType t : kFloat)
    for (int64_t K : {8, 100, 2560})
      for (int64_t M : {3, 130, 1537}) {
        const int64_t Nmax = 8;
        const auto w = make_weights(t, M, K, uint64_t(M + K));
        const auto x = make_acts(Nmax, K + 32, 5);
        auto dw = d.up(w);
        auto dx = d.up(x);
        std::vector<float> want(size_t(Nmax * M));
        ref::gemm_n_f<float>(t, w.data(), M, K, x.data(), Nmax, want.data());
        for (int64_t N : {1, 3, 8}) {
          DeviceBuffer<float> dy(size_t(N * M));
          d.poison(dy);
          gemm_n_f({t, dw.data(), M, K}, dx.data(), N, dy.data(), Epilogue::Store, d.s);
          EXPECT_TRUE(same_bits(d.down(dy), std::vector<float>(want.begin(), want.begin() + N * M)))
              << dtype_name(t) << " M=" << M << " K=" << K << " N=" << N;
        }
      }
}

TEST(GpuGemmN, TensorCorePathWithinTolerance) {
  KILN_REQUIRE_GPU();
  Dev d;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  // Float weights: K = 512 takes the 16-byte stores, K = 100 the element stores. Quantized
  // weights: M = 77 matrices end inside a warp's 32-block chunk, and Q8_0 77x96 / Q6_K 77x768 end
  // off a 16-byte boundary (the byte-copied last segment).
  const Shape shapes[] = {{DType::Q8_0, 300, 512}, {DType::Q4_K, 300, 512}, {DType::Q6_K, 300, 512},
                          {DType::Q8_0, 77, 96},   {DType::Q4_K, 77, 256},  {DType::Q6_K, 77, 768},
                          {DType::BF16, 300, 512}, {DType::F16, 300, 512},  {DType::F32, 77, 100},
                          {DType::BF16, 77, 100}};
  // Workspaces: the minimum (128-row tiles: M = 300 takes 3 GEMMs, cuBLAS on its default pool);
  // 137-row tiles (tiles start inside a 32-block chunk); the default (one tile, with cuBLAS's own
  // workspace carved from it).
  for (const int ws_kind : {0, 1, 2})
  for (const Shape& sh : shapes)
    for (int64_t N : {64, 130}) {
      const DType t = sh.t;
      const int64_t M = sh.M, K = sh.K;
      const auto w = make_weights(t, M, K, 7);
      const auto x = make_acts(N, K, 8);
      auto dw = d.up(w);
      auto dx = d.up(x);
      const WeightDesc wd{t, dw.data(), M, K};
      const size_t ws = ws_kind == 2 ? gemm_n_tc_workspace_default(wd, N)
                                     : gemm_n_tc_workspace_min(wd, N) + (ws_kind == 1 ? size_t(9 * K * 2) : 0);
      DeviceBuffer<uint8_t> dws(ws);
      const auto y0 = random_floats(size_t(N * M), 9, -1.f, 1.f);
      auto dy = d.up(y0);
      GemmNContext ctx{h, dws.data(), ws};
      ASSERT_EQ(gemm_n_path(t, N), GemmNPath::TensorCore);
      gemm_n(wd, dx.data(), nullptr, N, dy.data(), Epilogue::Add, ctx, d.s);
      const auto got = d.down(dy);
      std::vector<double> want(size_t(N * M));
      ref::gemm_n_f<double>(t, w.data(), M, K, x.data(), N, want.data());
      const auto wf = dequantize(t, w.data(), M, K);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t m = 0; m < M; ++m) {
          double mag = 0;
          for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(wf[size_t(m * K + k)]) * x[size_t(n * K + k)]);
          const double tol = (std::ldexp(1.0, -7) + double(K) * std::ldexp(1.0, -23)) * mag + 1e-6 * std::fabs(y0[size_t(n * M + m)]);
          const double e = std::fabs(double(got[size_t(n * M + m)]) - (double(y0[size_t(n * M + m)]) + want[size_t(n * M + m)]));
          ASSERT_LE(e, tol) << dtype_name(t) << " N=" << N << " m=" << m << " n=" << n << " ws_kind=" << ws_kind;
        }
    }
  cublasDestroy(h);
}

// Q/K/V-style multi-matrix calls (mixed types, one shared K) give the bits of separate
// gemm_n_tc calls, for every matrix, with the minimum workspace (tiled) and the default.
TEST(GpuGemmN, TensorCoreMultiEqualsSeparateCalls) {
  KILN_REQUIRE_GPU();
  Dev d;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  const int64_t K = 512, N = 96;
  const Shape mats[] = {{DType::Q8_0, 300, K}, {DType::Q6_K, 77, K}, {DType::BF16, 200, K}, {DType::Q4_K, 130, K}};
  const auto x = make_acts(N, K, 21);
  auto dx = d.up(x);
  std::vector<DeviceBuffer<uint8_t>> dw;
  std::vector<DeviceBuffer<float>> ys, yr;
  GemmNTarget tg[4];
  size_t ws_min = 0, ws_def = 0;
  for (int i = 0; i < 4; ++i) {
    dw.push_back(d.up(make_weights(mats[i].t, mats[i].M, K, uint64_t(30 + i))));
    ys.emplace_back(size_t(N * mats[i].M));
    yr.emplace_back(size_t(N * mats[i].M));
    tg[i] = GemmNTarget{{mats[i].t, dw.back().data(), mats[i].M, K}, ys.back().data()};
    ws_min = std::max(ws_min, gemm_n_tc_workspace_min(tg[i].w, N));
    ws_def = std::max(ws_def, gemm_n_tc_workspace_default(tg[i].w, N));
  }
  for (const size_t ws : {ws_min, ws_def}) {
    DeviceBuffer<uint8_t> dws(ws);
    for (int i = 0; i < 4; ++i) {
      d.poison(ys[size_t(i)]);
      d.poison(yr[size_t(i)]);
      gemm_n_tc(tg[i].w, dx.data(), N, yr[size_t(i)].data(), Epilogue::Store, dws.data(), ws, h, d.s);
    }
    gemm_n_tc_multi(tg, 4, dx.data(), N, Epilogue::Store, dws.data(), ws, h, d.s);
    for (int i = 0; i < 4; ++i) {
      const auto got = d.down(ys[size_t(i)]), want = d.down(yr[size_t(i)]);
      for (float v : want) ASSERT_TRUE(std::isfinite(v)) << "matrix " << i;
      EXPECT_TRUE(same_bits(got, want)) << "matrix " << i << " (" << dtype_name(mats[i].t) << ") workspace " << ws;
    }
  }
  const GemmNTarget bad[2] = {tg[0], GemmNTarget{{DType::Q8_0, dw[0].data(), 300, 256}, ys[0].data()}};
  DeviceBuffer<uint8_t> dws(ws_def);
  EXPECT_THROW(gemm_n_tc_multi(bad, 2, dx.data(), N, Epilogue::Store, dws.data(), ws_def, h, d.s), Error);
  cublasDestroy(h);
}

}  // namespace
}  // namespace kiln
