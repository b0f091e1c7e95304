#include "reference/embed.h"

#include <vector>

#include "kernels/common/error.h"
#include "models/quant.h"

namespace kiln::ref {

template <class T>
void embed(DType type, const void* table, int64_t n_vocab, int64_t n, const int32_t* ids, int64_t n_tokens,
           float scale, T* out) {
  KILN_REQUIRE(n > 0 && n % dtype_traits(type).block_elems == 0 && type != DType::Q8_1, "ref::embed: width ", n,
               " / type ", dtype_name(type));
  std::vector<float> row(static_cast<size_t>(n));
  const size_t rb = row_bytes(type, n);
  for (int64_t t = 0; t < n_tokens; ++t) {
    KILN_REQUIRE(ids[t] >= 0 && ids[t] < n_vocab, "ref::embed: token id ", ids[t], " out of [0, ", n_vocab, ")");
    decode_row(type, static_cast<const uint8_t*>(table) + size_t(ids[t]) * rb, row.data(), n);
    for (int64_t i = 0; i < n; ++i) out[t * n + i] = T(row[size_t(i)]) * T(scale);
  }
}

template void embed<float>(DType, const void*, int64_t, int64_t, const int32_t*, int64_t, float, float*);
template void embed<double>(DType, const void*, int64_t, int64_t, const int32_t*, int64_t, float, double*);

}  // namespace kiln::ref
