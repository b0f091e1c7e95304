#include "reference/softcap_argmax.h"

#include <cmath>

#include "kernels/common/error.h"
#include "kernels/common/math.h"

namespace kiln::ref {

namespace {
inline float cap_of(float x, float c) { return softcap(x, c); }
inline double cap_of(double x, float c) { return double(c) * std::tanh(x / double(c)); }
}  // namespace

template <class T>
void softcap_argmax(const T* logits, int64_t rows, int64_t n, float cap, T* capped, int32_t* idx) {
  KILN_REQUIRE(rows >= 0 && n > 0 && n < (int64_t(1) << 31), "ref::softcap_argmax: bad shape n=", n);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t best = -1;
    T bv = T(0);
    for (int64_t i = 0; i < n; ++i) {
      const T x = logits[r * n + i];
      const T z = cap > 0.f ? cap_of(x, cap) : x;
      if (capped) capped[r * n + i] = z;
      if (z != z) continue;
      if (best < 0 || z > bv) {
        best = i;
        bv = z;
      }
    }
    idx[r] = int32_t(best);
  }
}

template void softcap_argmax<float>(const float*, int64_t, int64_t, float, float*, int32_t*);
template void softcap_argmax<double>(const double*, int64_t, int64_t, float, double*, int32_t*);

}  // namespace kiln::ref
