// Device helpers for the Gpu* suites of the kernel oracle tests: upload/download, NaN-poisoned
// outputs (0xff bytes: NaN floats, NaN f16 scales in Q8_1 blocks), and bit-exact comparisons that
// name the first differing element.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/common/device.cuh"
#include "tests/testing.h"

namespace kiln::testing {

template <class T>
DeviceBuffer<T> up(const std::vector<T>& h, cudaStream_t s) {
  DeviceBuffer<T> d(h.size());
  copy_to_device(d.view(), h.data(), h.size(), s);
  return d;
}
template <class T>
std::vector<T> down(const DeviceBuffer<T>& d, cudaStream_t s) {
  std::vector<T> h(d.size());
  copy_to_host(h.data(), View<const T>(d.data(), d.size()), h.size(), s);
  KILN_CUDA_CHECK(cudaStreamSynchronize(s));
  return h;
}
template <class T>
DeviceBuffer<T> poisoned(size_t n, cudaStream_t s) {  // 0xff bytes: NaN floats, 0xffff f16 NaN Q8_1 scales
  DeviceBuffer<T> d(n);
  KILN_CUDA_CHECK(cudaMemsetAsync(d.data(), 0xff, d.bytes(), s));
  return d;
}
// First index whose bytes differ (n elements of T), or -1.
template <class T>
int64_t first_diff(const T* a, const T* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0) return int64_t(i);
  return -1;
}
#define EXPECT_BITS_EQ(got, want, n, what)                                                   \
  do {                                                                                       \
    const int64_t d_ = first_diff((got), (want), (n));                                       \
    EXPECT_EQ(d_, -1) << what << ": first differing element " << d_;                         \
  } while (0)
#define EXPECT_FLOATS_BITS_EQ(got, want, n, what)                                             \
  do {                                                                                       \
    const int64_t d_ = first_diff((got), (want), (n));                                       \
    EXPECT_EQ(d_, -1) << what << ": first differing element " << d_ << " got "               \
                      << (d_ >= 0 ? (got)[d_] : 0.f) << " want " << (d_ >= 0 ? (want)[d_] : 0.f); \
  } while (0)
// max |a - b| / max(|b|, floor)
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b, double floor) {
  return max_rel_err(a.data(), b.data(), a.size(), floor);
}

}  // namespace kiln::testing
