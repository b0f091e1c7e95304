// gemm_n tensor-core path (large N): weights dequantized to BF16 row tiles in the caller's
// workspace (BF16 weights are used in place), activations rounded to BF16, cuBLAS GEMM with FP32
// accumulation and FP32 output.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <nvtx3/nvToolsExtMemCudaRt.h>

#include <algorithm>

#include "kernels/common/blocks.h"
#include "kernels/common/device.cuh"
#include "kernels/common/error.h"
#include "kernels/gemm_n.cuh"
#include "kernels/gemm_n_plan.h"

namespace kiln {

namespace {

namespace plan = gemm_n_plan;

constexpr size_t kAlign = 256;
// Default BF16 weight tile: 128 MiB holds every trunk matrix of the presets in one tile (Qwen3-8B's
// gate/up and down are 96 MiB in BF16), so each is one dequantization and one GEMM; at 64 MiB the
// down projection (K = 12288) took two GEMMs of 2730 and 1366 rows.
constexpr size_t kDefaultTileBytes = size_t(128) << 20;
// cuBLAS's own workspace, carved from the caller's when it has room (see gemm_n_tc): 32 MiB is
// the size cuBLAS documents for Hopper. (An ncu profile of an earlier tree, on cuBLAS's default
// pool, found sm_80 split-K kernels chosen for prefill GEMMs; whether the larger workspace changes
// that choice has not been measured on its own.) cublasSetStream resets the workspace to the
// default pool, so it is set again after every cublasSetStream.
constexpr size_t kCublasWsBytes = size_t(32) << 20;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

__device__ __forceinline__ uint16_t to_bf16(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, uint16_t* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = to_bf16(x[i]);
}

// Element k of a float-typed row (F32 / F16 / BF16) as float (exact).
__device__ __forceinline__ float decode_elem(DType t, const uint8_t* row, int64_t k) {
  switch (t) {
    case DType::F32: return reinterpret_cast<const float*>(row)[k];
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    default: return 0.f;  // quantized types: decode8
  }
}

int grid_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 132 * 16)); }

// ---- float weights (F32 / F16 / BF16, any K): one thread per 32-element slice of a row, 64 bytes
// of output in four 16-byte stores when K % 32 == 0 (VEC), element stores otherwise.
template <DType T, bool VEC>
__global__ void convert_bf16_kernel(const uint8_t* __restrict__ w, int64_t row_bytes, int64_t K, int64_t m0,
                                    int64_t rows, uint16_t* __restrict__ out) {
  const int64_t spr = (K + 31) / 32;  // slices per row
  const int64_t total = rows * spr;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / spr, k0 = (i - r * spr) * 32;
    const uint8_t* row = w + (m0 + r) * row_bytes;
    uint16_t* dst = out + r * K + k0;
    if (VEC) {
      uint32_t p[16];
#pragma unroll
      for (int e = 0; e < 32; e += 2)
        p[e / 2] = uint32_t(to_bf16(decode_elem(T, row, k0 + e))) |
                   (uint32_t(to_bf16(decode_elem(T, row, k0 + e + 1))) << 16);
      uint4* d4 = reinterpret_cast<uint4*>(dst);  // (r * K + k0) * 2 bytes: a multiple of 64
#pragma unroll
      for (int j = 0; j < 4; ++j) d4[j] = make_uint4(p[4 * j], p[4 * j + 1], p[4 * j + 2], p[4 * j + 3]);
    } else {
      const int n = int(K - k0 < 32 ? K - k0 : 32);
      for (int e = 0; e < n; ++e) dst[e] = to_bf16(decode_elem(T, row, k0 + e));
    }
  }
}

// ---- quantized weights (Q8_0 / Q4_K / Q6_K): GGUF rows are packed, so rows [m0, m0 + rows) are
// one contiguous run of blocks [gb0, gb1) and the tile is those blocks' elements in order. A warp
// takes the blocks [32 j, 32 j + 32) of the matrix (their bytes start 16-byte aligned: 32 blocks
// are 1088 / 4608 / 6720 bytes), copies the ones inside the tile into shared memory with
// coalesced 16-byte loads (nothing past the matrix end is read), then each lane decodes 8
// consecutive elements per step and writes them as one 16-byte store (a warp store is 512
// contiguous bytes). The element values are computed as decode_row computes them
// (kernels/common/blocks.h), then rounded to BF16 (tests: TensorCorePathWithinTolerance). (One thread per
// element with a 64-bit division, a type switch and byte loads from global memory ran at ~15 %
// of copy bandwidth: 55 % of a Qwen3 pp512 prefill under ncu on an H200.)
constexpr int kDqWarps = 4;

template <DType T>
struct QTraits;
template <>
struct QTraits<DType::Q8_0> { static constexpr int bb = 34, be = 32; };
template <>
struct QTraits<DType::Q4_K> { static constexpr int bb = 144, be = 256; };
template <>
struct QTraits<DType::Q6_K> { static constexpr int bb = 210, be = 256; };

// Elements e..e+7 (e % 8 == 0) of one block held in shared memory, as BF16 pairs.
template <DType T>
__device__ __forceinline__ void decode8(const uint8_t* b, int e, uint32_t (&o)[4]) {
  float v[8];
  if constexpr (T == DType::Q8_0) {
    const float d = f16_to_f32(uint16_t(b[0] | (b[1] << 8)));
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = d * float(int8_t(b[2 + e + i]));
  } else if constexpr (T == DType::Q4_K) {
    const BlockQ4K& q = *reinterpret_cast<const BlockQ4K*>(b);
    int sc, mn;
    q4k_scale_min(q.scales, e / 32, sc, mn);
    const float ds = f16_to_f32(q.d) * float(sc), dm = f16_to_f32(q.dmin) * float(mn);
    const uint2 w = *reinterpret_cast<const uint2*>(q.qs + 32 * (e / 64) + (e % 32));  // 8-byte aligned
    const int shift = (e % 64) < 32 ? 0 : 4;
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = ds * float(((i < 4 ? w.x : w.y) >> (8 * (i & 3) + shift)) & 0x0f) - dm;
  } else {  // the 8 elements share one 16-element scale (e % 8 == 0)
    const BlockQ6K& q = *reinterpret_cast<const BlockQ6K*>(b);  // 2-byte aligned: 210 * block
    const float ds = f16_to_f32(q.d) * float(q.scales[e / 16]);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = ds * float(q6k_quant(q, e + i));
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) o[i] = uint32_t(to_bf16(v[2 * i])) | (uint32_t(to_bf16(v[2 * i + 1])) << 16);
}

template <DType T>
__global__ void __launch_bounds__(kDqWarps * 32)
    dequant_bf16_kernel(const uint8_t* __restrict__ w, int64_t matrix_bytes, int64_t gb0, int64_t gb1,
                        uint16_t* __restrict__ out) {
  constexpr int bb = QTraits<T>::bb, be = QTraits<T>::be;
  constexpr int kChunk = 32 * bb;  // a multiple of 16
  __shared__ __align__(16) uint8_t stage[kDqWarps][kChunk];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* sm = stage[warp];
  const int64_t j_end = (gb1 + 31) / 32;
  for (int64_t j = gb0 / 32 + blockIdx.x * int64_t(kDqWarps) + warp; j < j_end; j += int64_t(gridDim.x) * kDqWarps) {
    const int64_t b_lo = j * 32 > gb0 ? j * 32 : gb0, b_hi = j * 32 + 32 < gb1 ? j * 32 + 32 : gb1;
    const int64_t c0 = j * 32 * bb;  // chunk start (16-byte aligned)
    const int64_t lo = b_lo * bb, hi = b_hi * bb;
    __syncwarp();  // the previous chunk's decode is done with the stage
    for (int64_t seg = (lo & ~int64_t(15)) + 16 * lane; seg < hi; seg += 16 * 32) {
      uint8_t* dst = sm + (seg - c0);
      if (seg + 16 <= matrix_bytes) {
        *reinterpret_cast<uint4*>(dst) = __ldg(reinterpret_cast<const uint4*>(w + seg));
      } else {  // the matrix's last, partial segment
        for (int i = 0; seg + i < matrix_bytes; ++i) dst[i] = w[seg + i];
      }
    }
    __syncwarp();
#pragma unroll 4
    for (int st = 0; st < be / 8; ++st) {
      const int eo = (st * 32 + lane) * 8;  // element offset in the chunk
      const int lb = eo / be, e = eo % be;
      const int64_t gb = j * 32 + lb;
      if (gb < b_lo || gb >= b_hi) continue;
      uint32_t o[4];
      decode8<T>(sm + lb * bb, e, o);
      *reinterpret_cast<uint4*>(out + (gb - gb0) * be + e) = make_uint4(o[0], o[1], o[2], o[3]);
    }
  }
}

template <DType T>
void launch_convert(const uint8_t* w, int64_t row_bytes, int64_t K, int64_t m0, int64_t rows, uint16_t* out,
                    cudaStream_t s) {
  const int grid = grid_for(rows * ((K + 31) / 32));
  if (K % 32 == 0)
    convert_bf16_kernel<T, true><<<grid, 256, 0, s>>>(w, row_bytes, K, m0, rows, out);
  else
    convert_bf16_kernel<T, false><<<grid, 256, 0, s>>>(w, row_bytes, K, m0, rows, out);
}

template <DType T>
void launch_dequant(const uint8_t* w, int64_t M, int64_t K, int64_t m0, int64_t rows, uint16_t* out, cudaStream_t s) {
  constexpr int bb = QTraits<T>::bb, be = QTraits<T>::be;
  const int64_t bpr = K / be, gb0 = m0 * bpr, gb1 = (m0 + rows) * bpr;
  const int64_t chunks = (gb1 + 31) / 32 - gb0 / 32;
  const int grid = int(std::min<int64_t>((chunks + kDqWarps - 1) / kDqWarps, 132 * 8));
  dequant_bf16_kernel<T><<<grid, kDqWarps * 32, 0, s>>>(w, M * bpr * bb, gb0, gb1, out);
}

// Rows [m0, m0 + rows) of W -> BF16 tile [rows][K].
void dequant_bf16(DType t, const uint8_t* w, int64_t M, int64_t row_bytes, int64_t K, int64_t m0, int64_t rows,
                  uint16_t* out, cudaStream_t s) {
  switch (t) {
    case DType::F32: return launch_convert<DType::F32>(w, row_bytes, K, m0, rows, out, s);
    case DType::F16: return launch_convert<DType::F16>(w, row_bytes, K, m0, rows, out, s);
    case DType::BF16: return launch_convert<DType::BF16>(w, row_bytes, K, m0, rows, out, s);
    case DType::Q8_0: return launch_dequant<DType::Q8_0>(w, M, K, m0, rows, out, s);
    case DType::Q4_K: return launch_dequant<DType::Q4_K>(w, M, K, m0, rows, out, s);
    case DType::Q6_K: return launch_dequant<DType::Q6_K>(w, M, K, m0, rows, out, s);
    default: fail("gemm_n_tc: internal: no dequantization for ", dtype_name(t));
  }
}

// compute-sanitizer initcheck does not see cuBLAS's stores on sm_90 (measured on H100, CUDA 13.0:
// a kernel reading back all of a 512x128 cublasGemmEx output drew 65,536 "uninitialized" reads),
// so after the GEMMs the output is declared written through NVTX's memory extension -- a no-op
// unless a tool is attached (compute-sanitizer --nvtx yes). Every element is in fact written: the
// tensor-core tests poison the output and check all of it.
void mark_written(const void* p, size_t bytes, cudaStream_t s) {
  static const nvtxDomainHandle_t domain = nvtxDomainCreateA("kiln");
  nvtxMemVirtualRangeDesc_t range{};
  range.ptr = p;
  range.size = bytes;
  nvtxMemMarkInitializedBatch_t batch{};
  batch.extCompatID = NVTX_EXT_COMPATID_MEM;
  batch.structSize = sizeof batch;
  batch.regionType = NVTX_MEM_TYPE_VIRTUAL_ADDRESS;
  batch.regionDescCount = 1;
  batch.regionDescElementSize = sizeof range;
  batch.regionDescElements = &range;
  nvtxMemCudaMarkInitialized(domain, s, 0, &batch);
}

void check(const WeightDesc& w, int64_t n, const char* fn) {
  KILN_REQUIRE(w.rows >= 1 && w.cols >= 1, fn, ": weight shape rows=", w.rows, " cols=", w.cols, " is empty");
  KILN_REQUIRE(plan::is_quant(w.type) || plan::is_float(w.type), fn, ": weight type ", dtype_name(w.type),
               " is not supported");
  const int be = dtype_traits(w.type).block_elems;
  KILN_REQUIRE(w.cols % be == 0, fn, ": K=", w.cols, " is not a multiple of the ", dtype_name(w.type),
               " block size ", be);
  KILN_REQUIRE(n >= 1, fn, ": N=", n, " columns (need >= 1)");
  KILN_REQUIRE(w.rows < (int64_t(1) << 31) && w.cols < (int64_t(1) << 31) && n < (int64_t(1) << 31), fn,
               ": shape exceeds cuBLAS int dimensions");
}

}  // namespace

size_t gemm_n_tc_workspace_min(const WeightDesc& w, int64_t n) {
  check(w, n, "gemm_n_tc_workspace_min");
  const int64_t rows = std::min<int64_t>(w.rows, 128);
  return align_up(size_t(n * w.cols) * 2) + size_t(rows * w.cols) * 2;
}

size_t gemm_n_tc_workspace_default(const WeightDesc& w, int64_t n) {
  check(w, n, "gemm_n_tc_workspace_default");
  const int64_t rows = std::min<int64_t>(w.rows, std::max<int64_t>(128, int64_t(kDefaultTileBytes / (2 * w.cols))));
  return align_up(size_t(n * w.cols) * 2) + kAlign + kCublasWsBytes + size_t(rows * w.cols) * 2;
}

void gemm_n_tc_multi(const GemmNTarget* mats, int count, const float* x, int64_t n, Epilogue ep, void* workspace,
                     size_t workspace_bytes, cublasHandle_t handle, cudaStream_t s) {
  KILN_REQUIRE(count >= 1 && count <= kGemmNMaxMats && mats != nullptr, "gemm_n_tc: ", count, " matrices (1..",
               kGemmNMaxMats, ")");
  const int64_t K = mats[0].w.cols;
  size_t need = 0;
  for (int i = 0; i < count; ++i) {
    const WeightDesc& w = mats[i].w;
    check(w, n, "gemm_n_tc");
    KILN_REQUIRE(w.cols == K, "gemm_n_tc: matrix ", i, " has K=", w.cols, " but matrix 0 has K=", K,
                 " (a multi-matrix call shares one input)");
    KILN_REQUIRE(w.data && mats[i].y, "gemm_n_tc: null weight or output pointer (matrix ", i, ")");
    KILN_REQUIRE((reinterpret_cast<uintptr_t>(w.data) & 15) == 0, "gemm_n_tc: weight data must be 16-byte aligned");
    need = std::max(need, gemm_n_tc_workspace_min(w, n));
  }
  KILN_REQUIRE(x != nullptr, "gemm_n_tc: null activation pointer");
  KILN_REQUIRE(handle != nullptr, "gemm_n_tc: no cuBLAS handle");
  KILN_REQUIRE(workspace != nullptr && workspace_bytes >= need, "gemm_n_tc: workspace of ", workspace_bytes,
               " bytes, need at least ", need);
  KILN_REQUIRE((reinterpret_cast<uintptr_t>(workspace) & 15) == 0, "gemm_n_tc: workspace must be 16-byte aligned");
  // Layout: BF16 activations | cuBLAS workspace (256-byte aligned; only when what is left after it
  // still holds the minimum tile) | BF16 weight tile (the rest).
  uint8_t* const base = static_cast<uint8_t*>(workspace);
  auto* xb = reinterpret_cast<uint16_t*>(base);
  const size_t xbytes = align_up(size_t(n * K) * 2);
  const size_t min_tile = need - xbytes;
  const size_t cw_off = align_up(reinterpret_cast<uintptr_t>(base) + xbytes) - reinterpret_cast<uintptr_t>(base);
  const bool own_ws = workspace_bytes >= cw_off + kCublasWsBytes + min_tile;
  const size_t tile_off = own_ws ? cw_off + kCublasWsBytes : xbytes;
  auto* tile = reinterpret_cast<uint16_t*>(base + tile_off);
  // When a matrix needs several tiles, whole multiples of 128 rows per tile: a tile of, say,
  // 2730 rows puts the next GEMM's output at y + 2730 (not 16-byte aligned) with M off a multiple
  // of 8, shapes that push cuBLAS to slow kernels (session 6: Qwen3's down projection at a 64 MiB
  // tile ran at about half speed). The minimum workspace holds 128 rows.
  const int64_t fit = int64_t((workspace_bytes - tile_off) / (2 * size_t(K)));

  // The activations are rounded to BF16 once for all the matrices (Q/K/V, gate/up).
  f32_to_bf16_kernel<<<grid_for(n * K), 256, 0, s>>>(x, xb, n * K);
  KILN_CUDA_CHECK_LAUNCH();
  if (cublasSetStream(handle, s) != CUBLAS_STATUS_SUCCESS) fail("gemm_n_tc: cublasSetStream failed");
  if (own_ws && cublasSetWorkspace(handle, base + cw_off, kCublasWsBytes) != CUBLAS_STATUS_SUCCESS)
    fail("gemm_n_tc: cublasSetWorkspace failed");
  const float alpha = 1.f, beta = ep == Epilogue::Add ? 1.f : 0.f;
  for (int i = 0; i < count; ++i) {
    const WeightDesc& w = mats[i].w;
    const int64_t M = w.rows;
    float* const y = mats[i].y;
    const int64_t tile_rows = fit >= M || w.type == DType::BF16 ? M : std::max<int64_t>(128, fit / 128 * 128);
    const size_t rb = row_bytes(w.type, K);
    for (int64_t m0 = 0; m0 < M; m0 += tile_rows) {
      const int64_t rows = std::min<int64_t>(tile_rows, M - m0);
      // BF16 weights are already the GEMM's operand (GGUF rows are packed): no tile copy.
      const uint16_t* a = tile;
      if (w.type == DType::BF16) {
        a = static_cast<const uint16_t*>(w.data) + m0 * K;
      } else {
        dequant_bf16(w.type, static_cast<const uint8_t*>(w.data), M, int64_t(rb), K, m0, rows, tile, s);
        KILN_CUDA_CHECK_LAUNCH();
      }
      // Column-major view: C[rows x n] (ldc = M) = tile^T[rows x K] * xb[K x n].
      const cublasStatus_t st =
          cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(n), int(K), &alpha, a, CUDA_R_16BF, int(K),
                       xb, CUDA_R_16BF, int(K), &beta, y + m0, CUDA_R_32F, int(M), CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS) fail("gemm_n_tc: cublasGemmEx failed with status ", int(st));
    }
    mark_written(y, size_t(n) * size_t(M) * sizeof(float), s);
  }
}

void gemm_n_tc(const WeightDesc& w, const float* x, int64_t n, float* y, Epilogue ep, void* workspace,
               size_t workspace_bytes, cublasHandle_t handle, cudaStream_t s) {
  const GemmNTarget t{w, y};
  gemm_n_tc_multi(&t, 1, x, n, ep, workspace, workspace_bytes, handle, s);
}

}  // namespace kiln
