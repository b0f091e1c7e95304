// Prefill attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): the path
// attention_prefill takes for head_dim 128 where the device and the build allow it
// (detail::prefill_wg_supported). Same semantics, split precision and contract as the mma.sync
// kernel (kernels/attention_prefill.cu): Q and P are split into FP16 hi + lo, K and V are the
// cache's FP16, F32 accumulation, exp2 online softmax with P scaled by 2^15.
//
// CTA = NWG warpgroups x 64 query rows of one head (warp w of a warpgroup owns rows 16 w ..
// 16 w + 15, as in the mma.sync kernel), all of them walking the row tile's key tiles of BC
// positions, which stream through STAGES shared-memory stages (cp.async, 128-byte swizzle).
//   S [64 x BC]  = Q_hi K^T + Q_lo K^T    (A: Q in shared memory, B: K tile, both K-major)
//   O [64 x hd] += P_hi V + P_lo V        (A: P in registers, B: V tile, MN-major)
// Q's hi and lo tiles stay in shared memory for the whole loop (wgmma reads A from there or from
// registers; P, which changes every tile, comes from registers). A warpgroup whose rows end
// before a key tile starts skips its MMAs for that tile (the CTA's last row sets the tile range).
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/attention.cuh"
#include "kernels/attention_prefill_wg.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/mma_f16.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/wgmma.cuh"

namespace kiln {
namespace {

using mmadev::kPScale;
using mmadev::split_half2;

template <int HD, int BC, int NWG, int STAGES>
struct WgCfg {
  static constexpr int ROWS = 64 * NWG;       // query rows per CTA
  static constexpr int THREADS = 128 * NWG;
  static constexpr int Q_TILE = 64 * HD * 2;  // bytes of one warpgroup's Q_hi (or Q_lo)
  static constexpr int KV_TILE = BC * HD * 2;
  static constexpr int KV_OFFSET = NWG * 2 * Q_TILE;
  static constexpr int STAGE = 2 * KV_TILE;  // K then V
  static constexpr int SMEM = KV_OFFSET + STAGES * STAGE + 1024;  // + alignment of the atoms
  static_assert(HD % 64 == 0 && BC % 64 == 0 && STAGES >= 2, "whole 128-byte swizzle atoms");
  static_assert(SMEM <= 227 * 1024, "dynamic shared memory per block");
};

// Device code only where wgmma exists (sm_90a device passes); elsewhere the kernel is a trap.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Byte offset of 16-byte chunk c of row r in a swizzled tile of `rows` rows (wgmma.cuh's layout:
// 64-element atoms along the row, each rows x 128 bytes).
__device__ __forceinline__ uint32_t tile_off(int r, int c, int rows) {
  return uint32_t((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}
#endif

template <int HD, int BC, int NWG, int STAGES>
__global__ void __launch_bounds__(WgCfg<HD, BC, NWG, STAGES>::THREADS, 1)
    attn_prefill_wg_kernel(const float* __restrict__ q, int64_t q_stride, int T, const int32_t* __restrict__ pos,
                           const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc, int cap, int n_head,
                           int n_head_kv, float scale_log2, int window, float* __restrict__ out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WgCfg<HD, BC, NWG, STAGES>;
  constexpr int CH = HD / 8;  // 16-byte chunks per Q/K/V row
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
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < n_tiles) load_kv(s);
    cp_async_commit();  // one group per stage, empty or not: the waits below count groups
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

  float o[HD / 2];
#pragma unroll
  for (int i = 0; i < HD / 2; ++i) o[i] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int qpos0 = P0 + q0 + wq0 + warp * 16 + g;  // this thread's rows: qpos0, qpos0 + 8
  const int wpos_lo = P0 + q0 + wq0, wpos_hi = wpos_lo + 63;

  for (int j = 0; j < n_tiles; ++j) {
    if (j + STAGES - 1 < n_tiles) load_kv(j + STAGES - 1);
    cp_async_commit();
    cp_async_wait<STAGES - 1>();  // tile j has landed (this thread's copies)
    wgmma::fence_proxy_async();   // ... visible to the tensor cores' async proxy
    __syncthreads();              // ... and everybody's (and Q, on the first tile)
    const int kb = kv_lo + j * BC;
    if (wrows > 0 && kb <= w_hi && kb + BC - 1 >= w_lo) {  // warpgroup-uniform
      const uint32_t sK = sKV + (j % STAGES) * C::STAGE, sV = sK + C::KV_TILE;
      const uint64_t dk = wgmma::desc(sK, 16, 1024);
      float s[BC / 2];
#pragma unroll
      for (int i = 0; i < BC / 2; ++i) s[i] = 0.f;
      wgmma::fence();
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
        // k-step ks: atom ks / 4, 32 bytes per step within it
        const uint64_t qo = uint64_t(((ks >> 2) * 64 * 128 + (ks & 3) * 32) >> 4);
        const uint64_t ko = uint64_t(((ks >> 2) * BC * 128 + (ks & 3) * 32) >> 4);
        if constexpr (BC == 64) {
          wgmma::wgmma_ss_n64(s, dq_hi + qo, dk + ko, ks > 0);
          wgmma::wgmma_ss_n64(s, dq_lo + qo, dk + ko, 1);
        } else {
          wgmma::wgmma_ss_n128(s, dq_hi + qo, dk + ko, ks > 0);
          wgmma::wgmma_ss_n128(s, dq_lo + qo, dk + ko, 1);
        }
      }
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::pin(s);

      // mask + online softmax (exp2 domain); s[4 n + e]: row g + 8 (e >> 1), key kb + 8 n + 2 t + (e & 1)
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
      for (int n = 0; n < HD / 8; ++n) {
        o[4 * n] *= corr[0], o[4 * n + 1] *= corr[0];
        o[4 * n + 2] *= corr[1], o[4 * n + 3] *= corr[1];
      }
      // P's A fragment of keys 16 kk .. + 15 is S's column groups 2 kk, 2 kk + 1
      uint32_t ph[BC / 16][4], pl[BC / 16][4];
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {
        split_half2(s[8 * kk], s[8 * kk + 1], ph[kk][0], pl[kk][0]);
        split_half2(s[8 * kk + 2], s[8 * kk + 3], ph[kk][1], pl[kk][1]);
        split_half2(s[8 * kk + 4], s[8 * kk + 5], ph[kk][2], pl[kk][2]);
        split_half2(s[8 * kk + 6], s[8 * kk + 7], ph[kk][3], pl[kk][3]);
      }
      // V tile, MN-major: 16 keys per k-step (2048 bytes), LBO = the next 64 dims' atom
      const uint64_t dv = wgmma::desc(sV, BC * 128, 1024);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {
        const uint64_t vo = uint64_t((kk * 16 * 128) >> 4);
        if constexpr (HD == 128) {
          wgmma::wgmma_rs_n128(o, ph[kk], dv + vo, 1);
          wgmma::wgmma_rs_n128(o, pl[kk], dv + vo, 1);
        } else {
          wgmma::wgmma_rs_n256(o, ph[kk], dv + vo, 1);
          wgmma::wgmma_rs_n256(o, pl[kk], dv + vo, 1);
        }
      }
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::pin(o);
    }
    __syncthreads();  // stage j % STAGES is refilled by the next iteration's load
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

// The instantiation per head_dim (hd 128 only, so far).
constexpr int kHd = 128, kBc = 64, kNwg = 2, kStages = 3;
using Cfg128 = WgCfg<kHd, kBc, kNwg, kStages>;

}  // namespace

namespace detail {

bool prefill_wg_supported(int hd) {
#if defined(KILN_SM90A)
  if (hd != kHd) return false;
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
  auto kernel = attn_prefill_wg_kernel<kHd, kBc, kNwg, kStages>;
  static const bool configured = [&] {
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg128::SMEM));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned((T + Cfg128::ROWS - 1) / Cfg128::ROWS), unsigned(n_head));
  launch_pdl(kernel, grid, dim3(Cfg128::THREADS), size_t(Cfg128::SMEM), s, q, q_stride, T, pos, kc, vc, cap, n_head,
             n_head_kv, scale_log2, window, out);
}

}  // namespace detail
}  // namespace kiln
