#include "reference/gemm_n.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/common/error.h"
#include "kernels/gemm_n_plan.h"
#include "models/quant.h"

namespace kiln::ref {

namespace {

namespace plan = gemm_n_plan;

void check_shape(const char* fn, DType wt, const void* w, int64_t M, int64_t K, const void* x, int64_t N,
                 const void* y) {
  KILN_REQUIRE(M > 0 && K > 0 && N > 0, fn, ": empty shape M=", M, " K=", K, " N=", N);
  const int be = dtype_traits(wt).block_elems;
  KILN_REQUIRE(K % be == 0, fn, ": K=", K, " is not a multiple of the ", dtype_name(wt), " block size ", be);
  KILN_REQUIRE(K % QK8_1 == 0 || !plan::is_quant(wt), fn, ": K=", K, " is not a multiple of 32");
  KILN_REQUIRE(w && x && y, fn, ": null pointer");
}

// Butterfly over 32 lanes then ordered sum over warps (gemm_n_plan.h steps 4).
float fold(std::vector<float>& acc, int S) {
  float t = 0.f;
  for (int w = 0; w < S; ++w) {
    float* a = acc.data() + w * plan::kLanes;
    for (int o = 16; o > 0; o >>= 1) {
      float b[plan::kLanes];
      for (int l = 0; l < plan::kLanes; ++l) b[l] = a[l] + a[l ^ o];
      memcpy(a, b, sizeof b);
    }
    t = w == 0 ? a[0] : t + a[0];
  }
  return t;
}

// Integer data of one 32-element slice of a quantized row (gemm_n_plan.h step 1).
struct Slice {
  int q[32];
  float d = 0, dmin = 0;  // Q8_0: d_w; Q4_K: d, dmin; Q6_K: d
  int sc = 0, mn = 0;     // Q4_K: scale, min; Q6_K: scales of the two halves
};

Slice slice_data(DType wt, const uint8_t* row, int64_t u) {
  Slice r;
  if (wt == DType::Q8_0) {
    BlockQ8_0 b;
    memcpy(&b, row + u * sizeof b, sizeof b);
    r.d = f16_to_f32(b.d);
    for (int i = 0; i < 32; ++i) r.q[i] = b.qs[i];
  } else if (wt == DType::Q4_K) {
    BlockQ4K b;
    memcpy(&b, row + (u / 8) * sizeof b, sizeof b);
    const int j = int(u % 8);
    r.d = f16_to_f32(b.d);
    r.dmin = f16_to_f32(b.dmin);
    q4k_scale_min(b.scales, j, r.sc, r.mn);
    for (int i = 0; i < 32; ++i) r.q[i] = q4k_quant(b, 32 * j + i);
  } else {
    BlockQ6K b;
    memcpy(&b, row + (u / 8) * sizeof b, sizeof b);
    const int p = int(u % 8);
    r.d = f16_to_f32(b.d);
    r.sc = b.scales[2 * p];
    r.mn = b.scales[2 * p + 1];
    for (int i = 0; i < 32; ++i) r.q[i] = q6k_quant(b, 32 * p + i);
  }
  return r;
}

template <class T>
T slice_value(DType wt, const Slice& u, const BlockQ8_1& xb) {
  int isum = 0, isum_b = 0;
  for (int i = 0; i < 16; ++i) isum += u.q[i] * xb.qs[i];
  for (int i = 16; i < 32; ++i) isum_b += u.q[i] * xb.qs[i];
  const float dx = f16_to_f32(xb.d), sx = f16_to_f32(xb.s);
  if (std::is_same<T, float>::value) {
    switch (wt) {
      case DType::Q8_0: return T(plan::unit_q8_0(u.d, dx, isum + isum_b));
      case DType::Q4_K: return T(plan::unit_q4_k(u.d, u.dmin, u.sc, u.mn, dx, sx, isum + isum_b));
      default: return T(plan::unit_q6_k(u.d, dx, u.sc * isum + u.mn * isum_b));
    }
  }
  const double ddx = dx, dsx = sx;
  switch (wt) {
    case DType::Q8_0: return T(double(u.d) * ddx * double(isum + isum_b));
    case DType::Q4_K:
      return T(double(u.d) * u.sc * ddx * double(isum + isum_b) - double(u.dmin) * u.mn * dsx);
    default: return T(double(u.d) * ddx * double(int64_t(u.sc) * isum + int64_t(u.mn) * isum_b));
  }
}

}  // namespace

template <class T>
void gemm_n_q8_1(DType wt, const void* w, int64_t M, int64_t K, const BlockQ8_1* x, int64_t N, T* y) {
  check_shape("ref::gemm_n_q8_1", wt, w, M, K, x, N, y);
  KILN_REQUIRE(plan::is_quant(wt), "ref::gemm_n_q8_1: weight type ", dtype_name(wt),
               " is not Q8_0/Q4_K/Q6_K (float weights take float activations: use gemm_n_f)");
  const int64_t slices = K / plan::kSlice, U = plan::units_per_row(wt, K);
  const int spu = plan::slices_per_unit(wt);
  const size_t rb = row_bytes(wt, K);
  const int S = plan::gemm_n_split(wt, M, K);
  std::vector<Slice> sl(static_cast<size_t>(slices));  // indexed by slice
  std::vector<float> acc(static_cast<size_t>(S * plan::kLanes));
  for (int64_t m = 0; m < M; ++m) {
    const auto* row = static_cast<const uint8_t*>(w) + size_t(m) * rb;
    for (int64_t i = 0; i < slices; ++i) sl[size_t(i)] = slice_data(wt, row, i);
    for (int64_t n = 0; n < N; ++n) {
      const BlockQ8_1* xn = x + n * slices;
      if (std::is_same<T, float>::value) {
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t u = 0; u < U; ++u) {
          const int64_t c = u / plan::kLanes;
          float& a = acc[size_t((c % S) * plan::kLanes + u % plan::kLanes)];
          for (int o = 0; o < spu; ++o) {
            const int64_t i = plan::slice_of(wt, u, o);
            a = a + float(slice_value<float>(wt, sl[size_t(i)], xn[i]));
          }
        }
        y[n * M + m] = T(fold(acc, S));
      } else {
        T t = 0;
        for (int64_t i = 0; i < slices; ++i) t += slice_value<T>(wt, sl[size_t(i)], xn[i]);
        y[n * M + m] = t;
      }
    }
  }
}

template <class T>
void gemm_n_f(DType wt, const void* w, int64_t M, int64_t K, const float* x, int64_t N, T* y) {
  check_shape("ref::gemm_n_f", wt, w, M, K, x, N, y);
  const size_t rb = row_bytes(wt, K);
  std::vector<float> wr(static_cast<size_t>(K), 0.f);
  const bool mirror = std::is_same<T, float>::value && plan::is_float(wt);
  const int S = plan::gemm_n_split(wt, M, K);
  std::vector<float> acc(static_cast<size_t>(S * plan::kLanes));
  for (int64_t m = 0; m < M; ++m) {
    decode_row(wt, static_cast<const uint8_t*>(w) + size_t(m) * rb, wr.data(), K);
    for (int64_t n = 0; n < N; ++n) {
      const float* xn = x + n * K;
      if (mirror) {
        std::fill(acc.begin(), acc.end(), 0.f);
        const int64_t U = plan::units_per_row(wt, K);
        for (int64_t u = 0; u < U; ++u) {
          const int64_t c = u / plan::kLanes;
          float& a = acc[size_t((c % S) * plan::kLanes + u % plan::kLanes)];
          for (int64_t k = u * plan::kFloatUnit; k < std::min(K, (u + 1) * plan::kFloatUnit); ++k)
            a = std::fmaf(wr[size_t(k)], xn[k], a);
        }
        y[n * M + m] = T(fold(acc, S));
      } else {
        T t = 0;
        for (int64_t k = 0; k < K; ++k) t += T(wr[size_t(k)]) * T(xn[k]);
        y[n * M + m] = t;
      }
    }
  }
}

template void gemm_n_q8_1<float>(DType, const void*, int64_t, int64_t, const BlockQ8_1*, int64_t, float*);
template void gemm_n_q8_1<double>(DType, const void*, int64_t, int64_t, const BlockQ8_1*, int64_t, double*);
template void gemm_n_f<float>(DType, const void*, int64_t, int64_t, const float*, int64_t, float*);
template void gemm_n_f<double>(DType, const void*, int64_t, int64_t, const float*, int64_t, double*);

}  // namespace kiln::ref
