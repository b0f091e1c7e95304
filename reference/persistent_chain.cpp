#include "reference/persistent_chain.h"

#include <cmath>
#include <vector>

#include "kernels/common/blocks.h"
#include "kernels/common/error.h"
#include "kernels/common/math.h"
#include "kernels/persistent_chain_spec.h"
#include "reference/rmsnorm.h"

namespace kiln::ref {

namespace {
constexpr int kWarps = kChainThreads / 32;

float silu_t(float v) { return silu(v); }
double silu_t(double v) { return v / (1.0 + std::exp(-v)); }
}  // namespace

template <>
float chain_dot<float>(const uint16_t* w, const float* x, int K) {
  std::vector<float> p(size_t(kChainThreads), 0.f);
  const int nc = K / 8;
  for (int j = 0; j < kChainThreads; ++j)
    for (int i = 0; i < kChainChunks; ++i) {
      const int c = j + kChainThreads * i;
      for (int e = 0; e < 8; ++e) {
        const float wv = c < nc ? bf16_to_f32(w[8 * c + e]) : 0.f;
        const float xv = c < nc ? x[8 * c + e] : 0.f;
        p[size_t(j)] = std::fmaf(wv, xv, p[size_t(j)]);
      }
    }
  return lanes_sum_ordered(p.data(), kWarps);
}

template <>
double chain_dot<double>(const uint16_t* w, const double* x, int K) {
  double s = 0;
  for (int k = 0; k < K; ++k) s += double(bf16_to_f32(w[k])) * x[k];
  return s;
}

template <class T>
void persistent_chain(int d, int f, int layers, float eps, const uint16_t* wa, const uint16_t* wb, T* x) {
  KILN_REQUIRE(d >= 8 && f >= 8 && d % 8 == 0 && f % 8 == 0 && d <= kChainMaxWidth && f <= kChainMaxWidth &&
                   layers >= 1,
               "ref::persistent_chain: bad shape d=", d, " f=", f, " layers=", layers);
  std::vector<T> xn(static_cast<size_t>(d)), h(static_cast<size_t>(f));
  const size_t sa = size_t(d) * size_t(f);
  for (int l = 0; l < layers; ++l) {
    const T inv = rms_inv<T>(sum_sq_ordered(x, d, kWarps), d, eps);
    for (int i = 0; i < d; ++i) xn[size_t(i)] = x[i] * inv;
    const uint16_t* a = wa + size_t(l) * sa;
    const uint16_t* b = wb + size_t(l) * sa;
    for (int r = 0; r < f; ++r) h[size_t(r)] = silu_t(chain_dot<T>(a + size_t(r) * size_t(d), xn.data(), d));
    for (int r = 0; r < d; ++r) x[r] = x[r] + chain_dot<T>(b + size_t(r) * size_t(f), h.data(), f);
  }
}

template void persistent_chain<float>(int, int, int, float, const uint16_t*, const uint16_t*, float*);
template void persistent_chain<double>(int, int, int, float, const uint16_t*, const uint16_t*, double*);

}  // namespace kiln::ref
