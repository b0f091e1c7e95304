#include "reference/rmsnorm.h"

#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/common/math.h"

namespace kiln::ref {

namespace {
inline float fma_t(float a, float b, float c) { return std::fmaf(a, b, c); }
inline double fma_t(double a, double b, double c) { return std::fma(a, b, c); }

template <class T>
void quantize_row(const T* v, int64_t n, BlockQ8_1* q) {
  float tmp[QK8_1];
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    for (int i = 0; i < QK8_1; ++i) tmp[i] = float(v[b * QK8_1 + i]);
    quantize_block_q8_1(tmp, q[b]);
  }
}
}  // namespace

template <class T>
T sum_sq_ordered(const T* x, int64_t n, int warps) {
  KILN_REQUIRE(warps >= 1 && warps <= 32 && (warps & (warps - 1)) == 0,
               "sum_sq_ordered: warps=", warps, " must be a power of two <= 32");
  const int L = 32 * warps;
  std::vector<T> p(size_t(L), T(0));
  const int64_t nc = (n + 3) / 4;
  for (int j = 0; j < L; ++j)
    for (int64_t c = j; c < nc; c += L)
      for (int e = 0; e < 4; ++e) {
        const int64_t i = 4 * c + e;
        if (i < n) p[size_t(j)] = fma_t(x[i], x[i], p[size_t(j)]);
      }
  return lanes_sum_ordered(p.data(), warps);
}

template <class T>
T lanes_sum_ordered(T* p, int warps) {
  for (int w = 0; w < warps; ++w)
    for (int h = 16; h >= 1; h /= 2)
      for (int l = 0; l < h; ++l) p[size_t(32 * w + l)] = p[size_t(32 * w + l)] + p[size_t(32 * w + l + h)];
  for (int h = warps / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l) p[size_t(32 * l)] = p[size_t(32 * l)] + p[size_t(32 * (l + h))];
  return p[0];
}

template <>
float rms_inv<float>(float ss, int64_t n, float eps) {
  return krsqrt(ss / float(n) + eps);
}
template <>
double rms_inv<double>(double ss, int64_t n, float eps) {
  return 1.0 / std::sqrt(ss / double(n) + double(eps));
}

template <class T>
void rmsnorm(const T* x, const float* w, int64_t rows, int64_t n, float eps, T* out) {
  KILN_REQUIRE(rows >= 0 && n > 0, "ref::rmsnorm: bad shape rows=", rows, " n=", n);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    const T ri = rms_inv<T>(sum_sq_ordered(xr, n, kRmsnormWarps), n, eps);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = w ? (xr[i] * ri) * T(w[i]) : xr[i] * ri;
  }
}

template <class T>
void rmsnorm_fused(T* x, const T* y, bool norm_y, const float* w_y, float scale, const float* w,
                   int64_t rows, int64_t n, float eps, T* out, BlockQ8_1* out_q, BlockQ8_1* x_q) {
  KILN_REQUIRE(rows >= 0 && n > 0, "ref::rmsnorm_fused: bad shape rows=", rows, " n=", n);
  KILN_REQUIRE((!out_q && !x_q) || n % QK8_1 == 0, "ref::rmsnorm_fused: Q8_1 output needs n % 32 == 0, n=", n);
  const size_t nn = static_cast<size_t>(n);
  std::vector<T> xn(nn), yn(nn), o(nn);
  const bool write_x = y != nullptr || scale != 1.f;
  for (int64_t r = 0; r < rows; ++r) {
    T* xr = x + r * n;
    const T* yr = y ? y + r * n : nullptr;
    if (yr && norm_y) {
      const T ry = rms_inv<T>(sum_sq_ordered(yr, n, kRmsnormWarps), n, eps);
      for (int64_t i = 0; i < n; ++i) yn[size_t(i)] = w_y ? (yr[i] * ry) * T(w_y[i]) : yr[i] * ry;
    } else if (yr) {
      for (int64_t i = 0; i < n; ++i) yn[size_t(i)] = yr[i];
    }
    for (int64_t i = 0; i < n; ++i) xn[size_t(i)] = yr ? (xr[i] + yn[size_t(i)]) * T(scale) : xr[i] * T(scale);
    if (write_x)
      for (int64_t i = 0; i < n; ++i) xr[i] = xn[size_t(i)];
    if (x_q) quantize_row(xn.data(), n, x_q + r * (n / QK8_1));
    if (out || out_q) {
      const T ri = rms_inv<T>(sum_sq_ordered(xn.data(), n, kRmsnormWarps), n, eps);
      for (int64_t i = 0; i < n; ++i) o[size_t(i)] = w ? (xn[size_t(i)] * ri) * T(w[i]) : xn[size_t(i)] * ri;
      if (out)
        for (int64_t i = 0; i < n; ++i) out[r * n + i] = o[size_t(i)];
      if (out_q) quantize_row(o.data(), n, out_q + r * (n / QK8_1));
    }
  }
}

template float sum_sq_ordered<float>(const float*, int64_t, int);
template double sum_sq_ordered<double>(const double*, int64_t, int);
template float lanes_sum_ordered<float>(float*, int);
template double lanes_sum_ordered<double>(double*, int);
template void rmsnorm<float>(const float*, const float*, int64_t, int64_t, float, float*);
template void rmsnorm<double>(const double*, const float*, int64_t, int64_t, float, double*);
template void rmsnorm_fused<float>(float*, const float*, bool, const float*, float, const float*, int64_t,
                                   int64_t, float, float*, BlockQ8_1*, BlockQ8_1*);
template void rmsnorm_fused<double>(double*, const double*, bool, const float*, float, const float*, int64_t,
                                    int64_t, float, double*, BlockQ8_1*, BlockQ8_1*);

}  // namespace kiln::ref
