// Device layer (kernels/common/device.cuh) and the ceilings probe (kernels/probe.cuh).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "kernels/common/device.cuh"
#include "kernels/probe.cuh"
#include "tests/testing.h"

namespace kiln {
namespace {

using ::testing::HasSubstr;

TEST(Device, CudaCheckReportsFileLineAndErrorName) {
  try {
    KILN_CUDA_CHECK(cudaSetDevice(1 << 20));  // no such device (or no driver): always an error
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("device_test.cpp:"));
    EXPECT_THAT(e.what(), HasSubstr("CUDA error cuda"));
    EXPECT_THAT(e.what(), HasSubstr("in cudaSetDevice(1 << 20)"));
  }
  cudaGetLastError();
}

TEST(Device, ViewSlicesWithoutCopyAndChecksBounds) {
  float storage[10];
  View<float> v(storage, 10);
  View<float> s = v.slice(3, 4);
  EXPECT_EQ(s.ptr, storage + 3);
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.bytes(), 16u);
  View<const float> c = s;  // const conversion
  EXPECT_EQ(c.ptr, storage + 3);
  EXPECT_THROW(v.slice(8, 3), Error);
  EXPECT_THROW(v.slice(11, 0), Error);
  EXPECT_NO_THROW(v.slice(10, 0));
}

TEST(Device, CountIsZeroWithoutADevice) {
  // Never throws; the value is whatever the machine has.
  EXPECT_GE(cuda_device_count(), 0);
}

TEST(GpuDevice, ArenaHandsOutAlignedViewsAndRejectsOverflow) {
  KILN_REQUIRE_GPU();
  Arena a(4096);
  View<float> x = a.take<float>(3);
  View<uint8_t> y = a.take<uint8_t>(100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.ptr) % Arena::kAlign, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.ptr) % Arena::kAlign, 0u);
  EXPECT_GE(reinterpret_cast<uint8_t*>(y.ptr) - reinterpret_cast<uint8_t*>(x.ptr), 12);
  try {
    a.take<float>(4096);
    FAIL() << "no overflow error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("exceeds capacity 4096"));
  }
  a.reset();
  EXPECT_EQ(a.used(), 0u);
}

TEST(GpuDevice, PropsDescribeARealDevice) {
  KILN_REQUIRE_GPU();
  const DeviceProps p = device_props(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.sm_count, 0);
  EXPECT_GT(p.l2_bytes, 0u);
}

// Named *InvalidOrdinal so `ci/gpu-suite.sh --sanitize` can leave it out: its failing CUDA call is
// the point of the test, and compute-sanitizer counts every failing API call as an error.
TEST(GpuDevice, PropsRejectAnInvalidOrdinal) {
  KILN_REQUIRE_GPU();
  EXPECT_THROW(device_props(1 << 20), Error);
}

TEST(GpuProbe, ReadSumMatchesTheHostSum) {
  KILN_REQUIRE_GPU();
  for (size_t n : {size_t(1), size_t(7), size_t(4096 + 3), size_t(1) << 20}) {
    const std::vector<float> h = testing::random_floats(n, n, 0.f, 1.f);
    DeviceBuffer<float> x(n);
    DeviceBuffer<float> out{size_t(read_sum_blocks())};
    Stream s;
    copy_to_device(x.view(), h.data(), n, s);
    read_sum(x, out, s);
    std::vector<float> parts(static_cast<size_t>(read_sum_blocks()));
    copy_to_host(parts.data(), View<const float>(out), parts.size(), s);
    s.sync();
    const double got = std::accumulate(parts.begin(), parts.end(), 0.0);
    const double want = std::accumulate(h.begin(), h.end(), 0.0);
    EXPECT_NEAR(got, want, 1e-5 * want + 1e-6) << n;
  }
}

TEST(GpuProbe, CeilingsArePositiveAndOrdered) {
  KILN_REQUIRE_GPU();
  Stream s;
  const Ceilings c = measure_ceilings(size_t(256) << 20, s, /*with_gemm=*/true);
  EXPECT_GT(c.copy_gbs, 100.0);
  EXPECT_GT(c.read_gbs, 100.0);
  EXPECT_GT(c.bf16_tflops, 10.0);
  printf("[probe] copy %.0f GB/s, read %.0f GB/s, bf16 %.0f TFLOP/s (256 MiB buffers)\n", c.copy_gbs, c.read_gbs,
         c.bf16_tflops);
}

}  // namespace
}  // namespace kiln
