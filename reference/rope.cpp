#include "reference/rope.h"

#include <cmath>

#include "kernels/common/error.h"

namespace kiln::ref {

namespace {
double rope_angle(int64_t pos, int i, int n_rot, float theta, const float* ff) {
  const double inv_freq = std::pow(double(theta), -2.0 * double(i) / double(n_rot));
  return double(pos) * inv_freq / (ff ? double(ff[i]) : 1.0);
}
void check(int head_dim, int n_rot) {
  KILN_REQUIRE(n_rot > 0 && n_rot % 2 == 0 && n_rot <= head_dim, "rope: n_rot=", n_rot,
               " must be even, > 0 and <= head_dim=", head_dim);
}
}  // namespace

void rope_cos_sin(int64_t pos, int i, int n_rot, float theta, const float* ff, float& c, float& s) {
  const double a = rope_angle(pos, i, n_rot, theta, ff);
  c = float(std::cos(a));
  s = float(std::sin(a));
}
void rope_cos_sin(int64_t pos, int i, int n_rot, float theta, const float* ff, double& c, double& s) {
  const double a = rope_angle(pos, i, n_rot, theta, ff);
  c = std::cos(a);
  s = std::sin(a);
}

std::vector<float> rope_table(int64_t n_pos, int n_rot, float theta, const float* ff) {
  check(n_rot, n_rot);
  KILN_REQUIRE(n_pos > 0, "rope_table: n_pos=", n_pos);
  const int half = n_rot / 2;
  std::vector<float> t(size_t(n_pos) * size_t(half) * 2);
  for (int64_t p = 0; p < n_pos; ++p)
    for (int i = 0; i < half; ++i) {
      float c, s;
      rope_cos_sin(p, i, n_rot, theta, ff, c, s);
      t[size_t(2 * (p * half + i))] = c;
      t[size_t(2 * (p * half + i) + 1)] = s;
    }
  return t;
}

template <class T>
void rope_neox(T* x, int64_t n_tokens, int n_heads, int head_dim, int n_rot, const int32_t* pos, float theta,
               const float* ff) {
  check(head_dim, n_rot);
  const int half = n_rot / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    KILN_REQUIRE(pos[t] >= 0, "rope_neox: negative position ", pos[t], " at token ", t);
    for (int i = 0; i < half; ++i) {
      T c, s;
      rope_cos_sin(pos[t], i, n_rot, theta, ff, c, s);
      for (int h = 0; h < n_heads; ++h) {
        T* v = x + (t * n_heads + h) * head_dim;
        const T x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x0 * s + x1 * c;
      }
    }
  }
}

template void rope_neox<float>(float*, int64_t, int, int, int, const int32_t*, float, const float*);
template void rope_neox<double>(double*, int64_t, int, int, int, const int32_t*, float, const float*);

}  // namespace kiln::ref
