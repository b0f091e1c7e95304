// Device ceilings measured in-process: every benchmark and the runner report their bandwidth as
// a percentage of these, measured in the same run (DESIGN.md §6).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/common/device.cuh"

namespace kiln {

struct Ceilings {
  size_t buffer_bytes = 0;
  double copy_gbs = 0;       // device-to-device copy, bytes read + written per second
  double read_gbs = 0;       // read-only (sum over float4 loads)
  double bf16_tflops = 0;    // cuBLAS BF16 GEMM (FP32 accumulate), 8192^3
};

// Best-of-`iters` rates. `bytes` is the size of each buffer (>= 1 GiB to defeat the 50 MB L2).
double measure_copy_gbs(size_t bytes, int iters, cudaStream_t s);
double measure_read_gbs(size_t bytes, int iters, cudaStream_t s);
double measure_bf16_gemm_tflops(int m, int n, int k, int iters, cudaStream_t s);
Ceilings measure_ceilings(size_t bytes, cudaStream_t s, bool with_gemm = true);

// Read-only kernel: out[block] = sum of the block's float4 slice (for the probe and its test).
// out must hold at least read_sum_blocks() floats.
void read_sum(View<const float> x, View<float> out, cudaStream_t s);
int read_sum_blocks();

}  // namespace kiln
