// Prefill attention on tensor cores: flash-attention-2 style tiled online softmax.
//
// CTA = 64 query rows of one head x one slice of DV output dims (DV = hd for 64/128/256; hd 512
// runs two CTAs per row tile, each computing the full 512-wide scores but only 256 output dims,
// which keeps the accumulator in registers), in G key groups of 4 warps (16 rows per warp; the
// groups walk different key tiles). Short prompts and grids of about one wave also split a row
// tile's keys over a cluster of up to 4 CTAs (attn::prefill_splits); the parts' softmax states
// are merged at the end through shared memory (within the CTA) and distributed shared memory
// (across the cluster). Key tiles of BC positions stream through shared memory with cp.async
// (two stages per group); S = Q K^T and O += P V use mma.sync.m16n8k16 with FP16 operands and
// F32 accumulation. Softmax in the exp2 domain (x = s * scale * log2 e), running max per row,
// fully masked rows use 0 as their reference so no -inf - -inf = NaN arises; unwritten and
// out-of-range key rows are zero-filled, so garbage in the cache beyond the last position cannot
// reach P.V.
//
// Split precision. K and V are exact FP16 (the cache's storage), but Q and P are float: rounding
// them to FP16 operands (relative error 2^-11 each) was the kernel's dominant error, visible as a
// model-level disagreement with the float reference. Both are therefore split into two FP16
// halves, x = hi + lo with hi = fp16(x), lo = fp16(x - hi) (x - hi is exact in float), and each
// product is two mma into the same F32 accumulator: S = Q_hi K + Q_lo K, O += P_hi V + P_lo V.
// x - (hi + lo) is then at most 2^-22 |x| (lo's own rounding), or 2^-25 absolute where lo falls
// into FP16's subnormals; P is computed as 2^15 p (p <= 1, so <= 32768 < 65504; l carries the same
// factor, which the final 1 / l cancels), which moves that floor to 2^-40 in units of p, so small
// probabilities keep their relative accuracy. Cost: twice the mma, one more Q tile (hd >= 256:
// shared memory; hd <= 128: registers, which costs hd 128 its third CTA per SM).
// PrefillPrecision::Half instantiates the kernel with LO = false: Q and P rounded to FP16 once,
// one mma per product (its own, looser contract in kernels/attention.cuh).
//
// Contract (kernels/attention.cuh): per output row attending n keys, max_d |out - ref| <=
// (3e-5 + (n / 8) * 2^-23) max_d |ref| (Half: 2e-3 + ...) vs the double reference on the same
// FP16 K/V; the n term is the tensor cores' truncating F32 accumulation into O, one possible ulp
// per mma step.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "kernels/attention.cuh"
#include "kernels/attention_prefill_wg.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/mma_f16.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/smem_stage.cuh"

namespace kiln {
namespace {

using mmadev::mma16816;
using mmadev::split_half2;

constexpr int kWarps = 4;       // per key group: 16 query rows each
constexpr int BR = 16 * kWarps;  // query rows per CTA

using smemdev::cp_async16;
using smemdev::cp_async_commit;
using smemdev::cp_async_wait;
using smemdev::ldsm_x4;
using smemdev::ldsm_x4_t;
using smemdev::smem_u32;

// Barrier of one key group's kWarps warps (ids 1.. ; 0 is __syncthreads).
__device__ __forceinline__ void group_barrier(int grp) {
  asm volatile("bar.sync %0, %1;" ::"r"(1 + grp), "n"(kWarps * 32) : "memory");
}

// Byte offset of 16-byte chunk c of row r in a tile whose rows are `chunks` chunks long; the
// XOR swizzle spreads the 8 rows an ldmatrix reads over all banks.
__device__ __forceinline__ uint32_t swz(int r, int c, int chunks) {
  return uint32_t((r * chunks + (c ^ (r & 7))) * 16);
}

// G key groups of kWarps warps per CTA: both hold the same BR query rows (one Q tile in shared
// memory) and walk different key tiles with their own K/V stages; their partial softmax states
// are merged at the end (below). hd 256 / 512 fit one CTA per SM, so G = 2 doubles the warps an
// SM runs (one per scheduler left every mma and ldmatrix latency exposed).
template <int HD, int DV, int BC, int G>
struct Cfg {
  static constexpr int QC = HD / 8;  // 16-byte chunks per Q/K row
  static constexpr int VC = DV / 8;  // per V row
  static constexpr int Q_BYTES = BR * HD * 2;
  static constexpr int K_BYTES = BC * HD * 2;
  static constexpr int V_BYTES = BC * DV * 2;
  // Q_hi and Q_lo tiles, Q_BYTES each. hd <= 128: they are only staged once (their fragments then
  // live in registers), Q_hi in the space of K stage 1 and Q_lo in that of V stage 1, which the
  // first prefetch overwrites after Q has been read. hd >= 256: both stay in shared memory ahead
  // of the K/V stages (hd 512, G = 2, 16-key tiles: 64 + 64 + 2 * 2 * (16 + 8) = 224 KiB, under
  // the 227 KiB per block).
  static constexpr bool Q_IN_REGS = HD <= 128;
  static constexpr int Q_OFFSET = Q_IN_REGS ? K_BYTES : 0;
  static constexpr int QLO_OFFSET = Q_IN_REGS ? 2 * K_BYTES + V_BYTES : Q_BYTES;
  static constexpr int K_OFFSET = Q_IN_REGS ? 0 : 2 * Q_BYTES;
  static constexpr int GROUP_BYTES = 2 * (K_BYTES + V_BYTES);  // one key group's two stages
  static constexpr int SMEM = (Q_IN_REGS ? 0 : 2 * Q_BYTES) + G * GROUP_BYTES;
  static constexpr int THREADS = G * kWarps * 32;
  // Register budget: hd 64 fits 3 CTAs/SM (168 registers); hd 128's 2 x 32 Q fragment registers
  // plus 64 accumulators do not, so it runs 2 CTAs/SM (255 registers) instead of spilling.
  static constexpr int MIN_BLOCKS = G > 1 ? 1 : HD <= 64 ? 3 : Q_IN_REGS ? 2 : 1;
  static_assert(!Q_IN_REGS || (Q_BYTES <= K_BYTES && Q_BYTES <= V_BYTES),
                "Q_hi / Q_lo must fit in K / V stage 1");
  static_assert(SMEM <= 227 * 1024, "dynamic shared memory per block");
  static_assert(G * (BR * DV + 2 * BR) * 4 <= SMEM, "the merge's partials must fit the shared memory");
};

// LO: Q and P as hi + lo pairs (PrefillPrecision::Split); false rounds them to FP16 once (Half).
template <int HD, int DV, int BC, int G, bool LO>
__global__ void __launch_bounds__(Cfg<HD, DV, BC, G>::THREADS, (Cfg<HD, DV, BC, G>::MIN_BLOCKS))
    attn_prefill_kernel(const float* __restrict__ q, int64_t q_stride, int T,
                        const int32_t* __restrict__ pos, const uint16_t* __restrict__ kc,
                        const uint16_t* __restrict__ vc, int cap, int n_head, int n_head_kv,
                        float scale_log2, int window, int n_split, float* __restrict__ out) {
  using C = Cfg<HD, DV, BC, G>;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = smem_u32(smem) + C::Q_OFFSET;
  const uint32_t sQlo = smem_u32(smem) + C::QLO_OFFSET;
  const int grp = int(threadIdx.x) / (kWarps * 32);  // key group
  const uint32_t sK0 = smem_u32(smem) + C::K_OFFSET + grp * C::GROUP_BYTES;  // its K/V stages
  const uint32_t sV0 = sK0 + 2 * C::K_BYTES;
  unsigned char* const q_smem = smem + C::Q_OFFSET;
  unsigned char* const qlo_smem = smem + C::QLO_OFFSET;

  pdl_trigger();
  pdl_wait();
  const int tid = threadIdx.x, lane = tid & 31;
  const int gtid = tid % (kWarps * 32), warp = gtid >> 5;  // thread and warp within the key group
  // Grid (HD / DV * n_split, n_head, row tiles), CTAs (clusters) handed out x fastest: every
  // head's heaviest row tile before any head's next one (attention.cuh: longest first).
  const int qt = int(gridDim.z) - 1 - int(blockIdx.z);  // heaviest (latest) row tiles first
  const int h = blockIdx.y;
  const int kh = h / (n_head / n_head_kv);
  const int split = int(blockIdx.x) % n_split;  // the CTA's rank in its cluster (dims n_split x 1 x 1)
  const int dv0 = int(blockIdx.x) / n_split * DV;
  const int q0 = qt * BR;
  const int P0 = pos[0];
  const int rows = min(BR, T - q0);

  // key range of this row tile: [kv_lo, kv_hi]
  const int kv_hi = P0 + q0 + rows - 1;
  const int kv_lo = window > 0 ? max(0, P0 + q0 - window + 1) : 0;
  const int n_tiles = (kv_hi - kv_lo + BC) / BC;
  // This key group's share of the key tiles: part split * G + grp of n_split * G.
  const int parts = n_split * G, part = split * G + grp;
  const int t_begin = int(int64_t(part) * n_tiles / parts), t_end = int(int64_t(part + 1) * n_tiles / parts);
  const int64_t rs = int64_t(n_head_kv) * HD;
  const uint16_t* kbase = kc + int64_t(kh) * HD;
  const uint16_t* vbase = vc + int64_t(kh) * HD + dv0;

  auto load_kv = [&](int tile, int stage) {
    const int kb = kv_lo + tile * BC;
    const uint32_t sK = sK0 + stage * C::K_BYTES, sV = sV0 + stage * C::V_BYTES;
#pragma unroll
    for (int i = gtid; i < BC * C::QC; i += kWarps * 32) {
      const int r = i / C::QC, c = i % C::QC;
      const int p = kb + r;
      const bool ok = p <= kv_hi;
      const int64_t row = ok ? int64_t(p % cap) : 0;
      cp_async16(sK + swz(r, c, C::QC), kbase + row * rs + c * 8, ok);
    }
#pragma unroll
    for (int i = gtid; i < BC * C::VC; i += kWarps * 32) {
      const int r = i / C::VC, c = i % C::VC;
      const int p = kb + r;
      const bool ok = p <= kv_hi;
      const int64_t row = ok ? int64_t(p % cap) : 0;
      cp_async16(sV + swz(r, c, C::VC), vbase + row * rs + c * 8, ok);
    }
  };

  if (t_begin < t_end) load_kv(t_begin, 0);
  cp_async_commit();

  // Q: float -> FP16 hi + lo, 8 values (one 16-byte chunk of each tile) per piece; rows past T
  // are zero (mmadev::stage_split).
  static_assert(BR * C::QC % C::THREADS == 0, "Q's pieces: the same count per thread");
  mmadev::stage_split<BR * C::QC / C::THREADS>(
      tid, C::THREADS,
      [&](int i) {
        const int r = i / C::QC, c = i % C::QC;
        return r < rows ? q + int64_t(q0 + r) * q_stride + int64_t(h) * HD + c * 8 : nullptr;
      },
      [&](int i, uint4 hi, uint4 lo) {
        *reinterpret_cast<uint4*>(q_smem + swz(i / C::QC, i % C::QC, C::QC)) = hi;
        if constexpr (LO) *reinterpret_cast<uint4*>(qlo_smem + swz(i / C::QC, i % C::QC, C::QC)) = lo;
      });

  // hd <= 128: the warp's Q_hi and Q_lo fragments stay in registers for the whole key loop
  constexpr bool kQReg = C::Q_IN_REGS;
  uint32_t qf[kQReg ? HD / 16 : 1][4], qlf[kQReg && LO ? HD / 16 : 1][4];
  if constexpr (kQReg) {
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const uint32_t off = swz(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC);
      ldsm_x4(qf[kk], sQ + off);
      if constexpr (LO) ldsm_x4(qlf[kk], sQlo + off);
    }
  }
  __syncthreads();  // Q staged by all threads (hd <= 128: held in registers before K/V stage 1 is refilled)

  float o[DV / 8][4];
#pragma unroll
  for (int n = 0; n < DV / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int wr0 = warp * 16;                      // warp's first row in the tile
  const int qpos0 = P0 + q0 + wr0 + (lane >> 2);  // this thread's rows: qpos0, qpos0 + 8
  const int wq_lo = P0 + q0 + wr0, wq_hi = wq_lo + 15;

  for (int j = t_begin; j < t_end; ++j) {
    const int st = (j - t_begin) & 1;
    if (j + 1 < t_end) {
      load_kv(j + 1, st ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    group_barrier(grp);
    const uint32_t sK = sK0 + st * C::K_BYTES, sV = sV0 + st * C::V_BYTES;
    const int kb = kv_lo + j * BC;

    // S = Q_hi K^T + Q_lo K^T (16 x BC per warp)
    float sacc[BC / 8][4];
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[4], al[4] = {0, 0, 0, 0};
      if constexpr (kQReg) {
        a[0] = qf[kk][0], a[1] = qf[kk][1], a[2] = qf[kk][2], a[3] = qf[kk][3];
        if constexpr (LO) al[0] = qlf[kk][0], al[1] = qlf[kk][1], al[2] = qlf[kk][2], al[3] = qlf[kk][3];
      } else {
        const uint32_t off = swz(wr0 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC);
        ldsm_x4(a, sQ + off);
        if constexpr (LO) ldsm_x4(al, sQlo + off);
      }
#pragma unroll
      for (int n2 = 0; n2 < BC / 16; ++n2) {
        uint32_t b[4];
        ldsm_x4(b, sK + swz(n2 * 16 + (lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1), C::QC));
        mma16816(sacc[2 * n2], a, b[0], b[1]);
        if constexpr (LO) mma16816(sacc[2 * n2], al, b[0], b[1]);
        mma16816(sacc[2 * n2 + 1], a, b[2], b[3]);
        if constexpr (LO) mma16816(sacc[2 * n2 + 1], al, b[2], b[3]);
      }
    }

    // mask + online softmax (exp2 domain). Not mmadev::online_softmax (the wgmma kernel's, one
    // FFMA and ex2.approx.ftz per score): at 255 registers this kernel's hd 512 Split instance
    // (Gemma 4's global layers) lost 5-7 % with it, with ex2.ftz alone, and with its FFMA form
    // on exp2f (H100, session 30, T 2048 604.6 -> 634-646 us; hd 128 and Half gained 2-9 %).
    const bool full = kb + BC - 1 <= wq_lo && kb + BC - 1 <= kv_hi &&
                      (window == 0 || wq_hi - kb < window);
    if (!full) mmadev::mask_scores<BC / 8>(&sacc[0][0], kb, qpos0, kv_hi, window, lane & 3);
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float x = sacc[n][e] * scale_log2;
        sacc[n][e] = x;
        mt[e >> 1] = fmaxf(mt[e >> 1], x);
      }
    }
    float corr[2], muse[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
      const float mn = fmaxf(mrow[r], mt[r]);
      muse[r] = mn == -INFINITY ? 0.f : mn;
      corr[r] = exp2f(mrow[r] - muse[r]);
      muse[r] -= mmadev::kPScaleLog2;
      mrow[r] = mn;
    }
    // P = 2^15 exp2(x - m) (exact power-of-two factor, see the file comment), in place of S
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) sacc[n][e] = exp2f(sacc[n][e] - muse[e >> 1]);
      ls[0] += sacc[n][0] + sacc[n][1];
      ls[1] += sacc[n][2] + sacc[n][3];
    }
    lrow[0] = lrow[0] * corr[0] + ls[0];
    lrow[1] = lrow[1] * corr[1] + ls[1];
    if (!mmadev::warp_corr_is_one(corr)) {
#pragma unroll
      for (int n = 0; n < DV / 8; ++n) {
        o[n][0] *= corr[0];
        o[n][1] *= corr[0];
        o[n][2] *= corr[1];
        o[n][3] *= corr[1];
      }
    }

    // O += P_hi V + P_lo V; the A fragment of keys kk*16..+15 is S accumulator columns 2kk, 2kk+1
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
      uint32_t ph[4], pl[4];
      split_half2(sacc[2 * kk][0], sacc[2 * kk][1], ph[0], pl[0]);
      split_half2(sacc[2 * kk][2], sacc[2 * kk][3], ph[1], pl[1]);
      split_half2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1], ph[2], pl[2]);
      split_half2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3], ph[3], pl[3]);
#pragma unroll
      for (int n2 = 0; n2 < DV / 16; ++n2) {
        uint32_t b[4];
        ldsm_x4_t(b, sV + swz(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * n2 + (lane >> 4), C::VC));
        mma16816(o[2 * n2], ph, b[0], b[1]);
        if constexpr (LO) mma16816(o[2 * n2], pl, b[0], b[1]);
        mma16816(o[2 * n2 + 1], ph, b[2], b[3]);
        if constexpr (LO) mma16816(o[2 * n2 + 1], pl, b[2], b[3]);
      }
    }
    group_barrier(grp);  // this stage is overwritten by the load issued next iteration
  }

  // full row sums across the quad
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const int r0 = wr0 + (lane >> 2);
  const int64_t ostride = int64_t(n_head) * HD;
  if (parts == 1) {  // normalize, store float2 pairs
    const float inv0 = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
    const float inv1 = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
#pragma unroll
    for (int n = 0; n < DV / 8; ++n) {
      const int col = dv0 + n * 8 + (lane & 3) * 2;
      if (r0 < rows)
        *reinterpret_cast<float2*>(out + int64_t(q0 + r0) * ostride + int64_t(h) * HD + col) =
            make_float2(o[n][0] * inv0, o[n][1] * inv0);
      if (r0 + 8 < rows)
        *reinterpret_cast<float2*>(out + int64_t(q0 + r0 + 8) * ostride + int64_t(h) * HD + col) =
            make_float2(o[n][2] * inv1, o[n][3] * inv1);
    }
    return;
  }

  // Split keys: every key group of every CTA in the cluster leaves its unnormalized O tile,
  // running max m and sum l in shared memory (the Q and K/V stages are free now); after a
  // barrier (the cluster's when n_split > 1) CTA `split` merges rows [split * BR / n_split, ...)
  // over all parts, reading the other CTAs' through distributed shared memory:
  //   out = sum_p 2^(m_p - M) O_p / sum_p 2^(m_p - M) l_p,  M = max_p m_p
  // (M = 0 when every m_p is -inf: such a row has l = 0 and O = 0 in every part and is stored as
  // 0, as above).
  float* const ob = reinterpret_cast<float*>(smem);  // [G][BR][DV]
  float* const mb = ob + G * BR * DV;                 // [G][BR]
  float* const lb = mb + G * BR;                      // [G][BR]
  __syncthreads();  // every warp is done with the stages
  {
    float* const og = ob + grp * BR * DV;
#pragma unroll
    for (int n = 0; n < DV / 8; ++n) {
      const int col = n * 8 + (lane & 3) * 2;
      *reinterpret_cast<float2*>(og + r0 * DV + col) = make_float2(o[n][0], o[n][1]);
      *reinterpret_cast<float2*>(og + (r0 + 8) * DV + col) = make_float2(o[n][2], o[n][3]);
    }
    if ((lane & 3) == 0) {
      mb[grp * BR + r0] = mrow[0], mb[grp * BR + r0 + 8] = mrow[1];
      lb[grp * BR + r0] = lrow[0], lb[grp * BR + r0 + 8] = lrow[1];
    }
  }
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  if (n_split > 1)
    cluster.sync();  // partials visible cluster-wide
  else
    __syncthreads();
  auto at = [&](float* p, int t) { return n_split > 1 ? cluster.map_shared_rank(p, t) : p; };
  const int mr0 = split * BR / n_split, mr1 = (split + 1) * BR / n_split;
  for (int i = tid; i < (mr1 - mr0) * (DV / 4); i += C::THREADS) {
    const int r = mr0 + i / (DV / 4), c = (i % (DV / 4)) * 4;
    float mx = -INFINITY;
    for (int t = 0; t < n_split; ++t)
#pragma unroll
      for (int g = 0; g < G; ++g) mx = fmaxf(mx, at(mb, t)[g * BR + r]);
    const float muse = mx == -INFINITY ? 0.f : mx;
    float l = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int t = 0; t < n_split; ++t)
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float w = exp2f(at(mb, t)[g * BR + r] - muse);
        l += w * at(lb, t)[g * BR + r];
        const float4 v = *reinterpret_cast<const float4*>(at(ob, t) + (g * BR + r) * DV + c);
        acc.x += w * v.x, acc.y += w * v.y, acc.z += w * v.z, acc.w += w * v.w;
      }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    if (r < rows)
      *reinterpret_cast<float4*>(out + int64_t(q0 + r) * ostride + int64_t(h) * HD + dv0 + c) =
          make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
  }
  if (n_split > 1) cluster.sync();  // no CTA leaves while another still reads its shared memory
}

// The cluster size for a launch of T queries (attn::prefill_splits with this instantiation's
// geometry: BR rows, G x BC keys per step, HD / DV CTAs per head); opts the kernel's shared
// memory in on first use.
template <int HD, int DV, int BC, int G, bool LO>
int splits_for(int T, int n_head, int window) {
  using C = Cfg<HD, DV, BC, G>;
  static const std::array<int, 3> slots = [] {  // once per instantiation, not a stream operation
    auto kernel = attn_prefill_kernel<HD, DV, BC, G, LO>;
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
    return resident_ctas_by_cluster(reinterpret_cast<const void*>(kernel), C::THREADS, size_t(C::SMEM));
  }();
  return attn::prefill_splits(T, n_head * (HD / DV), BR, G * BC, window, slots.data(), attn::kPrefillMaxSplit);
}

template <int HD, int DV, int BC, int G, bool LO>
void launch_prefill(const float* q, int64_t q_stride, int T, const int32_t* pos,
                    const uint16_t* kc, const uint16_t* vc, int cap, int n_head, int n_head_kv,
                    float scale_log2, int window, float* out, cudaStream_t s) {
  using C = Cfg<HD, DV, BC, G>;
  auto kernel = attn_prefill_kernel<HD, DV, BC, G, LO>;
  const int n_qt = (T + BR - 1) / BR;
  const int split = splits_for<HD, DV, BC, G, LO>(T, n_head, window);
  // grid: row tiles slowest (see the kernel); clusters: the CTAs sharing a row tile's keys
  launch_pdl_cluster(kernel, dim3(unsigned(HD / DV * split), unsigned(n_head), unsigned(n_qt)), dim3(C::THREADS),
                     size_t(C::SMEM), s, unsigned(split > 1 ? split : 0), q, q_stride, T, pos, kc, vc, cap, n_head,
                     n_head_kv, scale_log2, window, split, out);
}

// The instantiation per head_dim: <HD, DV, BC, G> (see Cfg).
template <int HD_, int DV_, int BC_, int G_>
struct Instance {
  static constexpr int HD = HD_, DV = DV_, BC = BC_, G = G_;
};
template <class F>
int with_instance(int hd, F f) {
  switch (hd) {
    // hd 64: 64-key tiles (8 KiB per K/V stage, Q = 8 KiB fits K stage 1), 32 KiB per CTA
    case 64: return f(Instance<64, 64, 64, 1>{});
    // hd 128: two CTAs of one key group per SM (G = 2 measured slower: 50.0 -> 54.9 us at T = 512)
    case 128: return f(Instance<128, 128, 64, 1>{});
    // hd 256 / 512: one CTA per SM, two key groups (hd 512: 16-key tiles, so both groups' stages
    // fit next to the 128 KiB Q tile). H200, T = 512: hd 256 72 -> 35 us, hd 512 106 -> 85 us.
    case 256: return f(Instance<256, 256, 32, 2>{});
    default: return f(Instance<512, 256, 16, 2>{});
  }
}

// Auto: the wgmma kernel wherever it exists (it splits keys too), else mma.sync.
PrefillPath resolve(PrefillPath path, int hd) {
  return path != PrefillPath::Auto ? path
                                   : (detail::prefill_wg_supported(hd) ? PrefillPath::Warpgroup : PrefillPath::MmaSync);
}

// The shape queries' validation (attention_prefill_splits / _persistent).
void check_query(const char* what, int T, int n_head, int hd, int window) {
  KILN_REQUIRE(hd == 64 || hd == 128 || hd == 256 || hd == 512, what, ": head_dim ", hd, " not in {64, 128, 256, 512}");
  KILN_REQUIRE(T >= 1 && n_head >= 1 && window >= 0, what, ": T ", T, " n_head ", n_head, " window ", window);
}

}  // namespace

int attention_prefill_splits(int T, int n_head, int hd, int window, PrefillPrecision precision, PrefillPath path) {
  check_query("attention_prefill_splits", T, n_head, hd, window);
  if (resolve(path, hd) == PrefillPath::Warpgroup)
    return detail::prefill_wg_splits(T, n_head, hd, window, precision == PrefillPrecision::Split);
  return with_instance(hd, [&](auto i) {
    using I = decltype(i);
    return precision == PrefillPrecision::Split ? splits_for<I::HD, I::DV, I::BC, I::G, true>(T, n_head, window)
                                                : splits_for<I::HD, I::DV, I::BC, I::G, false>(T, n_head, window);
  });
}

bool attention_prefill_persistent(int T, int n_head, int hd, int window, PrefillPrecision precision,
                                  PrefillPath path) {
  check_query("attention_prefill_persistent", T, n_head, hd, window);
  return resolve(path, hd) == PrefillPath::Warpgroup &&
         detail::prefill_wg_persistent(T, n_head, hd, window, precision == PrefillPrecision::Split);
}

bool attention_prefill_has_warpgroup(int hd) { return detail::prefill_wg_supported(hd); }

void attention_prefill(const float* q, int64_t q_stride, int T, const int32_t* pos,
                       const uint16_t* k_cache, const uint16_t* v_cache, int64_t cap, int n_head,
                       int n_head_kv, int hd, float scale, int window, float* out, cudaStream_t s,
                       PrefillPath path, PrefillPrecision precision) {
  KILN_REQUIRE(hd == 64 || hd == 128 || hd == 256 || hd == 512, "attention_prefill: head_dim ", hd,
               " not in {64, 128, 256, 512}");
  KILN_REQUIRE(n_head_kv > 0 && n_head > 0 && n_head % n_head_kv == 0,
               "attention_prefill: n_head ", n_head, " not a multiple of n_head_kv ", n_head_kv);
  KILN_REQUIRE(T >= 0 && cap > 0 && cap <= INT32_MAX && window >= 0, "attention_prefill: T ", T,
               " cap ", cap, " window ", window);
  // The wgmma kernel's online_softmax takes each row's max over the raw scores and scales it
  // once: that needs a positive, finite scale (also the only meaningful one).
  KILN_REQUIRE(scale > 0.f && std::isfinite(scale), "attention_prefill: scale ", scale,
               " must be positive and finite");
  // Row tiles are a grid dimension (y or z) of at most 65535 CTAs: at 64 rows, T <= 4,194,240.
  KILN_REQUIRE(int64_t(T) <= int64_t(65535) * BR, "attention_prefill: T ", T, " above ", int64_t(65535) * BR,
               " rows in one call (chunk the prompt)");
  if (q_stride == 0) q_stride = int64_t(n_head) * hd;
  KILN_REQUIRE(q_stride >= int64_t(n_head) * hd && q_stride % 4 == 0, "attention_prefill: q_stride ",
               q_stride, " must be >= ", int64_t(n_head) * hd, " and a multiple of 4");
  KILN_REQUIRE(((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k_cache) |
                 reinterpret_cast<uintptr_t>(v_cache) | reinterpret_cast<uintptr_t>(out)) & 15) == 0,
               "attention_prefill: q, caches and out need 16-byte alignment");
  const bool wg = detail::prefill_wg_supported(hd);
  KILN_REQUIRE(path != PrefillPath::Warpgroup || wg, "attention_prefill: no warpgroup (wgmma) kernel for head_dim ",
               hd, " in this build on this device");
  if (T == 0) return;
  const float sl2 = scale * mmadev::kLog2e;
  const int c = int(cap);
  const bool split = precision == PrefillPrecision::Split;
  if (resolve(path, hd) == PrefillPath::Warpgroup) {
    detail::prefill_wg(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, hd, sl2, window, split, out, s);
    return;
  }
  with_instance(hd, [&](auto i) {
    using I = decltype(i);
    if (split)
      launch_prefill<I::HD, I::DV, I::BC, I::G, true>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, sl2,
                                                      window, out, s);
    else
      launch_prefill<I::HD, I::DV, I::BC, I::G, false>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv,
                                                       sl2, window, out, s);
    return 0;
  });
}

}  // namespace kiln
