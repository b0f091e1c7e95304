#include "reference/ple_proj_norm.h"

#include <vector>

#include "kernels/common/error.h"
#include "models/quant.h"
#include "reference/rmsnorm.h"

namespace kiln::ref {

template <class T>
void ple_proj_norm(const T* proj, int64_t n_tokens, int n_layers, int P, float proj_scale, const float* w,
                   float eps, DType row_type, const void* rows, size_t row_stride, const int32_t* ids,
                   float row_scale, float out_scale, T* out) {
  KILN_REQUIRE(n_tokens >= 0 && n_layers > 0 && P > 0, "ref::ple_proj_norm: bad shape");
  KILN_REQUIRE(row_type == DType::Q8_0 || row_type == DType::F16 || row_type == DType::BF16 ||
                   row_type == DType::F32,
               "ref::ple_proj_norm: unsupported row type ", dtype_name(row_type));
  const int64_t W = int64_t(n_layers) * P;
  KILN_REQUIRE(W % dtype_traits(row_type).block_elems == 0, "ref::ple_proj_norm: L*P=", W,
               " not a multiple of the ", dtype_name(row_type), " block");
  std::vector<float> e(static_cast<size_t>(W));
  std::vector<T> a(static_cast<size_t>(P));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t r = ids ? ids[t] : t;
    decode_row(row_type, static_cast<const uint8_t*>(rows) + size_t(r) * row_stride, e.data(), W);
    for (int l = 0; l < n_layers; ++l) {
      const T* p = proj + t * W + int64_t(l) * P;
      for (int i = 0; i < P; ++i) a[size_t(i)] = p[i] * T(proj_scale);
      const T ri = rms_inv<T>(sum_sq_ordered(a.data(), P, kSliceNormWarps), P, eps);
      T* o = out + t * W + int64_t(l) * P;
      for (int i = 0; i < P; ++i)
        o[i] = ((a[size_t(i)] * ri) * T(w[i]) + T(e[size_t(int64_t(l) * P + i)]) * T(row_scale)) * T(out_scale);
    }
  }
}

template void ple_proj_norm<float>(const float*, int64_t, int, int, float, const float*, float, DType,
                                   const void*, size_t, const int32_t*, float, float, float*);
template void ple_proj_norm<double>(const double*, int64_t, int, int, float, const float*, float, DType,
                                    const void*, size_t, const int32_t*, float, float, double*);

}  // namespace kiln::ref
