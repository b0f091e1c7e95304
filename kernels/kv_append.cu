// KV-cache append: K and V of T new tokens, float -> FP16 (RNE), row pos[t] % cap.
#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"

namespace kiln {
namespace {

// One thread per 4 consecutive elements of one token (hd % 4 == 0 so a quad never straddles).
__global__ void kv_append_kernel(const float* __restrict__ k_new, const float* __restrict__ v_new,
                                 int64_t src_stride, int T, const int32_t* __restrict__ pos,
                                 uint16_t* __restrict__ kc, uint16_t* __restrict__ vc, int64_t cap,
                                 int row_elems) {
  pdl_trigger();
  pdl_wait();
  const int quads = row_elems / 4;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= int64_t(T) * quads) return;
  const int t = int(idx / quads);
  const int e = int(idx % quads) * 4;
  const int32_t p = pos[t];
  if (p < 0) return;
  const int64_t row = int64_t(p) % cap;
  const float4 kv = *reinterpret_cast<const float4*>(k_new + t * src_stride + e);
  const float4 vv = *reinterpret_cast<const float4*>(v_new + t * src_stride + e);
  kvdev::store_half4(kc + row * row_elems + e, kv);
  kvdev::store_half4(vc + row * row_elems + e, vv);
}

}  // namespace

void kv_append(const float* k_new, const float* v_new, int64_t src_stride, int T,
               const int32_t* pos, uint16_t* k_cache, uint16_t* v_cache, int64_t cap,
               int n_head_kv, int hd, cudaStream_t s) {
  const int row_elems = n_head_kv * hd;
  if (src_stride == 0) src_stride = row_elems;
  KILN_REQUIRE(T >= 0 && n_head_kv > 0 && hd > 0 && hd % 4 == 0 && cap > 0,
               "kv_append: bad shape T=", T, " n_head_kv=", n_head_kv, " hd=", hd, " cap=", cap);
  KILN_REQUIRE(src_stride >= row_elems && src_stride % 4 == 0, "kv_append: src_stride ",
               src_stride, " must be >= ", row_elems, " and a multiple of 4");
  KILN_REQUIRE(((reinterpret_cast<uintptr_t>(k_new) | reinterpret_cast<uintptr_t>(v_new)) & 15) == 0 &&
                   ((reinterpret_cast<uintptr_t>(k_cache) | reinterpret_cast<uintptr_t>(v_cache)) & 7) == 0,
               "kv_append: k_new/v_new need 16-byte, the caches 8-byte alignment");
  if (T == 0) return;
  const int64_t n = int64_t(T) * (row_elems / 4);
  const int block = 256;
  launch_pdl(kv_append_kernel, dim3(unsigned((n + block - 1) / block)), dim3(block), 0, s, k_new, v_new,
             src_stride, T, pos, k_cache, v_cache, cap, row_elems);
}

}  // namespace kiln
