// Prefill attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): the path
// attention_prefill takes for head_dim 128 and 256 where the device and the build allow it
// (detail::prefill_wg_supported; PrefillPath in kernels/attention.cuh). Same semantics, split
// precision and contract as the mma.sync kernel (kernels/attention_prefill.cu): Q and P are split
// into FP16 hi + lo, K and V are the cache's FP16, F32 accumulation, exp2 online softmax with P
// scaled by 2^15.
//
// CTA = NWG warpgroups x 64 query rows of one head (warp w of a warpgroup owns rows 16 w ..
// 16 w + 15, as in the mma.sync kernel), all of them walking the row tile's key tiles of BC
// positions, which stream through STAGES shared-memory stages (cp.async, 128-byte swizzle).
//   S [64 x BC]  = Q_hi K^T + Q_lo K^T    (A: Q, B: K tile K-major)
//   O [64 x hd] += P_hi V + P_lo V        (A: P in registers, B: V tile MN-major)
// Q's hi and lo tiles are staged in shared memory once; hd 128 then holds their A fragments in
// registers (QREG), hd 256 (twice the fragments) reads them from shared memory in every S. A
// warpgroup whose rows end before a key tile starts (or, with a window, whose window starts
// after it ends) skips that tile's MMAs; the CTA's rows set the tile range.
//
// Measured (H200, attention_bench, T = 8192 causal, us): hd 128 mma.sync 5491 -> 64-key tiles,
// Q from shared memory 3521 -> 128-key tiles 2902 (an m64n64 S with both operands in shared
// memory reads 128 bytes per clock, the SM's shared-memory rate) -> 64-key tiles with Q in
// registers 2810 (kept). Overlapping tile j's softmax with tile j - 1's P.V (two P buffers,
// 4 stages) was slower (3654 against 3521), and so was a cheaper hi/lo split of P (truncation
// instead of rounding, fewer conversions: 3670); one warpgroup per CTA with two CTAs per SM:
// 3324. hd 256: 32-key tiles, 2 stages 1732, with the overlap 2179, 64-key tiles and one
// warpgroup 2358.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/attention.cuh"
#include "kernels/attention_prefill_wg.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/mma_f16.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/smem_stage.cuh"
#include "kernels/common/wgmma.cuh"

namespace kiln {
namespace {

using mmadev::kPScale;
using mmadev::split_half2;

// One instantiation: head_dim, keys per tile, warpgroups per CTA, K/V stages, whether Q's
// fragments live in registers (A of S = Q K^T from registers instead of shared memory).
template <int HD_, int BC_, int NWG_, int STAGES_, bool QREG_>
struct Instance {
  static constexpr int HD = HD_, BC = BC_, NWG = NWG_, STAGES = STAGES_;
  static constexpr bool QREG = QREG_;
};

template <class I>
struct WgCfg {
  static constexpr int HD = I::HD, BC = I::BC, NWG = I::NWG, STAGES = I::STAGES;
  static constexpr bool QREG = I::QREG;
  static constexpr int ROWS = 64 * NWG;       // query rows per CTA
  static constexpr int THREADS = 128 * NWG;
  static constexpr int Q_TILE = 64 * HD * 2;  // bytes of one warpgroup's Q_hi (or Q_lo)
  static constexpr int KV_TILE = BC * HD * 2;
  static constexpr int KV_OFFSET = NWG * 2 * Q_TILE;
  static constexpr int STAGE = 2 * KV_TILE;  // K then V
  static constexpr int SMEM = KV_OFFSET + STAGES * STAGE + 1024;  // + alignment of the atoms
  static_assert(HD % 64 == 0 && BC % 16 == 0 && STAGES >= 2, "whole swizzle atoms, k-steps, one tile ahead");
  static_assert(SMEM <= 227 * 1024, "dynamic shared memory per block");
  static_assert(!QREG || HD <= 128, "Q_hi + Q_lo fragments: hd / 2 registers per thread");
};

using smemdev::cp_async16;
using smemdev::cp_async_commit;
using smemdev::cp_async_wait;
using smemdev::ldsm_x4;
using smemdev::smem_u32;

// Device code only where wgmma exists (sm_90a device passes); elsewhere the kernel is a trap.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Byte offset of 16-byte chunk c of row r in a swizzled tile of `rows` rows (wgmma.cuh's layout:
// 64-element atoms along the row, each rows x 128 bytes).
__device__ __forceinline__ uint32_t tile_off(int r, int c, int rows) {
  return uint32_t((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}
#endif

template <class I>
__global__ void __launch_bounds__(WgCfg<I>::THREADS, 1)
    attn_prefill_wg_kernel(const float* __restrict__ q, int64_t q_stride, int T, const int32_t* __restrict__ pos,
                           const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc, int cap, int n_head,
                           int n_head_kv, float scale_log2, int window, float* __restrict__ out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WgCfg<I>;
  constexpr int HD = C::HD, BC = C::BC, STAGES = C::STAGES;
  constexpr int CH = HD / 8;        // 16-byte chunks per Q/K/V row
  constexpr int KS = BC / 16;       // P.V k-steps per tile
  constexpr int D = STAGES - 1;     // tiles prefetched ahead (see the loop)
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;  // swizzle atoms are 1024-byte aligned
  unsigned char* const smem = smem_raw + (base - raw);

  pdl_trigger();
  pdl_wait();
  const int tid = threadIdx.x, wg = tid / 128, wt = tid % 128, warp = wt / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // heaviest (latest) row tiles first
  const int h = blockIdx.y, kh = h / (n_head / n_head_kv);
  const int q0 = qt * C::ROWS, P0 = pos[0], rows = min(C::ROWS, T - q0);
  const int kv_hi = P0 + q0 + rows - 1;  // the CTA's key range [kv_lo, kv_hi]
  const int kv_lo = window > 0 ? max(0, P0 + q0 - window + 1) : 0;
  const int n_tiles = (kv_hi - kv_lo + BC) / BC;
  // this warpgroup's rows [wq0, wq0 + wrows) of the CTA and the keys they attend
  const int wq0 = wg * 64, wrows = min(64, rows - wq0);
  const int w_hi = P0 + q0 + wq0 + wrows - 1;
  const int w_lo = window > 0 ? max(0, P0 + q0 + wq0 - window + 1) : 0;

  const int64_t rs = int64_t(n_head_kv) * HD;
  const uint16_t* kbase = kc + int64_t(kh) * HD;
  const uint16_t* vbase = vc + int64_t(kh) * HD;
  const uint32_t sKV = base + C::KV_OFFSET;
  auto load_kv = [&](int tile) {
    const int kb = kv_lo + tile * BC;
    const uint32_t sK = sKV + (tile % STAGES) * C::STAGE, sV = sK + C::KV_TILE;
#pragma unroll 4
    for (int i = tid; i < BC * CH; i += C::THREADS) {
      const int r = i / CH, c = i % CH;
      const int p = kb + r;
      const bool ok = p <= kv_hi;
      const int64_t row = ok ? int64_t(p % cap) * rs + c * 8 : 0;
      cp_async16(sK + tile_off(r, c, BC), kbase + row, ok);
      cp_async16(sV + tile_off(r, c, BC), vbase + row, ok);
    }
  };
#pragma unroll
  for (int i = 0; i < D; ++i) {
    if (i < n_tiles) load_kv(i);
    cp_async_commit();  // one group per tile, empty or not: the waits below count groups
  }

  // Q: float -> FP16 hi + lo, rows past T zero.
  unsigned char* const qhi = smem + wg * 2 * C::Q_TILE;
  unsigned char* const qlo = qhi + C::Q_TILE;
  for (int i = wt; i < 64 * CH; i += 128) {
    const int r = i / CH, c = i % CH;
    uint4 hi = make_uint4(0, 0, 0, 0), lo = make_uint4(0, 0, 0, 0);
    if (r < wrows) {
      const float* src = q + int64_t(q0 + wq0 + r) * q_stride + int64_t(h) * HD + c * 8;
      const float4 a = *reinterpret_cast<const float4*>(src);
      const float4 b = *reinterpret_cast<const float4*>(src + 4);
      split_half2(a.x, a.y, hi.x, lo.x);
      split_half2(a.z, a.w, hi.y, lo.y);
      split_half2(b.x, b.y, hi.z, lo.z);
      split_half2(b.z, b.w, hi.w, lo.w);
    }
    *reinterpret_cast<uint4*>(qhi + tile_off(r, c, 64)) = hi;
    *reinterpret_cast<uint4*>(qlo + tile_off(r, c, 64)) = lo;
  }
  const uint64_t dq_hi = wgmma::desc(smem_u32(qhi), 16, 1024), dq_lo = wgmma::desc(smem_u32(qlo), 16, 1024);
  // QREG: the warp's Q_hi / Q_lo A fragments (rows 16 warp .., k-step ks: chunks 2 ks, 2 ks + 1)
  uint32_t qf[C::QREG ? HD / 16 : 1][4], qlf[C::QREG ? HD / 16 : 1][4];
  if constexpr (C::QREG) {
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      const uint32_t off = tile_off(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * ks + (lane >> 4), 64);
      ldsm_x4(qf[ks], smem_u32(qhi) + off);
      ldsm_x4(qlf[ks], smem_u32(qlo) + off);
    }
  }

  float o[HD / 2], s[BC / 2];
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f}, corr[2];
  const int qpos0 = P0 + q0 + wq0 + warp * 16 + g;  // this thread's rows: qpos0, qpos0 + 8
  const int wpos_lo = P0 + q0 + wq0, wpos_hi = wpos_lo + 63;
  uint32_t ph[KS][4], pl[KS][4];  // P's A fragments (hi, lo)

  auto active = [&](int j) {  // warpgroup-uniform: does tile j hold keys of this warpgroup's rows?
    const int kb = kv_lo + j * BC;
    return wrows > 0 && kb <= w_hi && kb + BC - 1 >= w_lo;
  };
  auto issue_s = [&](int j) {  // S = Q_hi K^T + Q_lo K^T; k-step ks: atom ks / 4, + 32 bytes per step
    const uint64_t dk = wgmma::desc(sKV + (j % STAGES) * C::STAGE, 16, 1024);
    wgmma::fence();
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      const uint64_t qo = uint64_t(((ks >> 2) * 64 * 128 + (ks & 3) * 32) >> 4);
      const uint64_t ko = uint64_t(((ks >> 2) * BC * 128 + (ks & 3) * 32) >> 4);
      if constexpr (C::QREG) {
        wgmma::rs_kmajor(s, qf[ks], dk + ko, ks > 0);
        wgmma::rs_kmajor(s, qlf[ks], dk + ko, 1);
      } else {
        wgmma::ss(s, dq_hi + qo, dk + ko, ks > 0);
        wgmma::ss(s, dq_lo + qo, dk + ko, 1);
      }
    }
    wgmma::commit();
  };
  auto issue_pv = [&](int j) {
    // V tile, MN-major: 16 keys per k-step (2048 bytes); LBO = the next 64 dims' atom
    const uint64_t dv = wgmma::desc(sKV + (j % STAGES) * C::STAGE + C::KV_TILE, BC * 128, 1024);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
      const uint64_t vo = uint64_t((kk * 16 * 128) >> 4);
      wgmma::rs(o, ph[kk], dv + vo, 1);
      wgmma::rs(o, pl[kk], dv + vo, 1);
    }
    wgmma::commit();
  };
  // mask + online softmax of S (tile j) into P = 2^15 exp2(x - m) (hi, lo); sets corr.
  // s[4 n + e]: row g + 8 (e >> 1), key kb + 8 n + 2 t + (e & 1).
  auto softmax = [&](int j) {
    const int kb = kv_lo + j * BC;
    const bool full = kb + BC - 1 <= wpos_lo && kb + BC - 1 <= kv_hi && (window == 0 || wpos_hi - kb < window);
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[4 * n + e] * scale_log2;
        if (!full) {
          const int kp = kb + n * 8 + 2 * t + (e & 1), qp = qpos0 + (e >> 1) * 8;
          if (!(kp <= qp && kp <= kv_hi && (window == 0 || qp - kp < window))) x = -INFINITY;
        }
        s[4 * n + e] = x;
        mt[e >> 1] = fmaxf(mt[e >> 1], x);
      }
    float muse[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
      mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
      const float mn = fmaxf(mrow[r], mt[r]);
      muse[r] = mn == -INFINITY ? 0.f : mn;
      corr[r] = exp2f(mrow[r] - muse[r]);
      mrow[r] = mn;
    }
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[4 * n + e] = exp2f(s[4 * n + e] - muse[e >> 1]) * kPScale;
      ls[0] += s[4 * n] + s[4 * n + 1];
      ls[1] += s[4 * n + 2] + s[4 * n + 3];
    }
    lrow[0] = lrow[0] * corr[0] + ls[0];
    lrow[1] = lrow[1] * corr[1] + ls[1];
    // P's A fragment of keys 16 kk .. + 15 is S's column groups 2 kk, 2 kk + 1
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
      split_half2(s[8 * kk], s[8 * kk + 1], ph[kk][0], pl[kk][0]);
      split_half2(s[8 * kk + 2], s[8 * kk + 3], ph[kk][1], pl[kk][1]);
      split_half2(s[8 * kk + 4], s[8 * kk + 5], ph[kk][2], pl[kk][2]);
      split_half2(s[8 * kk + 6], s[8 * kk + 7], ph[kk][3], pl[kk][3]);
    }
  };
  // Tile j + D is loaded into the stage of tile j - 1, which every warpgroup finished (its P.V
  // waited) before this tile's barrier.
#pragma unroll 1
  for (int j = 0; j < n_tiles; ++j) {
    cp_async_wait<D - 1>();       // tile j has landed (this thread's copies)
    wgmma::fence_proxy_async();   // ... visible to the tensor cores' async proxy
    __syncthreads();              // ... and everybody's (and Q, on the first tile)
    if (j + D < n_tiles) load_kv(j + D);
    cp_async_commit();
    if (!active(j)) continue;
    issue_s(j);
    wgmma::wait<0>();
    wgmma::pin(s);
    softmax(j);
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) {
      o[4 * n] *= corr[0], o[4 * n + 1] *= corr[0];
      o[4 * n + 2] *= corr[1], o[4 * n + 3] *= corr[1];
    }
    issue_pv(j);
    wgmma::wait<0>();
    wgmma::pin(o);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const float inv0 = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
  const float inv1 = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
  const int r0 = wq0 + warp * 16 + g;  // row within the CTA
  const int64_t ostride = int64_t(n_head) * HD;
  float* const orow0 = out + int64_t(q0 + r0) * ostride + int64_t(h) * HD + 2 * t;
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) {
    if (r0 < rows) *reinterpret_cast<float2*>(orow0 + 8 * n) = make_float2(o[4 * n] * inv0, o[4 * n + 1] * inv0);
    if (r0 + 8 < rows)
      *reinterpret_cast<float2*>(orow0 + 8 * ostride + 8 * n) = make_float2(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
  }
#else
  __trap();  // not built for sm_90a: prefill_wg_supported() keeps the host from launching it
#endif
}


// ---- Warp-specialized variant (branch wg-pingpong; not yet run on a GPU) ----------------------
// Warpgroup 0 produces (cp.async of K/V tiles into STAGES stages; full/empty mbarriers per
// stage), warpgroups 1 and 2 consume 64 query rows each and take turns issuing their S = Q K^T
// (two named barriers, FA3's ping-pong), so one's softmax runs while the other's MMAs occupy the
// tensor cores. setmaxnreg moves registers from the producer (56) to the consumers (224); ptxas
// (CUDA 13.0): no spills at 56 / 224, 20 bytes at 40 / 232 (the producer's loop), 88 at 24 / 240.
// LO = false drops the lo halves of Q and P (half the MMA work; outside the contract -- a speed
// measurement for the single-pass question in docs/perf-notes.md session 18, not for use).
template <int HD_, int BC_, int STAGES_, bool LO_ = true>
struct WsInstance {
  static constexpr int HD = HD_, BC = BC_, STAGES = STAGES_;
  static constexpr bool LO = LO_;
  static constexpr int THREADS = 384, ROWS = 128;
  static constexpr int Q_TILE = 64 * HD * 2;
  static constexpr int KV_TILE = BC * HD * 2, STAGE = 2 * KV_TILE;
  static constexpr int KV_OFFSET = 2 * 2 * Q_TILE;
  static constexpr int BAR_OFFSET = KV_OFFSET + STAGES * STAGE;
  static constexpr int SMEM = BAR_OFFSET + 2 * STAGES * 8 + 1024;
  static_assert(HD == 128 && BC % 16 == 0 && STAGES >= 2, "Q fragments in registers: hd 128");
  static_assert(SMEM <= 227 * 1024, "dynamic shared memory per block");
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void mbar_init(uint32_t a, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t a) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred P1;\nLAB_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
      "@P1 bra DONE;\nbra LAB_WAIT;\nDONE:\n}\n" ::"r"(a),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
#endif

template <class I>
__global__ void __launch_bounds__(I::THREADS, 1)
    attn_prefill_ws_kernel(const float* __restrict__ q, int64_t q_stride, int T, const int32_t* __restrict__ pos,
                           const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc, int cap, int n_head,
                           int n_head_kv, float scale_log2, int window, float* __restrict__ out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int HD = I::HD, BC = I::BC, STAGES = I::STAGES;
  constexpr int CH = HD / 8, KS = BC / 16;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;
  unsigned char* const smem = smem_raw + (base - raw);
  const uint32_t full0 = base + I::BAR_OFFSET, empty0 = full0 + STAGES * 8;

  pdl_trigger();
  pdl_wait();
  const int tid = threadIdx.x, wg = tid / 128, wt = tid % 128, warp = wt / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);
  const int h = blockIdx.y, kh = h / (n_head / n_head_kv);
  const int q0 = qt * I::ROWS, P0 = pos[0], rows = min(I::ROWS, T - q0);
  const int kv_hi = P0 + q0 + rows - 1;
  const int kv_lo = window > 0 ? max(0, P0 + q0 - window + 1) : 0;
  const int n_tiles = (kv_hi - kv_lo + BC) / BC;
  const uint32_t sKV = base + I::KV_OFFSET;
  if (tid == 0) {
    for (int st = 0; st < STAGES; ++st) {
      mbar_init(full0 + 8 * st, 128);  // every producer thread, once its copies have landed
      mbar_init(empty0 + 8 * st, 8);   // every consumer warp, once its P.V has read the stage
    }
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n");
    const int64_t rs = int64_t(n_head_kv) * HD;
    const uint16_t* kbase = kc + int64_t(kh) * HD;
    const uint16_t* vbase = vc + int64_t(kh) * HD;
    for (int j = 0; j < n_tiles; ++j) {
      const int st = j % STAGES;
      if (j >= STAGES) mbar_wait(empty0 + 8 * st, uint32_t((j / STAGES - 1) & 1));
      const int kb = kv_lo + j * BC;
      const uint32_t sK = sKV + st * I::STAGE, sV = sK + I::KV_TILE;
      for (int i = wt; i < BC * CH; i += 128) {
        const int r = i / CH, c = i % CH;
        const int p = kb + r;
        const bool ok = p <= kv_hi;
        const int64_t row = ok ? int64_t(p % cap) * rs + c * 8 : 0;
        cp_async16(sK + tile_off(r, c, BC), kbase + row, ok);
        cp_async16(sV + tile_off(r, c, BC), vbase + row, ok);
      }
      cp_async_commit();
      if (j >= 1) {  // tile j - 1 has landed: hand it to the consumers (generic -> async proxy first)
        cp_async_wait<1>();
        wgmma::fence_proxy_async();
        mbar_arrive(full0 + 8 * ((j - 1) % STAGES));
      }
    }
    cp_async_wait<0>();
    wgmma::fence_proxy_async();
    mbar_arrive(full0 + 8 * ((n_tiles - 1) % STAGES));
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n");
  const int c = wg - 1;  // consumer 0 or 1: rows [64 c, 64 c + 64) of the CTA
  const int wq0 = c * 64, wrows = min(64, rows - wq0);
  const int w_hi = P0 + q0 + wq0 + wrows - 1;
  const int w_lo = window > 0 ? max(0, P0 + q0 + wq0 - window + 1) : 0;
  unsigned char* const qhi = smem + c * 2 * I::Q_TILE;
  unsigned char* const qlo = qhi + I::Q_TILE;
  for (int i = wt; i < 64 * CH; i += 128) {
    const int r = i / CH, cc = i % CH;
    uint4 hi = make_uint4(0, 0, 0, 0), lo = make_uint4(0, 0, 0, 0);
    if (r < wrows) {
      const float* src = q + int64_t(q0 + wq0 + r) * q_stride + int64_t(h) * HD + cc * 8;
      const float4 a = *reinterpret_cast<const float4*>(src);
      const float4 b = *reinterpret_cast<const float4*>(src + 4);
      split_half2(a.x, a.y, hi.x, lo.x);
      split_half2(a.z, a.w, hi.y, lo.y);
      split_half2(b.x, b.y, hi.z, lo.z);
      split_half2(b.z, b.w, hi.w, lo.w);
    }
    *reinterpret_cast<uint4*>(qhi + tile_off(r, cc, 64)) = hi;
    *reinterpret_cast<uint4*>(qlo + tile_off(r, cc, 64)) = lo;
  }
  bar_sync(3 + c, 128);  // this warpgroup's Q tile is staged
  uint32_t qf[HD / 16][4], qlf[HD / 16][4];
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks) {
    const uint32_t off = tile_off(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * ks + (lane >> 4), 64);
    ldsm_x4(qf[ks], smem_u32(qhi) + off);
    ldsm_x4(qlf[ks], smem_u32(qlo) + off);
  }

  float o[HD / 2], s[BC / 2];
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int qpos0 = P0 + q0 + wq0 + warp * 16 + g;
  const int wpos_lo = P0 + q0 + wq0, wpos_hi = wpos_lo + 63;
  uint32_t ph[KS][4], pl[KS][4];

  // Turns: consumer c issues its S on barrier 1 + c once the other has issued its own (256
  // threads: 128 bar.sync + 128 bar.arrive). Consumer 1 opens consumer 0's first turn; consumer
  // 0 takes one extra turn after the loop so both barriers end balanced.
  if (c == 1) bar_arrive(1, 256);
#pragma unroll 1
  for (int j = 0; j < n_tiles; ++j) {
    const int st = j % STAGES;
    mbar_wait(full0 + 8 * st, uint32_t((j / STAGES) & 1));
    const int kb = kv_lo + j * BC;
    const bool active = wrows > 0 && kb <= w_hi && kb + BC - 1 >= w_lo;
    const uint32_t sK = sKV + st * I::STAGE, sV = sK + I::KV_TILE;
    bar_sync(1 + c, 256);
    if (active) {
      const uint64_t dk = wgmma::desc(sK, 16, 1024);
      wgmma::fence();
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
        const uint64_t ko = uint64_t(((ks >> 2) * BC * 128 + (ks & 3) * 32) >> 4);
        wgmma::rs_kmajor(s, qf[ks], dk + ko, ks > 0);
        if constexpr (I::LO) wgmma::rs_kmajor(s, qlf[ks], dk + ko, 1);
      }
      wgmma::commit();
    }
    bar_arrive(2 - c, 256);  // the other consumer's turn
    if (active) {
      wgmma::wait<0>();
      wgmma::pin(s);
      const bool full = kb + BC - 1 <= wpos_lo && kb + BC - 1 <= kv_hi && (window == 0 || wpos_hi - kb < window);
      float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int n = 0; n < BC / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[4 * n + e] * scale_log2;
          if (!full) {
            const int kp = kb + n * 8 + 2 * t + (e & 1), qp = qpos0 + (e >> 1) * 8;
            if (!(kp <= qp && kp <= kv_hi && (window == 0 || qp - kp < window))) x = -INFINITY;
          }
          s[4 * n + e] = x;
          mt[e >> 1] = fmaxf(mt[e >> 1], x);
        }
      float corr[2], muse[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 1));
        mt[r] = fmaxf(mt[r], __shfl_xor_sync(0xffffffffu, mt[r], 2));
        const float mn = fmaxf(mrow[r], mt[r]);
        muse[r] = mn == -INFINITY ? 0.f : mn;
        corr[r] = exp2f(mrow[r] - muse[r]);
        mrow[r] = mn;
      }
      float ls[2] = {0.f, 0.f};
#pragma unroll
      for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[4 * n + e] = exp2f(s[4 * n + e] - muse[e >> 1]) * kPScale;
        ls[0] += s[4 * n] + s[4 * n + 1];
        ls[1] += s[4 * n + 2] + s[4 * n + 3];
      }
      lrow[0] = lrow[0] * corr[0] + ls[0];
      lrow[1] = lrow[1] * corr[1] + ls[1];
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        split_half2(s[8 * kk], s[8 * kk + 1], ph[kk][0], pl[kk][0]);
        split_half2(s[8 * kk + 2], s[8 * kk + 3], ph[kk][1], pl[kk][1]);
        split_half2(s[8 * kk + 4], s[8 * kk + 5], ph[kk][2], pl[kk][2]);
        split_half2(s[8 * kk + 6], s[8 * kk + 7], ph[kk][3], pl[kk][3]);
      }
#pragma unroll
      for (int n = 0; n < HD / 8; ++n) {
        o[4 * n] *= corr[0], o[4 * n + 1] *= corr[0];
        o[4 * n + 2] *= corr[1], o[4 * n + 3] *= corr[1];
      }
      const uint64_t dv = wgmma::desc(sV, BC * 128, 1024);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        const uint64_t vo = uint64_t((kk * 16 * 128) >> 4);
        wgmma::rs(o, ph[kk], dv + vo, 1);
        if constexpr (I::LO) wgmma::rs(o, pl[kk], dv + vo, 1);
      }
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::pin(o);
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(empty0 + 8 * st);  // this warp is done with the stage
  }
  if (c == 0) bar_sync(1, 256);

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const float inv0 = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
  const float inv1 = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
  const int r0 = wq0 + warp * 16 + g;
  const int64_t ostride = int64_t(n_head) * HD;
  float* const orow0 = out + int64_t(q0 + r0) * ostride + int64_t(h) * HD + 2 * t;
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) {
    if (r0 < rows) *reinterpret_cast<float2*>(orow0 + 8 * n) = make_float2(o[4 * n] * inv0, o[4 * n + 1] * inv0);
    if (r0 + 8 < rows)
      *reinterpret_cast<float2*>(orow0 + 8 * ostride + 8 * n) = make_float2(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
  }
#else
  __trap();
#endif
}

// hd 128: 64-key tiles, Q in registers, 64 + 64 KiB; hd 256: 32-key tiles, 128 + 64 KiB.
template <class F>
void with_instance(int hd, F f) {
  if (hd == 128)
    f(Instance<128, 64, 2, 2, true>{});
  else
    f(Instance<256, 32, 2, 2, false>{});
}

}  // namespace

namespace detail {

bool prefill_wg_supported(int hd) {
#if defined(KILN_SM90A)
  if (hd != 128 && hd != 256) return false;
  static const bool ok = [] {  // no device: false (the callers' own checks report that)
    int dev = 0, major = 0, minor = 0;
    const bool have = cudaGetDevice(&dev) == cudaSuccess &&
                      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
                      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess;
    (void)cudaGetLastError();
    return have && major == 9 && minor == 0;
  }();
  return ok;
#else
  (void)hd;
  return false;
#endif
}

void prefill_wg(const float* q, int64_t q_stride, int T, const int32_t* pos, const uint16_t* kc,
                const uint16_t* vc, int cap, int n_head, int n_head_kv, int hd, float scale_log2, int window,
                float* out, cudaStream_t s) {
  KILN_REQUIRE(prefill_wg_supported(hd), "attention_prefill: the wgmma path does not serve head_dim ", hd,
               " on this device/build");
  if (hd == 128) {  // the warp-specialized kernel (experiment on this branch)
    using W = WsInstance<128, 64, 4>;
    auto kernel = attn_prefill_ws_kernel<W>;
    static const bool configured = [&] {
      KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, W::SMEM));
      return true;
    }();
    (void)configured;
    const dim3 grid(unsigned((T + W::ROWS - 1) / W::ROWS), unsigned(n_head));
    launch_pdl(kernel, grid, dim3(W::THREADS), size_t(W::SMEM), s, q, q_stride, T, pos, kc, vc, cap, n_head,
               n_head_kv, scale_log2, window, out);
    return;
  }
  with_instance(hd, [&](auto i) {
    using I = decltype(i);
    using C = WgCfg<I>;
    auto kernel = attn_prefill_wg_kernel<I>;
    static const bool configured = [&] {  // once per instantiation
      KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
      return true;
    }();
    (void)configured;
    const dim3 grid(unsigned((T + C::ROWS - 1) / C::ROWS), unsigned(n_head));
    launch_pdl(kernel, grid, dim3(C::THREADS), size_t(C::SMEM), s, q, q_stride, T, pos, kc, vc, cap, n_head,
               n_head_kv, scale_log2, window, out);
  });
}

}  // namespace detail
}  // namespace kiln
