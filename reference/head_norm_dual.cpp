#include "reference/head_norm_dual.h"

#include <vector>

#include "kernels/common/error.h"
#include "reference/rmsnorm.h"
#include "reference/rope.h"

namespace kiln::ref {

namespace {
template <class T>
void norm_heads(T* x, int64_t stride, int64_t n_tokens, int heads, int hd, const float* w, float eps,
                const int32_t* pos, int n_rot, float theta, const float* ff) {
  std::vector<T> tmp(static_cast<size_t>(hd));
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int h = 0; h < heads; ++h) {
      T* row = x + t * stride + int64_t(h) * hd;
      const T ri = rms_inv<T>(sum_sq_ordered(row, hd, kSliceNormWarps), hd, eps);
      for (int i = 0; i < hd; ++i) row[i] = w ? (row[i] * ri) * T(w[i]) : row[i] * ri;
      if (pos) rope_neox(row, 1, 1, hd, n_rot, pos + t, theta, ff);
    }
}
}  // namespace

template <class T>
void head_norm_dual(int64_t n_tokens, int n_q_heads, int n_kv_heads, int head_dim, float eps, T* q,
                    int64_t q_stride, const float* wq, T* k, int64_t k_stride, const float* wk, T* v,
                    int64_t v_stride, const int32_t* pos, int n_rot, float theta, const float* ff) {
  KILN_REQUIRE(n_tokens >= 0 && head_dim > 0 && n_q_heads >= 0 && n_kv_heads >= 0,
               "ref::head_norm_dual: bad shape");
  if (q) norm_heads(q, q_stride, n_tokens, n_q_heads, head_dim, wq, eps, pos, n_rot, theta, ff);
  if (k) norm_heads(k, k_stride, n_tokens, n_kv_heads, head_dim, wk, eps, pos, n_rot, theta, ff);
  if (v) norm_heads<T>(v, v_stride, n_tokens, n_kv_heads, head_dim, nullptr, eps, nullptr, 0, 0.f, nullptr);
}

template void head_norm_dual<float>(int64_t, int, int, int, float, float*, int64_t, const float*, float*,
                                    int64_t, const float*, float*, int64_t, const int32_t*, int, float,
                                    const float*);
template void head_norm_dual<double>(int64_t, int, int, int, float, double*, int64_t, const float*, double*,
                                     int64_t, const float*, double*, int64_t, const int32_t*, int, float,
                                     const float*);

}  // namespace kiln::ref
