// persistent_chain: the phases (norm, matvec), the two ways of sequencing them, the grid barrier.
// Order of every float operation: reference/persistent_chain.h.
#include "kernels/persistent_chain.cuh"

#include "kernels/common/device.cuh"
#include "kernels/common/error.h"
#include "kernels/common/math.h"
#include "kernels/common/pdl.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using normdev::block_sum;
using normdev::f4;
using normdev::mul4s;
using normdev::sumsq4;
using normdev::warp_sum;

constexpr int T = kChainThreads, W = T / 32, R = kChainRows, NCH = kChainChunks;

// Activations are written by other CTAs of the same persistent grid between phases, so they are
// read through L2 only (ld.global.cg): an L1 line from the previous layer would be stale.
__device__ __forceinline__ float4 ld4(const float* p) { return __ldcg(reinterpret_cast<const float4*>(p)); }

// ---- grid barrier (Persistent): arrive, then (optionally other work), then wait -------------
// Words (kChainBarrierWords): [0] arrivals, [1] CTAs done (the reset). Arrivals only grow during
// a launch: barrier i waits for (i + 1) * gridDim.x. The arrival is a release reduction
// (cumulative over the CTA's writes, which bar.sync ordered before it) and the wait an acquire
// load: no membar, which would also wait for the weights just prefetched. Measured slower
// (docs/perf-notes.md, session 24): __threadfence around a returning atomicAdd (CUDA's
// cooperative-groups recipe), and a two-level tree (16 arrival groups, the last of each adding
// to the top).
__device__ __forceinline__ void bar_arrive(unsigned* w) {
  __syncthreads();  // the CTA's writes of this phase are done
  if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(w) : "memory");
}
__device__ __forceinline__ void bar_wait(const unsigned* w, int i) {
  if (threadIdx.x == 0) {
    const unsigned target = unsigned(i + 1) * gridDim.x;
    unsigned v;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(w) : "memory");
    } while (v < target);
  }
  __syncthreads();
}
// Leaves the words zero for the next launch: the last CTA to get here resets them (every CTA
// has passed its last wait by then).
__device__ __forceinline__ void bar_reset(unsigned* w) {
  __syncthreads();
  if (threadIdx.x == 0 && atomicAdd(w + 1, 1u) == gridDim.x - 1) {
    atomicExch(w, 0u);
    atomicExch(w + 1, 0u);
  }
}

// ---- norm phase: one CTA, the canonical 16-warp sum of squares (reference/rmsnorm.h) --------
// x is read twice (sum of squares, then scaling) instead of held: in the persistent kernel the
// next matvec's prefetched weights are live across this phase, and held chunks spilled them.
__device__ __forceinline__ void norm_cta(const float* x, float* xn, int d, float eps, float* red) {
  const int nc = d / 4;
  float acc = 0.f;
#pragma unroll 1
  for (int c = threadIdx.x; c < nc; c += T) acc = sumsq4(ld4(x + 4 * c), acc);
  const float inv = krsqrt(block_sum<W>(acc, red) / float(d) + eps);
#pragma unroll 1
  for (int c = threadIdx.x; c < nc; c += T) __stcg(reinterpret_cast<float4*>(xn + 4 * c), mul4s(ld4(x + 4 * c), inv));
}

// ---- matvec phase -----------------------------------------------------------------------------
struct Wregs {
  uint4 w[R][NCH];
};

// Row group g's weights: this thread's chunks of its R rows (zeros past the row or the matrix).
// Streamed once per call, so read evict-first (__ldcs), as gemm_n does.
__device__ __forceinline__ void load_group(const uint16_t* __restrict__ w, int K, int M, int g, Wregs& r) {
  const int nc = K / 8;
#pragma unroll
  for (int rr = 0; rr < R; ++rr) {
    const int row = g * R + rr;
#pragma unroll
    for (int j = 0; j < NCH; ++j) {
      const int c = threadIdx.x + T * j;
      r.w[rr][j] = (row < M && c < nc) ? __ldcs(reinterpret_cast<const uint4*>(w + int64_t(row) * K) + c)
                                       : make_uint4(0, 0, 0, 0);
    }
  }
}

__device__ __forceinline__ float bf_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }
__device__ __forceinline__ float dot8(uint4 q, float4 a, float4 b, float p) {
  p = fmaf(bf_lo(q.x), a.x, p);
  p = fmaf(bf_hi(q.x), a.y, p);
  p = fmaf(bf_lo(q.y), a.z, p);
  p = fmaf(bf_hi(q.y), a.w, p);
  p = fmaf(bf_lo(q.z), b.x, p);
  p = fmaf(bf_hi(q.z), b.y, p);
  p = fmaf(bf_lo(q.w), b.z, p);
  return fmaf(bf_hi(q.w), b.w, p);
}

// Shared memory of a matvec phase. xs: the thread's own activation chunks (thread-private
// slots, no barrier needed: shared memory instead of 16 registers, which the persistent kernel's
// prefetched weights need); red: the warps' row partials, double-buffered (one __syncthreads per
// row group).
struct MvSmem {
  float4 xs[2 * NCH][T];
  float red[2][R * W];
};

// y[row] = silu(W . xin) (add = 0) or y[row] += W . xin (add = 1) for this CTA's row groups.
// `cur` holds the first group's weights (load_group(..., blockIdx.x, cur)) when it exists.
__device__ __forceinline__ void matvec_phase(const uint16_t* __restrict__ w, int K, int M, const float* xin,
                                             float* y, int add, Wregs cur, MvSmem& sm) {
  const int nc = K / 8, ng = (M + R - 1) / R;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < NCH; ++j) {
    const int c = threadIdx.x + T * j;
    sm.xs[2 * j][threadIdx.x] = c < nc ? ld4(xin + 8 * c) : f4(0.f);
    sm.xs[2 * j + 1][threadIdx.x] = c < nc ? ld4(xin + 8 * c + 4) : f4(0.f);
  }
  int buf = 0;
#pragma unroll 1
  for (int g = blockIdx.x; g < ng; g += gridDim.x) {
    Wregs nxt;
    if (g + int(gridDim.x) < ng) load_group(w, K, M, g + gridDim.x, nxt);
    float p[R];
#pragma unroll
    for (int rr = 0; rr < R; ++rr) {
      p[rr] = 0.f;
#pragma unroll
      for (int j = 0; j < NCH; ++j)
        p[rr] = dot8(cur.w[rr][j], sm.xs[2 * j][threadIdx.x], sm.xs[2 * j + 1][threadIdx.x], p[rr]);
      p[rr] = warp_sum(p[rr]);
    }
    float* rb = sm.red[buf];
    if (lane == 0) {
#pragma unroll
      for (int rr = 0; rr < R; ++rr) rb[rr * W + warp] = p[rr];
    }
    __syncthreads();
    // normdev::block_sum's cross-warp tree, for R rows behind one __syncthreads (block_sum
    // takes two per value).
    if (warp < R) {  // warp rr sums row rr's W warp partials: the canonical halving tree
      float s = lane < W ? rb[warp * W + lane] : 0.f;
#pragma unroll
      for (int o = W / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      const int row = g * R + warp;
      if (lane == 0 && row < M) __stcg(y + row, add ? __ldcg(y + row) + s : silu(s));
    }
    cur = nxt;
    buf ^= 1;
  }
}

// ---- Launches ---------------------------------------------------------------------------------
__global__ void __launch_bounds__(T) chain_norm_kernel(const float* x, float* xn, int d, float eps) {
  pdl_trigger();
  __shared__ float red[W];
  pdl_wait();
  norm_cta(x, xn, d, eps, red);
}

__global__ void __launch_bounds__(T, 2)
    chain_matvec_kernel(const uint16_t* __restrict__ w, int K, int M, const float* xin, float* y, int add) {
  pdl_trigger();
  __shared__ MvSmem sm;
  Wregs cur;
  if (int(blockIdx.x) * R < M) load_group(w, K, M, blockIdx.x, cur);  // weights: before the wait
  pdl_wait();
  matvec_phase(w, K, M, xin, y, add, cur, sm);
}

// ---- Persistent -------------------------------------------------------------------------------
__global__ void __launch_bounds__(T, 2) chain_persistent_kernel(ChainOp op) {
  __shared__ MvSmem sm;
  // Weight pointers and barrier targets are recomputed from the layer instead of carried: every
  // register the loop carries across a matvec phase is one fewer for the prefetched weights.
  auto wa = [&](int l) { return op.wa + int64_t(l) * op.f * op.d; };
  auto wb = [&](int l) { return op.wb + int64_t(l) * op.f * op.d; };
  Wregs cur;
  if (int(blockIdx.x) * R < op.f) load_group(op.wa, op.d, op.f, blockIdx.x, cur);
#pragma unroll 1
  for (int l = 0; l < op.layers; ++l) {
    if (blockIdx.x == 0) norm_cta(op.x, op.xn, op.d, op.eps, sm.red[0]);
    bar_arrive(op.barrier);
    bar_wait(op.barrier, 3 * l);
    matvec_phase(wa(l), op.d, op.f, op.xn, op.h, 0, cur, sm);
    bar_arrive(op.barrier);
    if (int(blockIdx.x) * R < op.d) load_group(wb(l), op.f, op.d, blockIdx.x, cur);  // while others finish Wa
    bar_wait(op.barrier, 3 * l + 1);
    matvec_phase(wb(l), op.f, op.d, op.h, op.x, 1, cur, sm);
    if (l + 1 < op.layers) {
      bar_arrive(op.barrier);
      if (int(blockIdx.x) * R < op.f) load_group(wa(l + 1), op.d, op.f, blockIdx.x, cur);
      bar_wait(op.barrier, 3 * l + 2);
    }
  }
  bar_reset(op.barrier);
}

void check(const ChainOp& op) {
  auto width_ok = [](int n) { return n >= 8 && n <= kChainMaxWidth && n % 8 == 0; };
  KILN_REQUIRE(width_ok(op.d) && width_ok(op.f), "persistent_chain: d and f must be multiples of 8 in [8, ",
               kChainMaxWidth, "] (d=", op.d, " f=", op.f, ")");
  KILN_REQUIRE(op.layers >= 1, "persistent_chain: layers must be >= 1 (got ", op.layers, ")");
  const void* ptrs[] = {op.wa, op.wb, op.x, op.xn, op.h, op.barrier};
  for (const void* p : ptrs)
    KILN_REQUIRE(p && reinterpret_cast<uintptr_t>(p) % 16 == 0,
                 "persistent_chain: every pointer must be non-null and 16-byte aligned");
}

}  // namespace

int persistent_chain_ctas() {
  // Both kernels are bounded to 2 CTAs of 512 threads per SM (64 registers per thread).
  int per_sm = 0;
  KILN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, chain_persistent_kernel, T, 0));
  KILN_REQUIRE(per_sm >= 1, "persistent_chain: the kernel does not fit on an SM");
  return sm_count() * (per_sm < 2 ? per_sm : 2);
}

int persistent_chain_launches(const ChainOp& op, ChainMode mode) {
  return mode == ChainMode::Persistent ? 1 : 3 * op.layers;
}

double persistent_chain_weight_bytes(const ChainOp& op) { return 2.0 * 2.0 * double(op.d) * op.f * op.layers; }

void persistent_chain(const ChainOp& op, ChainMode mode, cudaStream_t s) {
  check(op);
  const int grid = persistent_chain_ctas();
  if (mode == ChainMode::Persistent) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned(grid));
    cfg.blockDim = dim3(T);
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    KILN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, chain_persistent_kernel, op));
    return;
  }
  const int64_t sa = int64_t(op.f) * op.d;
  for (int l = 0; l < op.layers; ++l) {
    launch_pdl(chain_norm_kernel, dim3(1), dim3(T), 0, s, op.x, op.xn, op.d, op.eps);
    launch_pdl(chain_matvec_kernel, dim3(unsigned(grid)), dim3(T), 0, s, op.wa + l * sa, op.d, op.f,
               static_cast<const float*>(op.xn), op.h, 0);
    launch_pdl(chain_matvec_kernel, dim3(unsigned(grid)), dim3(T), 0, s, op.wb + l * sa, op.f, op.d,
               static_cast<const float*>(op.h), op.x, 1);
  }
}

}  // namespace kiln
