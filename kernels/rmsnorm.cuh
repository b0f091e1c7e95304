// RMSNorm family (plain, fused residual add, fused post-norm + residual add, layer_output_scale
// folded into the add, optional Q8_1 outputs for the next matvec) in one launch per call.
//
// Contract: bit-exact vs ref::rmsnorm_fused<float> / ref::rmsnorm<float> (reference/rmsnorm.h),
// which states the reduction order: one 256-thread block (W = 8 warps) per row, lane j owns
// chunks of 4 elements j, j+256, ...; fmaf accumulation; warp xor-butterfly; warp sums combined by
// the halving tree. ref::rmsnorm_fused<double> bounds the float result (tests/rmsnorm_test.cpp).
// Limits: 1 <= n <= 16384 (values stay in registers); Q8_1 outputs need n % 32 == 0.
//
// This header also carries the device helpers the other norm-like kernels share (embed,
// head_norm_dual, ple_proj_norm, gelu_tanh_mul_strided): compiled only under nvcc.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/math.h"
#include "kernels/quantize_q8_1.cuh"

namespace kiln {

// Per row r (pointers are row 0 of [rows][n] float arrays; null = absent):
//   y' = norm_y ? rmsnorm(y) * (w_y ? w_y : 1) : y
//   x_new = y ? (x + y') * scale : x * scale;   x := x_new when y or scale != 1
//   out = rmsnorm(x_new) * (w ? w : 1);  out_q = Q8_1(out);  x_q = Q8_1(x_new)
// Gemma 4 uses: post-attn (y = attn proj, norm_y, w_y = attn_post_norm, w = ffn_norm, out_q);
// post-FFN (y = ffn down, norm_y, w_y = ffn_post_norm, x_q for per_layer_inp_gate); end of layer
// (y = per_layer_proj out, norm_y, w_y = per_layer_post_norm, scale = layer_output_scale,
// w = next attn_norm / output_norm, out_q / out). Qwen3: plain add (norm_y = false).
// w and w_y are read before the kernel waits for its predecessor (kernels/common/pdl.cuh): like all
// weights, they must be written before the launches that use them are issued, and synchronized.
struct RmsnormOp {
  int64_t rows = 0, n = 0;
  float eps = 1e-6f;
  float* x = nullptr;  // required
  const float* y = nullptr;
  bool norm_y = false;
  const float* w_y = nullptr;
  float scale = 1.f;
  const float* w = nullptr;
  float* out = nullptr;
  BlockQ8_1* out_q = nullptr;
  BlockQ8_1* x_q = nullptr;
  Q8Layout q_layout = Q8Layout::Blocks;  // of out_q and x_q (row r's column at + r * n / 32)
};

void rmsnorm(const RmsnormOp& op, cudaStream_t stream);

// Plain: out = rmsnorm(x) * w  (x untouched).
void rmsnorm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* out, cudaStream_t stream);

// An empty kernel: the launch-overhead floor the T=1 benchmarks print next to their times.
void empty_kernel(cudaStream_t stream);

#if defined(__CUDACC__)
namespace normdev {

constexpr int kRowThreads = 256;  // W = 8 (reference/rmsnorm.h: kRmsnormWarps)

__device__ __forceinline__ float4 f4(float a) { return make_float4(a, a, a, a); }

// Chunk c (elements 4c..4c+3) of a row of n floats; zeros past n. VEC: n % 4 == 0 and p 16B-aligned.
template <bool VEC>
__device__ __forceinline__ float4 load4(const float* __restrict__ p, int64_t c, int64_t n) {
  if (VEC) return reinterpret_cast<const float4*>(p)[c];
  const int64_t i = 4 * c;
  float4 v = f4(0.f);
  if (i < n) v.x = p[i];
  if (i + 1 < n) v.y = p[i + 1];
  if (i + 2 < n) v.z = p[i + 2];
  if (i + 3 < n) v.w = p[i + 3];
  return v;
}
template <bool VEC>
__device__ __forceinline__ void store4(float* __restrict__ p, int64_t c, int64_t n, float4 v) {
  if (VEC) {
    reinterpret_cast<float4*>(p)[c] = v;
    return;
  }
  const int64_t i = 4 * c;
  if (i < n) p[i] = v.x;
  if (i + 1 < n) p[i + 1] = v.y;
  if (i + 2 < n) p[i + 2] = v.z;
  if (i + 3 < n) p[i + 3] = v.w;
}

__device__ __forceinline__ float sumsq4(float4 v, float acc) {
  acc = fmaf(v.x, v.x, acc);
  acc = fmaf(v.y, v.y, acc);
  acc = fmaf(v.z, v.z, acc);
  return fmaf(v.w, v.w, acc);
}
__device__ __forceinline__ float4 mul4(float4 a, float4 b) { return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w); }
__device__ __forceinline__ float4 mul4s(float4 a, float s) { return make_float4(a.x * s, a.y * s, a.z * s, a.w * s); }
__device__ __forceinline__ float4 add4(float4 a, float4 b) { return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Canonical W-warp sum (reference/rmsnorm.h); every thread of the block gets the result.
// red: W floats of shared memory; all threads of the block must call it.
template <int W>
__device__ __forceinline__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  if (W == 1) return v;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = lane < W ? red[lane] : 0.f;
  for (int o = W / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return __shfl_sync(0xffffffffu, s, 0);  // lanes >= W summed zeros: broadcast lane 0's tree value
}

using q8dev::q8_1_group8;  // kernels/quantize_q8_1.cuh

// Thread t's chunks t + STRIDE * k of a weight vector (null: zeros; STRIDE: a row block's 256
// threads, or head_norm_dual's 32 lanes over one head), loaded ahead of use: the norm kernels
// read their weights before pdl_wait(), while the previous kernel still runs (weights are never
// written by a kernel), so the load is off the critical path.
template <int C, bool VEC, int STRIDE = kRowThreads>
__device__ __forceinline__ void load_chunks(const float* __restrict__ w, int64_t n, float4 (&wv)[C],
                                            int t = int(threadIdx.x)) {
  const int64_t nc = (n + 3) / 4;
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = t + int64_t(STRIDE) * k;
    wv[k] = w && c < nc ? load4<VEC>(w, c, n) : f4(0.f);
  }
}
// Outputs of a row held in registers (v[k] = chunk tid + 256k of x_new): x_q, then the norm
// (canonical W = 8 order) into out / out_q, times the weight chunks wv (load_chunks) when has_w.
// x_q / out_q: the row's Q8_1 columns (n / 32 blocks each) in layout ql.
// All threads of the 256-thread block must call it.
template <int C, bool VEC>
__device__ __forceinline__ void finish_row(const float4 (&v)[C], int64_t n, float eps, bool has_w,
                                           const float4 (&wv)[C], float* __restrict__ out,
                                           BlockQ8_1* __restrict__ out_q, BlockQ8_1* __restrict__ x_q, Q8Layout ql,
                                           float* red) {
  const int tid = threadIdx.x;
  const int64_t nc = (n + 3) / 4;
  const q8dev::Q8Col xq{x_q, n / QK8_1, ql}, oq{out_q, n / QK8_1, ql};
  if (x_q) {
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const int64_t c = tid + int64_t(kRowThreads) * k;
      q8_1_group8(v[k], c < nc, xq, c / 8, int(c % 8));
    }
  }
  if (!out && !out_q) return;
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < C; ++k) acc = sumsq4(v[k], acc);  // chunks past n are zeros: exact no-ops
  const float ss = block_sum<kRowThreads / 32>(acc, red);
  const float ri = krsqrt(ss / float(n) + eps);
#pragma unroll
  for (int k = 0; k < C; ++k) {
    const int64_t c = tid + int64_t(kRowThreads) * k;
    float4 o = mul4s(v[k], ri);
    if (has_w && c < nc) o = mul4(o, wv[k]);
    if (out && c < nc) store4<VEC>(out, c, n, o);
    if (out_q) q8_1_group8(o, c < nc, oq, c / 8, int(c % 8));
  }
}

}  // namespace normdev
#endif  // __CUDACC__

}  // namespace kiln
