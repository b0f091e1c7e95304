// Shared test helpers: GPU availability, deterministic random data, poisoning, error metrics,
// and where the external parity files live.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln::testing {

// True when a CUDA device is usable. The reason is printed once when there is none.
bool have_gpu();

// Start of every Gpu* test: skips with a clear message when no CUDA device is present.
#define KILN_REQUIRE_GPU()                                                         \
  do {                                                                             \
    if (!::kiln::testing::have_gpu()) GTEST_SKIP() << "no CUDA device: GPU test skipped"; \
  } while (0)

// Deterministic, non-constant data: uniform in [lo, hi).
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f);
// Normal(0, stddev).
std::vector<float> random_normal(size_t n, uint64_t seed, float stddev = 1.f);

// n token ids uniform in [0, vocab), deterministic from the seed.
std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed);
// Exactly n little-endian float32 values from a raw file (throws kiln::Error otherwise).
std::vector<float> read_f32(const std::string& path, size_t n);

// Sum (a-b)^2 / sum b^2.
double nmse(const float* a, const float* b, size_t n);
// Max |a-b| / max(|b|, floor).
double max_rel_err(const float* a, const double* b, size_t n, double floor);

// Directory with the external parity set (../shared/parity next to the checkout, or
// $KILN_PARITY_DIR). Empty when absent.
std::string parity_dir();
// A scratch directory for files a test writes (under the build tree).
std::string temp_dir();

}  // namespace kiln::testing
