// gemm_n integer (dp4a, int8 MMA) and float paths, dispatch. Numerics: kernels/gemm_n_plan.h. The
// dp4a unit decode and activation loads: kernels/gemm_n_dp4a.cuh; the MMA path: gemm_n_imma.cuh.
#include "kernels/gemm_n.cuh"

#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>

#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/error.h"
#include "kernels/gemm_n_dp4a.cuh"
#include "kernels/gemm_n_imma.cuh"
#include "kernels/gemm_n_mma.h"
#include "kernels/gemm_n_plan.h"

namespace kiln {

namespace {

namespace plan = gemm_n_plan;
namespace mma = gemm_n_mma;
using namespace gemm_n_dev;  // the dp4a and int8 MMA device paths (gemm_n_dp4a.cuh, gemm_n_imma.cuh)

constexpr int kWarps = plan::kWarpsPerCta;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 4;  // float path: rows per warp

struct Mat {
  const uint8_t* data;
  const uint8_t* end;  // data + M * row_bytes
  float* y;
  int64_t M;
  int64_t row_bytes;
  int type;
  int S;
  int cta_begin;
  int ctas;          // CTAs of the grid working on this matrix
  int rows_per_cta;  // float path: rows per CTA (one CTA per row block)
};

struct Params {
  Mat mats[kGemmNMaxMats];
  int count;
  const void* x;  // BlockQ8_1* (integer path) or float* (float path)
  int64_t K;
  int64_t units;   // float path: units per row
  int64_t xblocks;  // integer path: Q8_1 blocks per activation column (K / 32)
  int64_t x_stride;  // elements (float) or blocks (Q8_1) between columns
  int add;
  int vec;  // float path: 16-byte vector loads allowed
  int rowbuf;  // integer path: staging bytes per row and ring stage
  int x_stage;      // integer path: activations staged in shared memory (x_stage_capable, launch_q's rule)
  int x_col_bytes;  // bytes per staged activation column
  // kQ6Pairs, passed as a parameter: with the literal, ptxas proves the masked bits and splits
  // each bit_select of the Q6_K decode into two LOP3s (load_unit); a __constant__ variable keeps
  // it whole but costs a constant-cache miss per CTA (+0.3-0.5 us on small matrices, H200).
  uint32_t q6_pairs;
};
constexpr uint32_t kQ6Pairs = 0x33333333u;  // the qh bit pairs of a Q6_K word window

// L2 policy of the weight streams: evict-first. A decode step reads each weight byte once (4-5 GB
// per token never fit the 60 MB L2), so weight lines are the right victims, and the small data
// the light kernels between matvecs re-read (activations, norm weights, KV rows, attention
// partials) stays in L2. H200, side by side: qwen3-8b decode 374 -> 382 tok/s, gemma4-e4b 291 ->
// 298 (an explicit evict_normal policy measured 367 / 288: not the same as no hint).
__device__ __forceinline__ uint64_t stream_policy() {
  uint64_t pol;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  return pol;
}

__device__ __forceinline__ uint4 ld_stream_v4(const uint8_t* p, uint64_t pol) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p), "l"(pol));
  return v;
}

__device__ __forceinline__ int find_mat(const Params& p, int cta) {
  int i = 0;
  for (int j = 1; j < p.count; ++j)
    if (cta >= p.mats[j].cta_begin) i = j;
  return i;
}

// Butterfly over the warp (gemm_n_plan.h step 4).
__device__ __forceinline__ float warp_fold(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = v + __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Cross-warp combination and epilogue. acc: per-lane folded values (identical in every lane).
template <int N>
__device__ __forceinline__ void finish(const Mat& m, int64_t row0, int warp, int S, int lane, int add,
                                       float (&acc)[kRows][N], float (*red)[kRows][N]) {
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) acc[r][n] = warp_fold(acc[r][n]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int n = 0; n < N; ++n) red[warp][r][n] = acc[r][n];
  }
  __syncthreads();
  if (warp % S == 0 && lane < kRows * N) {
    const int r = lane / N, n = lane % N;
    const int64_t row = row0 + r;
    if (row >= 0 && row < m.M) {
      float t = red[warp][r][n];
      for (int w = 1; w < S; ++w) t = t + red[warp + w][r][n];
      float* y = m.y + int64_t(n) * m.M + row;
      *y = add ? *y + t : t;
    }
  }
}

// ---------------------------------------------------------------- integer path
//
// Schedule (numerics are fixed by gemm_n_plan.h; none of this changes a bit of the result):
// the grid is persistent -- a few CTAs per SM, sized from the occupancy calculator -- and each
// CTA's 4 warps form 4/S "slots" of S warps (the plan's split-K). Every slot owns a contiguous
// range of row groups (R rows each) and streams through them: a per-warp ring of kStages chunks
// (TMA bulk copies, one mbarrier per stage; see bulk_copy) runs ahead across row-group
// boundaries, so the pipeline is filled once per launch instead of once per CTA, and a slot's
// share differs from any other's by at most one row group. (A grid of one CTA per row group left
// a partial second wave on 20-60 MB matrices -- 1.2 waves, ~50% of the time -- and refilled the
// pipeline for every 2-3 chunks of work.) The S warps of a slot
// combine their partial sums in shared memory behind a named barrier (ids 1..4: one per slot).

__device__ __forceinline__ void cp_async16(uint8_t* dst, const uint8_t* src, int src_bytes) {
  const uint32_t d = uint32_t(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
}
// Barrier 1 + slot (slot < 4) for `threads` threads. With a register id (named_barrier) ptxas
// reserves all 16 hardware barriers per CTA, so 4 CTAs hold all 64 of an SM's barriers and no
// other kernel's CTA (a __syncthreads needs one) becomes resident beside them until they exit.
// The deep grids keep that reservation on purpose: with immediate ids (5 barriers per CTA)
// qwen3-8b decode went 402 -> 358 tok/s (H200, same call otherwise). The wide grid (6 CTAs per
// SM) needs immediates: 16 per CTA would cap the SM at 4.
__device__ __forceinline__ void named_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void slot_barrier(int slot, int threads) {
  switch (slot) {
    case 0: asm volatile("bar.sync 1, %0;" ::"r"(threads) : "memory"); break;
    case 1: asm volatile("bar.sync 2, %0;" ::"r"(threads) : "memory"); break;
    case 2: asm volatile("bar.sync 3, %0;" ::"r"(threads) : "memory"); break;
    default: asm volatile("bar.sync 4, %0;" ::"r"(threads) : "memory"); break;
  }
}

// Weight staging goes through the TMA engine: one bulk copy per row chunk, issued by one lane,
// completing on the ring stage's mbarrier (transaction bytes). The per-lane cp.async staging it
// replaced spent ~70 of the ~336 warp instructions per Q4_K row chunk on addresses and zero-fill
// sizes (ncu on H200); a bulk copy is a handful of lane-0 instructions per chunk.
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbar_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n\t.reg .pred ready;\n"
      "kiln_mbar_retry:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 ready, [%0], %1;\n\t"
      "@!ready bra kiln_mbar_retry;\n}" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}
// src and dst 16-byte aligned, bytes a positive multiple of 16; pol: the L2 policy (stream_policy).
__device__ __forceinline__ void bulk_copy(uint8_t* dst, const uint8_t* src, uint32_t bytes, uint64_t* bar,
                                          uint64_t pol) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
          smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar)), "l"(pol)
      : "memory");
}
constexpr int kAnyType = -1;  // kernel template argument: weight type read per matrix at run time

// Rows per warp: 2 for small N (smaller row groups balance better and halve the ring), 4 above
// (activation columns are reused across more rows). Q6_K holds 16 quant words per row (two slices)
// in its dp4a path, so it stays at 2 rows for N = 2..4 (4 rows spill under 128 registers at N = 3,
// 4), but takes 4 at N = 1: its decode is instruction-bound, and 4 rows share each lane's
// activation loads and half sums (loop instructions per row and unit 159 -> 140; H200, same call:
// 4096 x 151936 141.2 -> 132.9 us, 4096 x 12288 13.9 -> 13.0, 12288 x 4096 13.8 -> 12.7, qwen3-8b
// decode 405 -> 415 tok/s; K = 2560 rows lost 3 % until their short last chunks were packed:
// pack_short_chunks). Q4_K too at N = 1, for the same reason: its 72-byte activation loads (the
// wait ncu found in session 37) are shared by 4 rows, and 3 ring stages of 4 rows keep the bytes
// in flight of 5 stages of 2. H100, session 40, us: 4096 x 4096 5.35 -> 4.56, 12288 x 4096 12.51
// -> 11.87, 2560 x 10240 8.83 -> 7.88, 4096 x 151936 123.4 -> 119.9, 4096 x 12288 12.36 -> 12.52
// (within the spread), but 4096 x 1024 2.38 -> 2.55 (256 row groups, fewer than the grid's
// slots); qwen3-8b decode 383.1 -> 387.3 tok/s (+1.1 %, CI [+0.7, +1.5]). Mixed-type launches
// stay at 2 (at 4, qwen3's Q/K/V launch went 9.48 -> 9.96 us). Q4_K above N = 2 and Q6_K above
// N = 4 take the int8 MMA path (mma_chunk), whose tile is 4 rows (H200, against their dp4a paths:
// Q4_K 4096 x 12288 N = 4 22.3 -> 15.6 us, N = 8 28.4 -> 22.1 us; Q6_K N = 8 4096 x 12288 35.6 ->
// 33.0, 4096 x 151936 383 -> 332, 2560 x 10240 34.7 -> 30.1, but 12288 x 4096 33.2 -> 34.5).
template <int TT, int N>
KILN_HD constexpr bool mma_path() {
  return (TT == int(DType::Q4_K) && N > 2) || (TT == int(DType::Q6_K) && N > 4);  // Q6_K N = 3, 4: spills at 128 registers
}
template <int TT, int N>
KILN_HD constexpr int rows_per_warp() {
  const bool kquant_matvec = (TT == int(DType::Q4_K) || TT == int(DType::Q6_K)) && N == 1;
  return mma_path<TT, N>() || kquant_matvec || N > (TT == int(DType::Q8_0) ? 2 : 4) ? 4 : 2;
}

// Staging bytes per row and ring stage: one chunk (32 units) + up to 15 bytes of misalignment
// rounded up to whole 16-byte segments + one padding word for the unaligned reads, rounded up to
// 16 bytes so every row of every stage is a valid bulk-copy destination.
// A chunk is 32 units: 32 Q8_0 blocks, 8 Q4_K or Q6_K super-blocks (gemm_n_plan.h step 1).
KILN_HD constexpr int chunk_bytes(DType t) { return t == DType::Q8_0 ? 32 * 34 : (t == DType::Q4_K ? 8 * 144 : 8 * 210); }
KILN_HD constexpr int row_buf(DType t) { return (chunk_bytes(t) + 32 + 15) / 16 * 16; }
constexpr int kMaxRowBuf = row_buf(DType::Q6_K);  // the largest of the three
static_assert(kMaxRowBuf >= row_buf(DType::Q8_0) && kMaxRowBuf >= row_buf(DType::Q4_K), "kMaxRowBuf");
KILN_HD constexpr int row_buf_of(int tt) { return tt == kAnyType ? kMaxRowBuf : row_buf(DType(tt)); }

// The persistent grid's plan per SM. A warp computes a staged chunk in a chain of dependent
// shared-memory reads, dp4a and float ops, so bandwidth needs many resident warps (measured on
// H100: 8 warps per SM with a 12-deep ring streamed a Q8_0 LM head at 76% of copy bandwidth; 16
// warps with a 3-deep ring at 95%) and enough bytes in flight (~100+ KB per SM). So: 4 CTAs
// (16 warps) per SM, 3 above N = 4 (registers: ~128 per thread for N = 3..4, more above), and
// the ring depth fills the shared memory left after the activation stage (below); small Q8_0
// matvecs take a wide grid of 6 (ctas_per_sm).
//
// Activation stage (Q4_K, N = 2): every lane reads its unit's 36-byte Q8_1 block; straight from
// global memory those reads are strided 36 bytes across the warp, ~9 L1 wavefronts per 4-byte
// load, 81 per unit -- for Q4_K as much L1 traffic as the weights. So each CTA first copies the
// activation columns (up to kXStageMax bytes) into shared memory with contiguous cp.async, and
// lanes read them there (stride 9 words: conflict-free). Every other launch reads global memory
// (N > 2: R = 4 rows share each load). Measured on H100 when it was added, the stage lifted the
// Q4_K LM head from 52% to 57% of copy bandwidth: L1 was not the main limit; the 4- and 6-bit
// paths are instruction-bound (ncu: issue slots 65% busy, ALU busiest).
constexpr int kSmemPerSm = 216 * 1024;  // dynamic shared memory planned per SM (of 227 KB)
constexpr int kXStageMax = 16 * 1024;   // activation stage per CTA: K up to ~7k at N = 2
// Q6_K (and mixed launches) skip the stage: its 1.7 KB chunks need the shared memory for ring depth.
// The stage is copied after the PDL wait, behind the ring's bulk copies in the SM's memory queue
// (a globaltimer trace of graph replays, H200: compute began ~2 us after the wait), so it pays
// only where a CTA then streams enough weights to hide that: Q4_K at N = 2 with at least
// kXStageMinCtaBytes of weights per CTA (launch_q decides per launch; Q4_K's two slices per unit
// read twice Q8_0's activation data per weight byte). Everywhere else the shared memory goes to
// ring depth (Q4_K at N = 1, then at 2 rows per warp: 5 stages instead of 4; Q8_0 at N = 2: 6
// instead of 4), and no copy waits behind the PDL wait (one stage more than that lost: session
// 36, branch smem-fill). H100, session 35 (docs/perf-notes.md has the table): qwen3-8b decode 359.2 -> 375.0 tok/s; gemm_n_bench N = 2
// Q4_K 2560x2048 7.29 -> 3.41 us, Q8_0 7.66 -> 3.74; the staged Q4_K 4096x12288 and LM heads at
// N = 2 lose 3-19 % without the stage. In isolated replays the deeper rings cost Q4_K 4096x12288
// at N = 1 11.92 -> 12.60 us and Q8_0 10240x2560 at N = 2 12.75 -> 13.67; the decode graph gains
// regardless. Earlier (H200): Q8_0 at N = 1 went without the stage for 6 ring stages instead of
// 4 (gemma4-e4b decode 293.5 / 294.3 -> 312.0 / 322.1 tok/s).
constexpr int64_t kXStageMinCtaBytes = 48 * 1024;
template <int TT, int N>
KILN_HD constexpr bool x_stage_capable() {
  return N == 2 && TT == int(DType::Q4_K);
}
//
// WIDE grids (Q8_0 at N = 1 only, chosen per launch by use_wide): 6 CTAs per SM with a 4-stage
// ring instead of 4 with a 6-stage one. More warps per SM finish a small matrix sooner; the
// deeper ring streams a large one faster. H200, graph replays, 4 -> 5 CTAs per SM: Q8_0 2560x2048
// 3.18 -> 2.93 us, 2560x10240 10.21 -> 9.04, 10240x2560 9.65 -> 9.28, 4096x4096 7.77 -> 6.72;
// but 4096x12288 (53 MB) 14.82 -> 15.66 and the LM heads 164.5 -> 190.6 / 184.2 -> 203.1. The
// K-quants lost at 5 CTAs on every K = 4096 / 12288 shape (Q4_K 4096x151936 91.9 -> 95.1 us,
// qwen3-8b decode 402 -> 390 tok/s), so they keep 4. 5 -> 6 CTAs (the ring stays at 4 stages,
// the wide kernels' 64-70 registers fit 6 x 128 threads): gemma4-e4b decode +1.10 % and +1.50 %
// in two calls (95 % CIs [+0.82, +1.39], [+1.17, +1.83]; H100, session 42). Choosing the wide
// grid by a launch's total bytes instead of each matrix's (use_wide) lost 1.8 % there.
template <int TT, int N, bool Wide>
KILN_HD constexpr int ctas_per_sm() { return Wide ? 6 : (N > 4 ? 3 : 4); }
template <int TT, int N, bool Wide>
KILN_HD constexpr int ring_stages() {
  const int budget = kSmemPerSm - ctas_per_sm<TT, N, Wide>() * (x_stage_capable<TT, N>() ? kXStageMax : 0);
  const int s = budget / (ctas_per_sm<TT, N, Wide>() * kWarps * rows_per_warp<TT, N>() * row_buf_of(TT));
  return s < 3 ? 3 : (s > 16 ? 16 : s);
}
// Bytes of one activation column in the stage: the column's blocks plus the misalignment of its
// start (columns are K/32 * 36 bytes apart, so a column may start 4, 8 or 12 bytes into a
// 16-byte segment), in whole 16-byte segments.
inline int64_t x_stage_col_bytes(int64_t xblocks) { return ((xblocks * 36 + 15) / 16 + 1) * 16; }

// Issues the copy of chunk c of rows row0..row0+R-1 into one ring stage and arms its mbarrier:
// per row, the aligned 16-byte segments covering the chunk (a row that does not start on 16 bytes
// keeps its misalignment in the stage; the decode reads at that offset). Rounding up to whole
// segments reads into the next row, except on the matrix's last row when the matrix does not end
// on 16 bytes: there the bulk copy stops at the last whole segment and lanes copy the 1-15 bytes
// left with byte loads (nothing outside the matrix is read). Rows past M are not copied (the
// kernel computes garbage for them and never stores it).
template <int R>
__device__ __forceinline__ void issue_chunk(const Mat& m, int64_t row0, int c, int cb, int len, uint8_t* stage,
                                            int rowbuf, int lane, uint64_t* bar, uint64_t pol) {
  const uint8_t* g = m.data + row0 * m.row_bytes + c * cb;  // c * cb < row_bytes
  const bool last = row0 + R >= m.M;                        // the matrix's last row is in this group
  if (!last && (m.row_bytes & 15) == 0) {  // the common case: R whole rows, every chunk 16-byte aligned
    if (lane == 0) {
      const uint32_t nb = uint32_t(len + 15) & ~15u;
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      mbar_expect_tx(bar, R * nb);
#pragma unroll
      for (int r = 0; r < R; ++r) bulk_copy(stage + r * rowbuf, g + r * m.row_bytes, nb, bar, pol);
    }
    return;
  }
  if (lane == 0) {
    uint32_t nb[R], total = 0;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* gr = g + r * m.row_bytes;
      const int mis = int(reinterpret_cast<uintptr_t>(gr) & 15);
      nb[r] = row0 + r < m.M ? uint32_t(mis + len + 15) & ~15u : 0u;
      if (last && row0 + r == m.M - 1) nb[r] = min(nb[r], uint32_t(m.end - (gr - mis)) & ~15u);
      total += nb[r];
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // the warp's reads of this stage come first
    mbar_expect_tx(bar, total);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* gr = g + r * m.row_bytes;
      if (nb[r]) bulk_copy(stage + r * rowbuf, gr - (reinterpret_cast<uintptr_t>(gr) & 15), nb[r], bar, pol);
    }
  }
  if (last) {
    const int r = int(m.M - 1 - row0);
    const uint8_t* gr = g + r * m.row_bytes;
    const int mis = int(reinterpret_cast<uintptr_t>(gr) & 15);
    const uint8_t* a0 = gr - mis;
    const int avail = int(m.end - a0), whole = avail & ~15;
    if (((mis + len + 15) & ~15) > whole && lane < avail - whole) stage[r * rowbuf + whole + lane] = a0[whole + lane];
  }
}

// Pack: rows' short last chunks take the packed branch (pack_short_chunks).
template <int TT, int N, bool Wide, bool Pack, bool IL>
__global__ void __launch_bounds__(kThreads, TT == kAnyType ? 1 : ctas_per_sm<TT, N, Wide>())
    gemm_n_q8_1_kernel(const __grid_constant__ Params p) {
  constexpr int R = rows_per_warp<TT, N>();
  constexpr int kStages = ring_stages<TT, N, Wide>();  // chunks per warp in the ring (kStages - 1 in flight)
  extern __shared__ __align__(16) uint8_t qsmem[];
  __shared__ float red[2][kWarps][R][N];  // double-buffered by row-group parity: one barrier per group
  __shared__ uint64_t bars[kWarps][kStages];  // one mbarrier per ring stage (bulk-copy completion)
  const int mi = find_mat(p, blockIdx.x);
  const Mat& m = p.mats[mi];
  const DType type = TT == kAnyType ? DType(m.type) : DType(TT);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int S = m.S, slot = warp / S, ws = warp % S, slots = kWarps / S;
  const int upb = type == DType::Q8_0 ? 1 : 4;  // units per block
  const int bb = type == DType::Q8_0 ? 34 : (type == DType::Q4_K ? 144 : 210);
  const int bpc = plan::kLanes / upb;           // blocks per chunk
  const int blocks_per_row = int(p.K / (type == DType::Q8_0 ? 32 : 256));
  const int cb = bpc * bb;  // bytes per full chunk
  const int nchunks = (blocks_per_row * upb + plan::kLanes - 1) / plan::kLanes;
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(p.x);
  const int rowbuf = p.rowbuf;
  uint8_t* ring = qsmem + size_t(warp) * kStages * R * rowbuf;
  const bool xs_on = x_stage_capable<TT, N>() && p.x_stage;
  uint8_t* xstage = qsmem + size_t(kWarps) * kStages * R * rowbuf;
  // This slot's row groups [g_begin, g_end) and this warp's chunks of each: ws, ws + S, ...
  const int64_t G = (m.M + R - 1) / R;
  const int64_t Z = int64_t(m.ctas) * slots;
  const int64_t z = int64_t(blockIdx.x - m.cta_begin) * slots + slot;
  auto split = [&](int64_t i) -> int64_t {  // i * G / Z, in 32 bits when it fits (a 64-bit division
    const uint64_t v = uint64_t(i) * uint64_t(G);  // is ~100 instructions; a warp has ~6-30 tasks)
    return v < (uint64_t(1) << 32) ? int64_t(uint32_t(v) / uint32_t(Z)) : int64_t(v / uint64_t(Z));
  };
  const int64_t g_begin = split(z), g_end = split(z + 1);
  const int J = (nchunks - ws + S - 1) >> (S >> 1);  // / S (1, 2, 4); >= 1: gemm_n_split keeps S <= nchunks
  auto chunk_len = [&](int c) {
    const int left = blocks_per_row - c * bpc;
    return (left < bpc ? left : bpc) * bb;
  };

  // Prefetch cursor (row group, chunk index within the warp's J), kStages - 1 tasks ahead.
  int64_t pg = g_begin;
  int pj = 0;
  const uint64_t pol = stream_policy();
  auto issue_next = [&](int stage) {
    if (pg < g_end) {
      const int c = ws + pj * S;
      issue_chunk<R>(m, pg * R, c, cb, chunk_len(c), ring + size_t(stage) * R * rowbuf, rowbuf, lane,
                     &bars[warp][stage], pol);
      if (++pj == J) pj = 0, ++pg;
    }
  };
  if (lane == 0) {  // each warp owns its ring and its barriers
    for (int s = 0; s < kStages; ++s) mbar_init(&bars[warp][s]);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");  // visible to the TMA engine
  }
  __syncwarp();
  // Weights only until pdl_wait(): the ring fills while the previous kernel finishes.
  pdl_trigger();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue_next(s);
  pdl_wait();  // activations and the residual (Epilogue::Add) come from earlier kernels
  if (xs_on) {  // the activation columns, copied by the whole CTA
    for (int n = 0; n < N; ++n) {
      const uint8_t* col = reinterpret_cast<const uint8_t*>(x + int64_t(n) * p.x_stride);
      const uint8_t* cend = col + p.xblocks * 36;
      const uint8_t* a0 = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(col) & ~uintptr_t(15));
      const int nseg = int((cend - a0 + 15) >> 4);
      for (int i = threadIdx.x; i < nseg; i += kThreads) {
        const uint8_t* src = a0 + 16 * i;
        uint8_t* dst = xstage + n * p.x_col_bytes + 16 * i;
        if (src >= col && cend - src >= 16) {
          cp_async16(dst, src, 16);
        } else {  // the column's first or last segment: its own 4-byte words only (nothing outside
                  // the column is read; compute-sanitizer initcheck counts a partial cp.async whole)
          for (int w = 0; w < 4; ++w)
            if (src + 4 * w >= col && src + 4 * w < cend)
              *reinterpret_cast<uint32_t*>(dst + 4 * w) = __ldg(reinterpret_cast<const uint32_t*>(src + 4 * w));
        }
      }
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
  }

  constexpr bool kMma = mma_path<TT, N>();
  static_assert(!kMma || R == 4, "the MMA tiling takes 4 rows per warp");
  static_assert(!IL || (N <= 2 && !kMma), "interleaved activations: the dp4a path at N <= 2 only");
  int stage = 0;         // ring stage of the task being computed
  uint32_t parity = 0;   // phase parity of that stage's barrier: flips each time the ring wraps
  for (int64_t g = g_begin; g < g_end; ++g) {
    const int64_t row0 = g * R;
    uint32_t base_lo[R];  // low address bits of each row start: staging offsets are (base + c * cb) & 15
#pragma unroll
    for (int r = 0; r < R; ++r) base_lo[r] = uint32_t(reinterpret_cast<uintptr_t>(m.data + (row0 + r) * m.row_bytes));
    float acc[R][N];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int n = 0; n < N; ++n) acc[r][n] = 0.f;
    float macc[8][4];  // kMma: the per-virtual-lane accumulators in MMA layout
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int k = 0; k < 4; ++k) macc[i][k] = 0.f;
    for (int j = 0; j < J; ++j) {
      issue_next(stage == 0 ? kStages - 1 : stage - 1);  // the stage freed by the previous task
      mbar_wait(&bars[warp][stage], parity);
      __syncwarp();  // (the tail bytes of a matrix's last row are stored by other lanes)
      const int c = ws + j * S;
      const uint8_t* buf = ring + size_t(stage) * R * rowbuf;
      const int nunits = (chunk_len(c) / bb) * upb;
      if constexpr (kMma) {
        int o = 0;  // staging offset of this lane's row (lane / 4) % 4: Q4_K rows are always aligned
        if constexpr (TT == int(DType::Q6_K)) {
          const int rl = (lane >> 2) & 3;  // selects, not an indexed array: no stack
          const uint32_t bl = rl == 0 ? base_lo[0] : rl == 1 ? base_lo[1] : rl == 2 ? base_lo[2] : base_lo[3];
          o = int((bl + uint32_t(c * cb)) & 15u);
        }
        mma_chunk<TT, N>(buf, rowbuf, o, c, nunits, x, p.x_stride, lane, macc);
      } else if (!Pack || nunits * R > plan::kLanes) {  // every lane decodes its unit of all R rows
        const uint32_t ug = uint32_t(c * plan::kLanes + lane);  // this lane's unit of the row
        if (lane < nunits) {
          RowUnit w[R];
#pragma unroll
          for (int r = 0; r < R; ++r) {  // (rows past M decode stale stage bytes; never stored)
            const int off = int((base_lo[r] + uint32_t(c * cb)) & 15u);
            load_unit(type, buf + r * rowbuf, off, lane, p.q6_pairs, w[r]);
          }
#pragma unroll
          for (int n = 0; n < N; ++n) {
            UnitX ux;
            load_unit_x<IL>(type, x + int64_t(n) * p.x_stride, xs_on ? xstage + n * p.x_col_bytes : nullptr,
                            int(p.xblocks), ug, ux);
#pragma unroll
            for (int r = 0; r < R; ++r) {
              float t[2];
              unit_terms(type, w[r], ux, t);
              acc[r][n] = acc[r][n] + t[0];
              if (type != DType::Q8_0) acc[r][n] = acc[r][n] + t[1];
            }
          }
        }
      } else {  // a short chunk (a row's last; K = 2560: 8 of 32 K-quant units): the R rows side
                // by side, one unit per lane, each term handed to the lane whose accumulator it
                // belongs to (the plan's virtual lane, so the same sums bit for bit)
        constexpr int P = plan::kLanes / R;  // lanes per row
        const int r = lane / P, v = lane % P;
        float t[N][2];
#pragma unroll
        for (int n = 0; n < N; ++n) t[n][0] = t[n][1] = 0.f;
        if (v < nunits) {
          uint32_t bl = base_lo[0];  // base_lo[r] by selects (an indexed register array would go to the stack)
#pragma unroll
          for (int rr = 1; rr < R; ++rr) bl = r == rr ? base_lo[rr] : bl;
          RowUnit w;
          load_unit(type, buf + r * rowbuf, int((bl + uint32_t(c * cb)) & 15u), v, p.q6_pairs, w);
          const uint32_t ug = uint32_t(c * plan::kLanes + v);
#pragma unroll
          for (int n = 0; n < N; ++n) {
            UnitX ux;
            load_unit_x<IL>(type, x + int64_t(n) * p.x_stride, xs_on ? xstage + n * p.x_col_bytes : nullptr,
                            int(p.xblocks), ug, ux);
            unit_terms(type, w, ux, t[n]);
          }
        }
#pragma unroll
        for (int rr = 0; rr < R; ++rr)
#pragma unroll
          for (int n = 0; n < N; ++n) {
            const float t0 = __shfl_sync(0xffffffffu, t[n][0], rr * P + v);
            const float t1 = __shfl_sync(0xffffffffu, t[n][1], rr * P + v);
            if (lane < nunits) {
              acc[rr][n] = acc[rr][n] + t0;
              if (type != DType::Q8_0) acc[rr][n] = acc[rr][n] + t1;
            }
          }
      }
      __syncwarp();
      if (++stage == kStages) stage = 0, parity ^= 1u;
    }
    // ---- row group done: fold lanes, combine the slot's S warps in order, store
    if constexpr (kMma) {  // the totals of (row g, columns t/2 + 2k) sit in lanes g < 4, t even
      mma_fold<N>(lane, macc);
      const int gl = lane >> 2, t = lane & 3;  // holders: gl = the row
      const bool holder = gl < 4 && (t & 1) == 0;
      float(*rbm)[R][N] = red[(g - g_begin) & 1];
#pragma unroll
      for (int k = 0; k < (N + 1) / 2; ++k) {
        const int n = (t >> 1) + 2 * k;
        if (!holder || n >= N) continue;
        if (S == 1) {
          if (row0 + gl < m.M) {
            float* y = m.y + int64_t(n) * m.M + row0 + gl;
            *y = p.add ? *y + macc[0][k] : macc[0][k];
          }
        } else {
          rbm[warp][gl][n] = macc[0][k];
        }
      }
    } else {
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int n = 0; n < N; ++n) acc[r][n] = warp_fold(acc[r][n]);
    }
    if (S == 1) {
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int n = 0; n < N; ++n)
          if (!kMma && lane == r * N + n && row0 + r < m.M) {
            float* y = m.y + int64_t(n) * m.M + row0 + r;
            *y = p.add ? *y + acc[r][n] : acc[r][n];
          }
    } else {
      float(*rb)[R][N] = red[(g - g_begin) & 1];
      if (!kMma && lane == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int n = 0; n < N; ++n) rb[warp][r][n] = acc[r][n];
      }
      if constexpr (Wide)
        slot_barrier(slot, 32 * S);
      else
        named_barrier(1 + slot, 32 * S);
      if (ws == 0 && lane < R * N) {
        const int r = lane / N, n = lane % N;
        if (row0 + r < m.M) {
          float t = rb[warp][r][n];
          for (int w = 1; w < S; ++w) t = t + rb[warp + w][r][n];
          float* y = m.y + int64_t(n) * m.M + row0 + r;
          *y = p.add ? *y + t : t;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- float path

template <DType T>
__device__ __forceinline__ void load_unit_vec(const uint8_t* row, int64_t u, float (&w)[8], uint64_t pol) {
  if (T == DType::F32) {
    const uint4 a = ld_stream_v4(row + 32 * u, pol), b = ld_stream_v4(row + 32 * u + 16, pol);
    const uint32_t v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = __uint_as_float(v[i]);
  } else {
    const uint4 a = ld_stream_v4(row + 16 * u, pol);
    const uint32_t v[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if (T == DType::F16) {
        w[2 * i] = h2f(v[i] & 0xffffu);
        w[2 * i + 1] = h2f(v[i] >> 16);
      } else {
        w[2 * i] = __uint_as_float(v[i] << 16);
        w[2 * i + 1] = __uint_as_float(v[i] & 0xffff0000u);
      }
    }
  }
}

template <DType T>
__device__ __forceinline__ float load_elem(const uint8_t* row, int64_t k) {
  if (T == DType::F32) return __ldg(reinterpret_cast<const float*>(row) + k);
  const uint32_t h = __ldg(reinterpret_cast<const unsigned short*>(row) + k);
  return T == DType::F16 ? h2f(h) : __uint_as_float(h << 16);
}

template <int N, DType T>
__device__ __forceinline__ void float_rows(const Params& p, const Mat& m, int64_t row0, int ws, int S, int lane,
                                           float (&acc)[kRows][N]) {
  const float* x = static_cast<const float*>(p.x);
  const int64_t nchunks = (p.units + plan::kLanes - 1) / plan::kLanes;
  const uint64_t pol = stream_policy();
  for (int64_t c = ws; c < nchunks; c += S) {
    const int64_t u = c * plan::kLanes + lane;
    if (u >= p.units) continue;
    float w[kRows][8];
    const int64_t k0 = u * plan::kFloatUnit;
    const int ne = int(p.K - k0 < plan::kFloatUnit ? p.K - k0 : plan::kFloatUnit);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t row = row0 + r;
#pragma unroll
      for (int i = 0; i < 8; ++i) w[r][i] = 0.f;
      if (row >= m.M) continue;
      const uint8_t* rp = m.data + row * m.row_bytes;
      if (p.vec) {
        load_unit_vec<T>(rp, u, w[r], pol);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i)
          if (i < ne) w[r][i] = load_elem<T>(rp, k0 + i);
      }
    }
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const float* xn = x + int64_t(n) * p.x_stride + k0;
      float xv[8];
      if (p.vec) {
        const float4 a = __ldg(reinterpret_cast<const float4*>(xn)), b = __ldg(reinterpret_cast<const float4*>(xn) + 1);
        xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) xv[i] = i < ne ? __ldg(xn + i) : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (p.vec) {
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][n] = fmaf(w[r][i], xv[i], acc[r][n]);
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i)
            if (i < ne) acc[r][n] = fmaf(w[r][i], xv[i], acc[r][n]);
        }
      }
    }
  }
}

template <int N>
__global__ void __launch_bounds__(kThreads) gemm_n_f_kernel(const __grid_constant__ Params p) {
  pdl_trigger();
  pdl_wait();
  __shared__ float red[kWarps][kRows][N];
  const int mi = find_mat(p, blockIdx.x);
  const Mat& m = p.mats[mi];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int S = m.S;
  const int64_t row0 = int64_t(blockIdx.x - m.cta_begin) * m.rows_per_cta + int64_t(warp / S) * kRows;
  float acc[kRows][N];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) acc[r][n] = 0.f;
  if (row0 < m.M) {
    switch (DType(m.type)) {
      case DType::F32: float_rows<N, DType::F32>(p, m, row0, warp % S, S, lane, acc); break;
      case DType::F16: float_rows<N, DType::F16>(p, m, row0, warp % S, S, lane, acc); break;
      default: float_rows<N, DType::BF16>(p, m, row0, warp % S, S, lane, acc); break;
    }
  }
  finish<N>(m, row0, warp, S, lane, p.add, acc, red);
}

// ---------------------------------------------------------------- host side

// Persistent-grid launch of the integer kernel: ctas_per_sm CTAs per SM (fewer if the occupancy
// calculator says so), shared among the matrices in proportion to their bytes, never more CTAs
// for a matrix than it has slots' worth of row groups.
template <int TT, int NC, bool IL, bool Wide, bool Pack = false>
void launch_q(Params q, cudaStream_t s) {
  constexpr int R = rows_per_warp<TT, NC>();
  constexpr int kStages = ring_stages<TT, NC, Wide>();
  auto kernel = gemm_n_q8_1_kernel<TT, NC, Wide, Pack, IL>;
  constexpr int max_smem = kWarps * kStages * R * row_buf_of(TT) + (x_stage_capable<TT, NC>() ? kXStageMax : 0);
  static const bool configured = [&] {  // once per instantiation (not a stream operation)
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_smem));
    return true;
  }();
  (void)configured;
  static const int occ = [&] {
    int o = 0;
    KILN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, kernel, kThreads, size_t(max_smem)));
    return std::max(o, 1);
  }();
  const int64_t budget = int64_t(sm_count()) * std::min(occ, ctas_per_sm<TT, NC, Wide>());
  int64_t want[kGemmNMaxMats], bytes[kGemmNMaxMats], total_want = 0, total_bytes = 0;
  for (int i = 0; i < q.count; ++i) {
    const Mat& m = q.mats[i];
    const int64_t groups = (m.M + R - 1) / R, slots = kWarps / m.S;
    want[i] = (groups + slots - 1) / slots;
    bytes[i] = m.M * m.row_bytes;
    total_want += want[i];
    total_bytes += bytes[i];
  }
  int64_t ctas = 0;
  for (int i = 0; i < q.count; ++i) {
    int64_t c = want[i];
    if (total_want > budget) c = std::min(want[i], std::max<int64_t>(1, budget * bytes[i] / total_bytes));
    q.mats[i].cta_begin = int(ctas);
    q.mats[i].ctas = int(c);
    ctas += c;
  }
  const int64_t xcol = x_stage_col_bytes(q.xblocks);
  q.x_stage = x_stage_capable<TT, NC>() && NC * xcol <= kXStageMax && total_bytes >= kXStageMinCtaBytes * ctas;
  q.x_col_bytes = q.x_stage ? int(xcol) : 0;
  const int smem = kWarps * kStages * R * q.rowbuf + NC * q.x_col_bytes;
  if (smem > max_smem) fail("gemm_n: internal: staging buffer exceeds the configured shared memory");
  launch_pdl(kernel, dim3(unsigned(ctas)), dim3(kThreads), size_t(smem), s, q);
}

// The wide grid (ctas_per_sm) for launches whose matrices are all under 32 MB.
bool use_wide(const Params& q) {
  for (int i = 0; i < q.count; ++i)
    if (q.mats[i].M * q.mats[i].row_bytes >= (int64_t(32) << 20)) return false;
  return true;
}

// The packed branch for short chunks (Q4_K at N = 1, Q6_K at N <= 2; K = 2560 and the like): where
// a row's last chunk has at most 32 / R units, a pass over its R rows side by side costs about 1 /
// R of a full chunk's instructions. H200, same call, us: Q4_K 2560 x 10240 9.38 -> 8.82, 2560 x
// 262144 139.8 -> 121.9; Q6_K 2560 x 10240 11.75 -> 10.80, 2560 x 262144 196.3 -> 174.3 (N = 2:
// 252.1 -> 233.8). Q4_K at N = 2 lost 1-2 % with it, Q8_0 (cheap decode, 16-unit tails) gained
// nothing at N = 1 and lost 2-5 % at N = 2. Its own instantiation: compiled into every kernel, the
// branch slowed the chunk loop of matrices without short chunks (Q6_K 4096 x 12288 13.02 -> 13.35
// us, Q8_0 at N = 4 up to +10 %).
template <int TT, int NC>
bool pack_short_chunks(const Params& q) {
  if (!((TT == int(DType::Q4_K) && NC == 1) || (TT == int(DType::Q6_K) && NC <= 2))) return false;
  const int64_t units = plan::units_per_row(DType(TT), q.K), tail = units % plan::kLanes;
  return tail != 0 && tail * rows_per_warp<TT, NC>() <= plan::kLanes;
}

// IL: interleaved activations (N <= 2; their own instantiations: a run-time layout branch made
// the Q6_K N = 1 kernel spill).
template <int NC, bool IL = false>
void launch_q_typed(const Params& q, cudaStream_t s) {
  const DType t = DType(q.mats[0].type);
  for (int i = 1; i < q.count; ++i)
    if (DType(q.mats[i].type) != t) return launch_q<kAnyType, NC, IL, false>(q, s);
  switch (t) {
    case DType::Q8_0:
      if (NC == 1 && use_wide(q)) return launch_q<int(DType::Q8_0), 1, IL, true>(q, s);
      return launch_q<int(DType::Q8_0), NC, IL, false>(q, s);
    case DType::Q4_K:
      if (pack_short_chunks<int(DType::Q4_K), NC>(q))
        return launch_q<int(DType::Q4_K), NC, IL, false, (NC == 1)>(q, s);
      return launch_q<int(DType::Q4_K), NC, IL, false>(q, s);
    default:
      if (pack_short_chunks<int(DType::Q6_K), NC>(q))
        return launch_q<int(DType::Q6_K), NC, IL, false, (NC <= 2)>(q, s);
      return launch_q<int(DType::Q6_K), NC, IL, false>(q, s);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

void check_weight(const char* fn, const WeightDesc& w, bool quant) {
  KILN_REQUIRE(w.rows >= 1 && w.cols >= 1, fn, ": weight shape rows=", w.rows, " cols=", w.cols, " is empty");
  if (quant) {
    KILN_REQUIRE(plan::is_quant(w.type), fn, ": weight type ", dtype_name(w.type),
                 " is not Q8_0/Q4_K/Q6_K (float weights: gemm_n_f)");
  } else {
    KILN_REQUIRE(plan::is_float(w.type), fn, ": weight type ", dtype_name(w.type),
                 " is not F32/F16/BF16 (quantized weights: gemm_n_q8_1)");
  }
  const int be = dtype_traits(w.type).block_elems;
  KILN_REQUIRE(w.cols % be == 0, fn, ": K=", w.cols, " is not a multiple of the ", dtype_name(w.type),
               " block size ", be);
  KILN_REQUIRE(w.data != nullptr, fn, ": weight data is null");
  KILN_REQUIRE(!quant || aligned16(w.data), fn, ": weight data must be 16-byte aligned");
  KILN_REQUIRE(w.rows <= (int64_t(1) << 31) / 2, fn, ": rows=", w.rows, " too large");
}

template <class XT>
void launch(bool quant, const GemmNTarget* mats, int count, const XT* x, int64_t n, Epilogue ep, cudaStream_t s,
            const char* fn, Q8Layout xl = Q8Layout::Blocks) {
  KILN_REQUIRE(count >= 1 && count <= kGemmNMaxMats, fn, ": ", count, " matrices (1..", kGemmNMaxMats, ")");
  KILN_REQUIRE(mats != nullptr, fn, ": null matrix list");
  KILN_REQUIRE(n >= 1, fn, ": N=", n, " columns (need >= 1)");
  KILN_REQUIRE(x != nullptr, fn, ": activations are null");
  const int64_t K = mats[0].w.cols;
  bool vec = true;
  for (int i = 0; i < count; ++i) {
    check_weight(fn, mats[i].w, quant);
    KILN_REQUIRE(mats[i].w.cols == K, fn, ": matrix ", i, " has K=", mats[i].w.cols, " but matrix 0 has K=", K,
                 " (a multi-matrix launch shares one input)");
    KILN_REQUIRE(mats[i].y != nullptr, fn, ": output ", i, " is null");
    vec = vec && aligned16(mats[i].w.data);
  }
  if (quant) KILN_REQUIRE(aligned16(x), fn, ": Q8_1 activations must be 16-byte aligned");
  KILN_REQUIRE(q8_layout_valid(xl), fn, ": unknown Q8_1 layout ", int(xl));
  const bool il = xl == Q8Layout::Interleaved;
  KILN_REQUIRE(!il || n <= 2, fn, ": interleaved Q8_1 activations are read at N <= 2 only (N=", n, ")");
  vec = vec && aligned16(x) && K % 8 == 0;

  Params p{};
  p.count = count;
  p.K = K;
  p.units = quant ? 0 : plan::units_per_row(mats[0].w.type, K);
  p.xblocks = quant ? K / QK8_1 : 0;
  p.x_stride = quant ? K / QK8_1 : K;
  p.add = ep == Epilogue::Add;
  p.vec = vec;
  int64_t ctas = 0;  // float path grid: one CTA per block of rows_per_cta rows
  p.rowbuf = 0;
  p.q6_pairs = kQ6Pairs;
  for (int i = 0; i < count; ++i) {
    Mat& m = p.mats[i];
    const WeightDesc& w = mats[i].w;
    m.data = static_cast<const uint8_t*>(w.data);
    m.row_bytes = int64_t(row_bytes(w.type, K));
    m.end = m.data + w.rows * m.row_bytes;
    m.y = mats[i].y;
    m.M = w.rows;
    m.type = int(w.type);
    m.S = plan::gemm_n_split(w.type, w.rows, K);
    if (quant) p.rowbuf = std::max(p.rowbuf, row_buf(w.type));
    m.rows_per_cta = kRows * (kWarps / m.S);
    m.cta_begin = int(ctas);
    ctas += (w.rows + m.rows_per_cta - 1) / m.rows_per_cta;
  }
  KILN_REQUIRE(ctas < (int64_t(1) << 31), fn, ": grid too large");
  for (int64_t n0 = 0; n0 < n; n0 += kGemmNMaxCols) {
    const int nc = int(std::min<int64_t>(kGemmNMaxCols, n - n0));
    Params q = p;
    q.x = x + n0 * p.x_stride;
    for (int i = 0; i < count; ++i) q.mats[i].y = p.mats[i].y + n0 * p.mats[i].M;
    const dim3 grid(static_cast<unsigned>(ctas)), block(static_cast<unsigned>(kThreads));
#define KILN_GEMM_N_CASE(NC)                                              \
  case NC:                                                                \
    if (quant)                                                            \
      launch_q_typed<NC>(q, s);                                           \
    else                                                                  \
      launch_pdl(gemm_n_f_kernel<NC>, grid, block, 0, s, q);              \
    break;
    if (il) {  // n <= 2 (checked above)
      if (nc == 1)
        launch_q_typed<1, true>(q, s);
      else
        launch_q_typed<2, true>(q, s);
      KILN_CUDA_CHECK_LAUNCH();
      continue;
    }
    switch (nc) {
      KILN_GEMM_N_CASE(1)
      KILN_GEMM_N_CASE(2)
      KILN_GEMM_N_CASE(3)
      KILN_GEMM_N_CASE(4)
      KILN_GEMM_N_CASE(5)
      KILN_GEMM_N_CASE(6)
      KILN_GEMM_N_CASE(7)
      KILN_GEMM_N_CASE(8)
    }
#undef KILN_GEMM_N_CASE
    KILN_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void gemm_n_q8_1(const WeightDesc& w, const BlockQ8_1* x, int64_t n, float* y, Epilogue ep, cudaStream_t s,
                 Q8Layout xl) {
  const GemmNTarget t{w, y};
  launch(true, &t, 1, x, n, ep, s, "gemm_n_q8_1", xl);
}

void gemm_n_q8_1_multi(const GemmNTarget* mats, int count, const BlockQ8_1* x, int64_t n, Epilogue ep,
                       cudaStream_t s, Q8Layout xl) {
  launch(true, mats, count, x, n, ep, s, "gemm_n_q8_1_multi", xl);
}

void gemm_n_f(const WeightDesc& w, const float* x, int64_t n, float* y, Epilogue ep, cudaStream_t s) {
  const GemmNTarget t{w, y};
  launch(false, &t, 1, x, n, ep, s, "gemm_n_f");
}

void gemm_n_f_multi(const GemmNTarget* mats, int count, const float* x, int64_t n, Epilogue ep, cudaStream_t s) {
  launch(false, mats, count, x, n, ep, s, "gemm_n_f_multi");
}

GemmNPath gemm_n_path(DType t, int64_t n) {
  if (n >= kGemmNTensorCoreMinN) return GemmNPath::TensorCore;
  return plan::is_quant(t) ? GemmNPath::Int8Dp4a : GemmNPath::Float;
}

const char* gemm_n_path_name(GemmNPath p) {
  switch (p) {
    case GemmNPath::Int8Dp4a: return "int8-dp4a";
    case GemmNPath::Float: return "float";
    case GemmNPath::TensorCore: return "tensor-core";
  }
  return "?";
}

void gemm_n(const WeightDesc& w, const float* x, const BlockQ8_1* xq, int64_t n, float* y, Epilogue ep,
            const GemmNContext& ctx, cudaStream_t s, Q8Layout xl) {
  switch (gemm_n_path(w.type, n)) {
    case GemmNPath::Int8Dp4a:
      KILN_REQUIRE(xq != nullptr, "gemm_n: the int8 path (", dtype_name(w.type), ", N=", n,
                   ") needs Q8_1 activations (quantize_q8_1 first)");
      gemm_n_q8_1(w, xq, n, y, ep, s, xl);
      return;
    case GemmNPath::Float: gemm_n_f(w, x, n, y, ep, s); return;
    case GemmNPath::TensorCore:
      gemm_n_tc(w, x, n, y, ep, ctx.workspace, ctx.workspace_bytes, ctx.cublas, s);
      return;
  }
}

}  // namespace kiln
