#include "tests/testing.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "kernels/common/error.h"

#include "kernels/common/device.cuh"

namespace kiln::testing {

bool have_gpu() {
  static const bool ok = [] {
    const int n = cuda_device_count();
    if (n == 0) fprintf(stderr, "[kiln] no CUDA device found: Gpu* tests will be skipped\n");
    return n > 0;
  }();
  return ok;
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

std::vector<float> random_normal(size_t n, uint64_t seed, float stddev) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = int32_t(g() % uint64_t(vocab));
  return t;
}

std::vector<float> read_f32(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path);
  std::vector<float> v(n + 1);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize((n + 1) * sizeof(float)));
  if (size_t(in.gcount()) != n * sizeof(float))
    fail(path, ": ", in.gcount(), " bytes, expected ", n * sizeof(float), " (tokens x vocab float32)");
  v.resize(n);
  return v;
}

double nmse(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = double(a[i]) - double(b[i]);
    num += e * e;
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
}

double max_rel_err(const float* a, const double* b, size_t n, double floor) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = std::fabs(double(a[i]) - b[i]) / std::max(std::fabs(b[i]), floor);
    if (!(e <= m)) m = e;  // NaN propagates as a failure
  }
  return m;
}

static bool is_dir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parity_dir() {
  if (const char* e = std::getenv("KILN_PARITY_DIR")) return is_dir(e) ? e : "";
  for (const char* rel : {"/../shared/parity", "/shared/parity", "/.parity"}) {
    const std::string p = std::string(KILN_SOURCE_DIR) + rel;
    if (is_dir(p)) return p;
  }
  return "";
}

std::string temp_dir() {
  const std::string p = std::string(KILN_BINARY_DIR) + "/test-tmp";
  mkdir(p.c_str(), 0755);
  return p;
}

}  // namespace kiln::testing
