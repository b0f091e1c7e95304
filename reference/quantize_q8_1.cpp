#include "reference/quantize_q8_1.h"

#include <cstring>

#include "kernels/common/error.h"

namespace kiln::ref {

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out) {
  KILN_REQUIRE(k % QK8_1 == 0, "quantize_q8_1: K=", k, " is not a multiple of ", QK8_1);
  const int64_t nb = k / QK8_1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) quantize_block_q8_1(x + r * k + b * QK8_1, out[r * nb + b]);
}

void q8_1_to_layout(const BlockQ8_1* in, int64_t rows, int64_t nb, Q8Layout to, BlockQ8_1* out) {
  KILN_REQUIRE(q8_layout_valid(to), "q8_1_to_layout: unknown layout ", int(to));
  KILN_REQUIRE(in != out, "q8_1_to_layout: in place is not supported");
  for (int64_t r = 0; r < rows; ++r) {
    auto* dst = reinterpret_cast<uint32_t*>(out + r * nb);
    for (int64_t b = 0; b < nb; ++b) {
      uint32_t w[kQ8Words];
      memcpy(w, &in[r * nb + b], sizeof(w));
      for (int i = 0; i < kQ8Words; ++i) dst[q8_1_word(to, b, i, nb)] = w[i];
    }
  }
}

}  // namespace kiln::ref
