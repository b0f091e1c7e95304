#include "kernels/quantize_q8_1.cuh"

#include <algorithm>

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/error.h"

namespace kiln {

namespace {

__global__ void quantize_q8_1_kernel(const float* __restrict__ x, int64_t nblocks, int vec,
                                     BlockQ8_1* __restrict__ out) {
  pdl_trigger();
  pdl_wait();  // every input may come from the previous kernel
  const int sub = threadIdx.x & 7;  // 8 threads per block, 4 elements each
  const int64_t stride = int64_t(gridDim.x) * (blockDim.x / 8);
  for (int64_t b = blockIdx.x * int64_t(blockDim.x / 8) + threadIdx.x / 8; b - (threadIdx.x & 31) / 8 < nblocks;
       b += stride) {
    const bool valid = b < nblocks;  // whole warps stay in the loop for the shuffles
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    if (valid) {
      const float* p = x + b * 32 + 4 * sub;
      if (vec) {
        const float4 f = __ldg(reinterpret_cast<const float4*>(p));
        v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
      } else {
        for (int i = 0; i < 4; ++i) v[i] = __ldg(p + i);
      }
    }
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    int q[4];
    int sum = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      q[i] = int(roundf(v[i] * id));
      sum += q[i];
    }
#pragma unroll
    for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (valid) {
      uint32_t* ob = reinterpret_cast<uint32_t*>(out + b);
      ob[1 + sub] = (uint32_t(q[0]) & 0xffu) | ((uint32_t(q[1]) & 0xffu) << 8) | ((uint32_t(q[2]) & 0xffu) << 16) |
                    (uint32_t(q[3]) << 24);
      if (sub == 0) ob[0] = uint32_t(f32_to_f16(d)) | (uint32_t(f32_to_f16(d * float(sum))) << 16);
    }
  }
}

}  // namespace

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out, cudaStream_t s) {
  KILN_REQUIRE(rows >= 1 && k >= 1, "quantize_q8_1: empty shape rows=", rows, " K=", k);
  KILN_REQUIRE(k % QK8_1 == 0, "quantize_q8_1: K=", k, " is not a multiple of ", QK8_1);
  KILN_REQUIRE(x != nullptr && out != nullptr, "quantize_q8_1: null pointer");
  KILN_REQUIRE((reinterpret_cast<uintptr_t>(out) & 3) == 0, "quantize_q8_1: output must be 4-byte aligned");
  const int64_t nblocks = rows * (k / QK8_1);
  const int vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  constexpr int kThreads = 256;  // 32 blocks per CTA
  const int64_t ctas = std::min<int64_t>((nblocks + 31) / 32, 132 * 16);
  launch_pdl(quantize_q8_1_kernel, dim3(static_cast<unsigned>(ctas)), dim3(kThreads), 0, s, x, nblocks, vec, out);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln
