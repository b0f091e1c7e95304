// gemm_n: y[n][m] = sum_k W[m][k] x[n][k] (+ y[n][m]) for N activation columns, weights in GGUF
// block layout (no repack). Decode (N = 1) and small batches (N <= 8 per launch) read every weight
// byte once per launch for all N columns; prefill (large N) goes to a tensor-core path.
//
// Layouts: W row m at data + m * row_bytes(type, K) (GGUF ne[0] = K). Outputs y[n * M + m] (float,
// row-major [N][M] = one row per token). Integer path activations: Q8_1 blocks, column n at
// x + n * (K / 32) (produce them with kernels/quantize_q8_1.cuh), each column in Q8Layout::Blocks
// or, at N <= 2, Q8Layout::Interleaved (kernels/common/blocks.h; same bits out: the layout moves
// bytes, not values). Float path: x[n * K + k] (the layout argument does not apply).
//
// Paths (gemm_n_path picks one from the weight type and N; gemm_n() runs it):
//  - Int8Dp4a (Q8_0, Q4_K, Q6_K; N <= 63, launched in groups of <= 8 columns): integer dot
//    products (__dp4a) of int8 weights x int8 Q8_1 activations per 32-element unit, float
//    combination in the order of kernels/gemm_n_plan.h. Q4_K at N = 3..8 and Q6_K at N = 5..8
//    per launch group take the integer products from block-diagonal int8 MMA tiles
//    (mma.m16n8k32 u8 x s8; Q6_K m16n8k16 s8 x s8 per 16-element half) instead of dp4a; the
//    integers are the same exact sums, so the float order and the contract are too.
//    CONTRACT: bit-exact vs ref::gemm_n_q8_1<float>; N columns equal N separate matvecs bit for
//    bit. Against the exact product (ref::gemm_n_f<double>) the error is bounded by the activation
//    quantization bound stated in reference/gemm_n.h (about 0.57 * amax_b/127 per unit of |w|).
//  - Float (F32, F16, BF16 weights, float activations; N <= 63): fmaf chains per 8-element unit.
//    CONTRACT: bit-exact vs ref::gemm_n_f<float>.
//  - TensorCore (any type, N >= kGemmNTensorCoreMinN): weights dequantized to BF16 row tiles in
//    a caller-provided workspace (BF16 weights are read in place), activations rounded to BF16
//    (once per multi-matrix call), cuBLAS GEMM (FP32 accumulate,
//    FP32 output). CONTRACT: |y - y_double| <= (2^-7 + K * 2^-23) * sum_k |w_k x_k| (two BF16
//    roundings per product plus FP32 accumulation) vs ref::gemm_n_f<double>.
//
// Kernel structure (integer path): a persistent grid (4 CTAs of 4 warps per SM, 3 above N = 4); S =
// gemm_n_split(...) warps share a row (split-K for matrices with few rows), so a CTA holds 4/S
// "slots", and each slot owns a contiguous range of row groups (R = 2 rows per warp for small N, 4
// above and for Q4_K / Q6_K at N = 1: rows_per_warp). A warp streams its chunks (32 units of each of its R
// rows: Q8_0 1088 B, Q4_K 1152 B, Q6_K 1680 B per row) from global into shared memory through a
// per-warp ring of TMA bulk copies (one per row chunk, issued by one lane, completing on the
// stage's mbarrier, L2 evict-first: weights are read once per step; depth from the shared-memory
// plan: 3-6 stages) that runs ahead across row groups, so the pipeline fills once per launch; every
// lane decodes one unit per row from shared memory and applies it to all N activation columns (a
// row's short last chunk -- K = 2560 K-quants: 8 of 32 units -- is decoded with the R rows side by
// side, one unit per lane, where that pays: pack_short_chunks): weights read once from DRAM,
// activations from a per-CTA shared-memory copy (Q4_K at N = 2 with >= 48 KB of weights per CTA,
// up to 16 KB) or from L1/L2. GGUF rows need not be 16-byte aligned (Q8_0 rows are 34*K/32
// bytes): the staging copies whole aligned 16-byte segments and the decode reads at the row's
// byte offset. Each weight type has its own instantiation; a multi-matrix launch that mixes types
// reads the type per matrix.
// Details: kernels/gemm_n.cu (kernel, plan per SM, dispatch), gemm_n_dp4a.cuh (unit decode and
// activation loads), gemm_n_imma.cuh (int8 MMA path).
//
// Requirements (checked on the host before any CUDA call; violations throw kiln::Error):
//  M >= 1, K >= 1, 1 <= N; K a multiple of the format's block (32 for Q8_0, 256 for Q4_K/Q6_K);
//  weight data and activation pointers 16-byte aligned (cudaMalloc/arena allocations are);
//  multi-matrix launches share K and have <= kGemmNMaxMats matrices. Ragged M (any M) works.
//  The integer and float paths never read outside the weight rows; nothing is allocated, no
//  synchronization, so every launch is capturable in a CUDA graph.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common/blocks.h"
#include "kernels/common/dtype.h"

namespace kiln {

// A weight matrix in device memory: rows = M (output features), cols = K (GGUF ne[0]).
struct WeightDesc {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

enum class Epilogue {
  Store,  // y = W x
  Add,    // y = y + W x (fused residual add)
};

constexpr int kGemmNMaxCols = 8;            // columns per integer/float launch
constexpr int kGemmNMaxMats = 4;            // matrices per multi-matrix launch
constexpr int64_t kGemmNTensorCoreMinN = 64;

// One output of a multi-matrix launch: a matrix and where its y goes ([N][rows of that matrix]).
struct GemmNTarget {
  WeightDesc w;
  float* y = nullptr;
};

// ---- integer path (Q8_0 / Q4_K / Q6_K weights x Q8_1 activations) ----
// N may exceed 8: columns are processed in groups of 8 (weights re-read once per group).
// xl: the activation columns' layout (kernels/common/blocks.h); Interleaved only at n <= 2 (the
// decode layout: a warp's activation loads touch 1-2 cache lines instead of 9-18).
void gemm_n_q8_1(const WeightDesc& w, const BlockQ8_1* x, int64_t n, float* y, Epilogue ep, cudaStream_t s,
                 Q8Layout xl = Q8Layout::Blocks);
// Several matrices sharing one input (Q/K/V, gate/up) in one launch; types may differ (Q4_K_M
// mixes Q4_K and Q6_K) but K must be equal. Same bits as separate gemm_n_q8_1 launches.
void gemm_n_q8_1_multi(const GemmNTarget* mats, int count, const BlockQ8_1* x, int64_t n, Epilogue ep,
                       cudaStream_t s, Q8Layout xl = Q8Layout::Blocks);

// ---- float path (F32 / F16 / BF16 weights x float activations) ----
void gemm_n_f(const WeightDesc& w, const float* x, int64_t n, float* y, Epilogue ep, cudaStream_t s);
void gemm_n_f_multi(const GemmNTarget* mats, int count, const float* x, int64_t n, Epilogue ep, cudaStream_t s);

// ---- tensor-core path (large N, any weight type, float activations) ----
// Workspace: BF16 activations (n*K) plus BF16 weight row tiles; any size >= the minimum works
// (larger = fewer, bigger GEMMs). The default size also holds a 32 MiB workspace for cuBLAS
// itself (set on the handle with cublasSetWorkspace on every call, after cublasSetStream; the
// handle keeps pointing into the caller's workspace afterwards). The handle must be bound to no
// other stream concurrently.
size_t gemm_n_tc_workspace_min(const WeightDesc& w, int64_t n);
size_t gemm_n_tc_workspace_default(const WeightDesc& w, int64_t n);
void gemm_n_tc(const WeightDesc& w, const float* x, int64_t n, float* y, Epilogue ep, void* workspace,
               size_t workspace_bytes, cublasHandle_t handle, cudaStream_t s);
// Several matrices sharing one input (Q/K/V, gate/up; K equal): the activations are rounded to
// BF16 once, then each matrix runs as in gemm_n_tc (same bits). The workspace must hold the
// largest matrix's minimum.
void gemm_n_tc_multi(const GemmNTarget* mats, int count, const float* x, int64_t n, Epilogue ep, void* workspace,
                     size_t workspace_bytes, cublasHandle_t handle, cudaStream_t s);

// ---- dispatch by N ----
enum class GemmNPath { Int8Dp4a, Float, TensorCore };
GemmNPath gemm_n_path(DType t, int64_t n);
const char* gemm_n_path_name(GemmNPath p);

// Everything a dispatched call may need. xq is required on the Int8Dp4a path (the caller
// quantizes, often fused into the preceding norm); x on the Float and TensorCore paths;
// handle + workspace on the TensorCore path.
struct GemmNContext {
  cublasHandle_t cublas = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
void gemm_n(const WeightDesc& w, const float* x, const BlockQ8_1* xq, int64_t n, float* y, Epilogue ep,
            const GemmNContext& ctx, cudaStream_t s, Q8Layout xl = Q8Layout::Blocks);

}  // namespace kiln
