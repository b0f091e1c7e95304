#include "kernels/quantize_q8_1.cuh"

#include <algorithm>

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/error.h"

namespace kiln {

namespace {

__global__ void quantize_q8_1_kernel(const float* __restrict__ x, int64_t nblocks, int64_t kb, int vec,
                                     Q8Layout layout, BlockQ8_1* __restrict__ out) {
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
    // Blocks: one column of all rows (block b at out + b); Interleaved: row b / kb's own column.
    const int64_t r = layout == Q8Layout::Blocks ? 0 : b / kb;
    const q8dev::Q8Col col{out + r * kb, layout == Q8Layout::Blocks ? nblocks : kb, layout};
    q8dev::q8_1_group8(make_float4(v[0], v[1], v[2], v[3]), valid, col, b - r * kb, sub);
  }
}

}  // namespace

void quantize_q8_1(const float* x, int64_t rows, int64_t k, BlockQ8_1* out, cudaStream_t s, Q8Layout layout) {
  KILN_REQUIRE(rows >= 1 && k >= 1, "quantize_q8_1: empty shape rows=", rows, " K=", k);
  KILN_REQUIRE(k % QK8_1 == 0, "quantize_q8_1: K=", k, " is not a multiple of ", QK8_1);
  KILN_REQUIRE(x != nullptr && out != nullptr, "quantize_q8_1: null pointer");
  KILN_REQUIRE((reinterpret_cast<uintptr_t>(out) & 3) == 0, "quantize_q8_1: output must be 4-byte aligned");
  KILN_REQUIRE(q8_layout_valid(layout), "quantize_q8_1: unknown Q8_1 layout ", int(layout));
  const int64_t nblocks = rows * (k / QK8_1);
  const int vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  constexpr int kThreads = 256;  // 32 blocks per CTA
  const int64_t ctas = std::min<int64_t>((nblocks + 31) / 32, 132 * 16);
  launch_pdl(quantize_q8_1_kernel, dim3(static_cast<unsigned>(ctas)), dim3(kThreads), 0, s, x, nblocks, k / QK8_1, vec, layout,
             out);
  KILN_CUDA_CHECK_LAUNCH();
}

}  // namespace kiln
