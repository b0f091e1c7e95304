#include "reference/quantize_q8_1.h"

#include "kernels/common/error.h"

namespace kiln::ref {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out) {
  KILN_REQUIRE(k % QK8_1 == 0, "quantize_q8_1: K=", k, " is not a multiple of ", QK8_1);
  const int64_t nb = k / QK8_1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) quantize_block_q8_1(x + r * k + b * QK8_1, out[r * nb + b]);
}

}  // namespace kiln::ref
