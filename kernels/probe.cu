#include "kernels/probe.cuh"

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>

namespace kiln {

namespace {
constexpr int kReadBlocks = 132 * 8;  // a few waves on any Hopper part
constexpr int kReadThreads = 512;

__global__ void read_sum_kernel(const float4* __restrict__ x, size_t n4, const float* __restrict__ tail,
                                int n_tail, float* __restrict__ out) {
  // Four independent 16-byte loads per thread per step keep enough bytes in flight for HBM.
  float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  for (; i + 3 * stride < n4; i += 4 * stride) {
    const float4 v0 = __ldg(x + i), v1 = __ldg(x + i + stride), v2 = __ldg(x + i + 2 * stride),
                 v3 = __ldg(x + i + 3 * stride);
    a0 += (v0.x + v0.y) + (v0.z + v0.w);
    a1 += (v1.x + v1.y) + (v1.z + v1.w);
    a2 += (v2.x + v2.y) + (v2.z + v2.w);
    a3 += (v3.x + v3.y) + (v3.z + v3.w);
  }
  for (; i < n4; i += stride) {
    const float4 v = __ldg(x + i);
    a0 += (v.x + v.y) + (v.z + v.w);
  }
  float acc = (a0 + a1) + (a2 + a3);
  if (blockIdx.x == 0 && int(threadIdx.x) < n_tail) acc += tail[threadIdx.x];
  __shared__ float red[kReadThreads / 32];
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = int(threadIdx.x) < kReadThreads / 32 ? red[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
  }
}

__global__ void fill_kernel(float* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] = float(i % 1024) * (1.f / 1024.f);
}

template <class F>
float best_ms(int iters, cudaStream_t s, F&& f) {
  Event a, b;
  f();  // warm-up
  float best = 1e30f;
  for (int i = 0; i < iters; ++i) {
    a.record(s);
    f();
    b.record(s);
    b.sync();
    best = std::min(best, b.ms_since(a));
  }
  return best;
}
}  // namespace

int read_sum_blocks() { return kReadBlocks; }

void read_sum(View<const float> x, View<float> out, cudaStream_t s) {
  KILN_REQUIRE(out.count >= size_t(kReadBlocks), "read_sum: output needs ", kReadBlocks, " floats");
  const size_t n4 = x.count / 4;
  const int n_tail = int(x.count - n4 * 4);
  read_sum_kernel<<<kReadBlocks, kReadThreads, 0, s>>>(reinterpret_cast<const float4*>(x.ptr), n4,
                                                        x.ptr + n4 * 4, n_tail, out.ptr);
  KILN_CUDA_CHECK_LAUNCH();
}

double measure_copy_gbs(size_t bytes, int iters, cudaStream_t s) {
  DeviceBuffer<uint8_t> a(bytes), b(bytes);
  KILN_CUDA_CHECK(cudaMemsetAsync(a.data(), 1, bytes, s));
  const float ms = best_ms(iters, s, [&] {
    KILN_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s));
  });
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

double measure_read_gbs(size_t bytes, int iters, cudaStream_t s) {
  const size_t n = bytes / sizeof(float);
  DeviceBuffer<float> x(n);
  DeviceBuffer<float> out{size_t(kReadBlocks)};
  fill_kernel<<<1024, 256, 0, s>>>(x.data(), n);
  KILN_CUDA_CHECK_LAUNCH();
  const float ms = best_ms(iters, s, [&] { read_sum(x, out, s); });
  return double(n * sizeof(float)) / (ms * 1e-3) / 1e9;
}

double measure_bf16_gemm_tflops(int m, int n, int k, int iters, cudaStream_t s) {
  DeviceBuffer<__nv_bfloat16> A(size_t(m) * k), B(size_t(k) * n), C(size_t(m) * n);
  KILN_CUDA_CHECK(cudaMemsetAsync(A.data(), 0x3c, A.bytes(), s));  // ~1.2 in bf16: finite, non-zero
  KILN_CUDA_CHECK(cudaMemsetAsync(B.data(), 0x3c, B.bytes(), s));
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasCreate failed");
  cublasSetStream(h, s);
  const float alpha = 1.f, beta = 0.f;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  const float ms = best_ms(iters, s, [&] {
    st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A.data(), CUDA_R_16BF, k, B.data(),
                      CUDA_R_16BF, k, &beta, C.data(), CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  });
  cublasDestroy(h);
  if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLAS: cublasGemmEx failed with status ", int(st));
  return 2.0 * m * double(n) * k / (ms * 1e-3) / 1e12;
}

Ceilings measure_ceilings(size_t bytes, cudaStream_t s, bool with_gemm) {
  Ceilings c;
  c.buffer_bytes = bytes;
  c.copy_gbs = measure_copy_gbs(bytes, 10, s);
  c.read_gbs = measure_read_gbs(bytes, 10, s);
  if (with_gemm) c.bf16_tflops = measure_bf16_gemm_tflops(8192, 8192, 8192, 10, s);
  return c;
}

}  // namespace kiln
