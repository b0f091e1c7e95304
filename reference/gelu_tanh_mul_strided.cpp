#include "reference/gelu_tanh_mul_strided.h"

#include <cmath>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/common/math.h"

namespace kiln::ref {

namespace {
inline float act(bool silu_act, float x) { return silu_act ? silu(x) : gelu_tanh(x); }
inline double act(bool silu_act, double x) {
  if (silu_act) return x / (1.0 + std::exp(-x));
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))));
}
}  // namespace

template <class T>
void gelu_tanh_mul_strided(bool silu_act, const T* gate, int64_t gate_stride, const T* b, int64_t b_stride,
                           int64_t n_tokens, int64_t n, T* out, BlockQ8_1* out_q) {
  KILN_REQUIRE(n_tokens >= 0 && n > 0, "ref::gelu_tanh_mul_strided: bad shape");
  KILN_REQUIRE(!out_q || n % QK8_1 == 0, "ref::gelu_tanh_mul_strided: Q8_1 output needs n % 32 == 0, n=", n);
  std::vector<float> row(static_cast<size_t>(n));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      const T y = act(silu_act, gate[t * gate_stride + i]) * b[t * b_stride + i];
      if (out) out[t * n + i] = y;
      row[size_t(i)] = float(y);
    }
    if (out_q)
      for (int64_t blk = 0; blk < n / QK8_1; ++blk)
        quantize_block_q8_1(row.data() + blk * QK8_1, out_q[t * (n / QK8_1) + blk]);
  }
}

template void gelu_tanh_mul_strided<float>(bool, const float*, int64_t, const float*, int64_t, int64_t, int64_t,
                                           float*, BlockQ8_1*);
template void gelu_tanh_mul_strided<double>(bool, const double*, int64_t, const double*, int64_t, int64_t,
                                            int64_t, double*, BlockQ8_1*);

}  // namespace kiln::ref
