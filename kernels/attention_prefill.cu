// Prefill attention on tensor cores: flash-attention-2 style tiled online softmax.
//
// CTA = 4 warps = 64 query rows of one head (16 rows per warp) x one slice of DV output dims
// (DV = hd for 64/128/256; hd 512 runs two CTAs per row tile, each computing the full 512-wide
// scores but only 256 output dims, which keeps the accumulator in registers). Key tiles of BC
// positions stream through shared memory with cp.async (two stages); S = Q K^T and O += P V use
// mma.sync.m16n8k16 with FP16 operands and F32 accumulation. Softmax in the exp2 domain
// (x = s * scale * log2 e), running max per row, fully masked rows use 0 as their reference so
// no -inf - -inf = NaN arises; unwritten/out-of-range key rows are zero-filled, so garbage in the
// cache beyond the last position cannot reach P.V.
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
//
// Contract (kernels/attention.cuh): per output row attending n keys, max_d |out - ref| <=
// (3e-5 + (n / 8) * 2^-23) max_d |ref| vs the double reference on the same FP16 K/V; the n term
// is the tensor cores' truncating F32 accumulation into O, one possible ulp per mma step.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"

namespace kiln {
namespace {

constexpr int kWarps = 4;
constexpr int BR = 16 * kWarps;

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Splits the pair (a, b) into FP16 halves: hi = fp16 (a, b) rounded to nearest, lo = fp16 of the
// remainders, so a ~= hi.x + lo.x, b ~= hi.y + lo.y to 2^-22 relative (see the file comment).
// a - float(hi.x) is exact in float (a and hi.x are within half an FP16 ulp of each other).
__device__ __forceinline__ void split_half2(float a, float b, uint32_t& hi, uint32_t& lo) {
  const __half2 h = __floats2half2_rn(a, b);
  const float2 hf = __half22float2(h);
  const __half2 l = __floats2half2_rn(a - hf.x, b - hf.y);
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&l);
}

// Byte offset of 16-byte chunk c of row r in a tile whose rows are `chunks` chunks long; the
// XOR swizzle spreads the 8 rows an ldmatrix reads over all banks.
__device__ __forceinline__ uint32_t swz(int r, int c, int chunks) {
  return uint32_t((r * chunks + (c ^ (r & 7))) * 16);
}

template <int HD, int DV, int BC>
struct Cfg {
  static constexpr int QC = HD / 8;  // 16-byte chunks per Q/K row
  static constexpr int VC = DV / 8;  // per V row
  static constexpr int Q_BYTES = BR * HD * 2;
  static constexpr int K_BYTES = BC * HD * 2;
  static constexpr int V_BYTES = BC * DV * 2;
  // Q_hi and Q_lo tiles, Q_BYTES each. hd <= 128: they are only staged once (their fragments then
  // live in registers), Q_hi in the space of K stage 1 and Q_lo in that of V stage 1, which the
  // first prefetch overwrites after Q has been read. hd >= 256: both stay in shared memory ahead
  // of the K/V stages (hd 512: 64 + 64 + 2 * (32 + 16) = 224 KiB, under the 227 KiB per block).
  static constexpr bool Q_IN_REGS = HD <= 128;
  static constexpr int Q_OFFSET = Q_IN_REGS ? K_BYTES : 0;
  static constexpr int QLO_OFFSET = Q_IN_REGS ? 2 * K_BYTES + V_BYTES : Q_BYTES;
  static constexpr int K_OFFSET = Q_IN_REGS ? 0 : 2 * Q_BYTES;
  static constexpr int SMEM = (Q_IN_REGS ? 0 : 2 * Q_BYTES) + 2 * (K_BYTES + V_BYTES);
  // Register budget: hd 64 fits 3 CTAs/SM (168 registers); hd 128's 2 x 32 Q fragment registers
  // plus 64 accumulators do not, so it runs 2 CTAs/SM (255 registers) instead of spilling.
  static constexpr int MIN_BLOCKS = HD <= 64 ? 3 : Q_IN_REGS ? 2 : 1;
  static_assert(!Q_IN_REGS || (Q_BYTES <= K_BYTES && Q_BYTES <= V_BYTES),
                "Q_hi / Q_lo must fit in K / V stage 1");
  static_assert(SMEM <= 227 * 1024, "dynamic shared memory per block");
};

template <int HD, int DV, int BC>
__global__ void __launch_bounds__(kWarps * 32, (Cfg<HD, DV, BC>::MIN_BLOCKS))
    attn_prefill_kernel(const float* __restrict__ q, int64_t q_stride, int T,
                        const int32_t* __restrict__ pos, const uint16_t* __restrict__ kc,
                        const uint16_t* __restrict__ vc, int cap, int n_head, int n_head_kv,
                        float scale_log2, int window, float* __restrict__ out) {
  using C = Cfg<HD, DV, BC>;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = smem_u32(smem) + C::Q_OFFSET;
  const uint32_t sQlo = smem_u32(smem) + C::QLO_OFFSET;
  const uint32_t sK0 = smem_u32(smem) + C::K_OFFSET;
  const uint32_t sV0 = sK0 + 2 * C::K_BYTES;
  unsigned char* const q_smem = smem + C::Q_OFFSET;
  unsigned char* const qlo_smem = smem + C::QLO_OFFSET;

  pdl_trigger();
  pdl_wait();
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int n_qt = int(gridDim.x);
  const int qt = n_qt - 1 - int(blockIdx.x);  // heaviest (latest) row tiles first
  const int h = blockIdx.y;
  const int kh = h / (n_head / n_head_kv);
  const int dv0 = blockIdx.z * DV;
  const int q0 = qt * BR;
  const int P0 = pos[0];
  const int rows = min(BR, T - q0);

  // key range of this row tile: [kv_lo, kv_hi]
  const int kv_hi = P0 + q0 + rows - 1;
  const int kv_lo = window > 0 ? max(0, P0 + q0 - window + 1) : 0;
  const int n_tiles = (kv_hi - kv_lo + BC) / BC;
  const int64_t rs = int64_t(n_head_kv) * HD;
  const uint16_t* kbase = kc + int64_t(kh) * HD;
  const uint16_t* vbase = vc + int64_t(kh) * HD + dv0;

  auto load_kv = [&](int tile, int stage) {
    const int kb = kv_lo + tile * BC;
    const uint32_t sK = sK0 + stage * C::K_BYTES, sV = sV0 + stage * C::V_BYTES;
#pragma unroll
    for (int i = tid; i < BC * C::QC; i += kWarps * 32) {
      const int r = i / C::QC, c = i % C::QC;
      const int p = kb + r;
      const bool ok = p <= kv_hi;
      const int64_t row = ok ? int64_t(p % cap) : 0;
      cp_async16(sK + swz(r, c, C::QC), kbase + row * rs + c * 8, ok);
    }
#pragma unroll
    for (int i = tid; i < BC * C::VC; i += kWarps * 32) {
      const int r = i / C::VC, c = i % C::VC;
      const int p = kb + r;
      const bool ok = p <= kv_hi;
      const int64_t row = ok ? int64_t(p % cap) : 0;
      cp_async16(sV + swz(r, c, C::VC), vbase + row * rs + c * 8, ok);
    }
  };

  load_kv(0, 0);
  cp_async_commit();

  // Q: float -> FP16 hi + lo, 8 values (one 16-byte chunk of each tile) per step; rows past T
  // are zero.
  for (int i = tid; i < BR * C::QC; i += kWarps * 32) {
    const int r = i / C::QC, c = i % C::QC;
    uint4 hi = make_uint4(0, 0, 0, 0), lo = make_uint4(0, 0, 0, 0);
    if (r < rows) {
      const float* src = q + int64_t(q0 + r) * q_stride + int64_t(h) * HD + c * 8;
      const float4 a = *reinterpret_cast<const float4*>(src);
      const float4 b = *reinterpret_cast<const float4*>(src + 4);
      split_half2(a.x, a.y, hi.x, lo.x);
      split_half2(a.z, a.w, hi.y, lo.y);
      split_half2(b.x, b.y, hi.z, lo.z);
      split_half2(b.z, b.w, hi.w, lo.w);
    }
    *reinterpret_cast<uint4*>(q_smem + swz(r, c, C::QC)) = hi;
    *reinterpret_cast<uint4*>(qlo_smem + swz(r, c, C::QC)) = lo;
  }

  // hd <= 128: the warp's Q_hi and Q_lo fragments stay in registers for the whole key loop
  constexpr bool kQReg = C::Q_IN_REGS;
  uint32_t qf[kQReg ? HD / 16 : 1][4], qlf[kQReg ? HD / 16 : 1][4];
  if constexpr (kQReg) {
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const uint32_t off = swz(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC);
      ldsm_x4(qf[kk], sQ + off);
      ldsm_x4(qlf[kk], sQlo + off);
    }
    __syncthreads();  // every warp holds its Q before K/V stage 1 (Q's space) is refilled
  }

  float o[DV / 8][4];
#pragma unroll
  for (int n = 0; n < DV / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const int wr0 = warp * 16;                      // warp's first row in the tile
  const int qpos0 = P0 + q0 + wr0 + (lane >> 2);  // this thread's rows: qpos0, qpos0 + 8
  const int wq_lo = P0 + q0 + wr0, wq_hi = wq_lo + 15;

  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) {
      load_kv(j + 1, (j + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint32_t sK = sK0 + (j & 1) * C::K_BYTES, sV = sV0 + (j & 1) * C::V_BYTES;
    const int kb = kv_lo + j * BC;

    // S = Q_hi K^T + Q_lo K^T (16 x BC per warp)
    float sacc[BC / 8][4];
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[4], al[4];
      if constexpr (kQReg) {
        a[0] = qf[kk][0], a[1] = qf[kk][1], a[2] = qf[kk][2], a[3] = qf[kk][3];
        al[0] = qlf[kk][0], al[1] = qlf[kk][1], al[2] = qlf[kk][2], al[3] = qlf[kk][3];
      } else {
        const uint32_t off = swz(wr0 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC);
        ldsm_x4(a, sQ + off);
        ldsm_x4(al, sQlo + off);
      }
#pragma unroll
      for (int n2 = 0; n2 < BC / 16; ++n2) {
        uint32_t b[4];
        ldsm_x4(b, sK + swz(n2 * 16 + (lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1), C::QC));
        mma16816(sacc[2 * n2], a, b[0], b[1]);
        mma16816(sacc[2 * n2], al, b[0], b[1]);
        mma16816(sacc[2 * n2 + 1], a, b[2], b[3]);
        mma16816(sacc[2 * n2 + 1], al, b[2], b[3]);
      }
    }

    // mask + online softmax (exp2 domain)
    const bool full = kb + BC - 1 <= wq_lo && kb + BC - 1 <= kv_hi &&
                      (window == 0 || wq_hi - kb < window);
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = sacc[n][e] * scale_log2;
        if (!full) {
          const int kp = kb + n * 8 + (lane & 3) * 2 + (e & 1);
          const int qp = qpos0 + (e >> 1) * 8;
          if (!(kp <= qp && kp <= kv_hi && (window == 0 || qp - kp < window))) x = -INFINITY;
        }
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
      mrow[r] = mn;
    }
    // P = 2^15 exp2(x - m) (exact power-of-two factor, see the file comment), in place of S
    constexpr float kPScale = 32768.f;
    float ls[2] = {0.f, 0.f};
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) sacc[n][e] = exp2f(sacc[n][e] - muse[e >> 1]) * kPScale;
      ls[0] += sacc[n][0] + sacc[n][1];
      ls[1] += sacc[n][2] + sacc[n][3];
    }
    lrow[0] = lrow[0] * corr[0] + ls[0];
    lrow[1] = lrow[1] * corr[1] + ls[1];
#pragma unroll
    for (int n = 0; n < DV / 8; ++n) {
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
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
        mma16816(o[2 * n2], pl, b[0], b[1]);
        mma16816(o[2 * n2 + 1], ph, b[2], b[3]);
        mma16816(o[2 * n2 + 1], pl, b[2], b[3]);
      }
    }
    __syncthreads();  // this stage is overwritten by the load issued next iteration
  }

  // finalize: full row sums across the quad, normalize, store float2 pairs
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
    lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
  }
  const float inv0 = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
  const float inv1 = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
  const int r0 = wr0 + (lane >> 2);
  const int64_t ostride = int64_t(n_head) * HD;
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
}

template <int HD, int DV, int BC>
void launch_prefill(const float* q, int64_t q_stride, int T, const int32_t* pos,
                    const uint16_t* kc, const uint16_t* vc, int cap, int n_head, int n_head_kv,
                    float scale_log2, int window, float* out, cudaStream_t s) {
  using C = Cfg<HD, DV, BC>;
  auto kernel = attn_prefill_kernel<HD, DV, BC>;
  static const bool attr_set = [&] {
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
    return true;
  }();
  (void)attr_set;
  launch_pdl(kernel, dim3(unsigned((T + BR - 1) / BR), unsigned(n_head), unsigned(HD / DV)), dim3(kWarps * 32),
             size_t(C::SMEM), s, q, q_stride, T, pos, kc, vc, cap, n_head, n_head_kv, scale_log2, window, out);
}

}  // namespace

void attention_prefill(const float* q, int64_t q_stride, int T, const int32_t* pos,
                       const uint16_t* k_cache, const uint16_t* v_cache, int64_t cap, int n_head,
                       int n_head_kv, int hd, float scale, int window, float* out, cudaStream_t s) {
  KILN_REQUIRE(hd == 64 || hd == 128 || hd == 256 || hd == 512, "attention_prefill: head_dim ", hd,
               " not in {64, 128, 256, 512}");
  KILN_REQUIRE(n_head_kv > 0 && n_head > 0 && n_head % n_head_kv == 0,
               "attention_prefill: n_head ", n_head, " not a multiple of n_head_kv ", n_head_kv);
  KILN_REQUIRE(T >= 0 && cap > 0 && cap <= INT32_MAX && window >= 0, "attention_prefill: T ", T,
               " cap ", cap, " window ", window);
  if (q_stride == 0) q_stride = int64_t(n_head) * hd;
  KILN_REQUIRE(q_stride >= int64_t(n_head) * hd && q_stride % 4 == 0, "attention_prefill: q_stride ",
               q_stride, " must be >= ", int64_t(n_head) * hd, " and a multiple of 4");
  KILN_REQUIRE(((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k_cache) |
                 reinterpret_cast<uintptr_t>(v_cache) | reinterpret_cast<uintptr_t>(out)) & 15) == 0,
               "attention_prefill: q, caches and out need 16-byte alignment");
  if (T == 0) return;
  const float sl2 = scale * 1.4426950408889634f;
  const int c = int(cap);
  switch (hd) {
    // hd 64: 64-key tiles (8 KiB per K/V stage, Q = 8 KiB fits K stage 1), 32 KiB per CTA
    case 64: launch_prefill<64, 64, 64>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, sl2, window, out, s); break;
    case 128: launch_prefill<128, 128, 64>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, sl2, window, out, s); break;
    case 256: launch_prefill<256, 256, 32>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, sl2, window, out, s); break;
    default: launch_prefill<512, 256, 32>(q, q_stride, T, pos, k_cache, v_cache, c, n_head, n_head_kv, sl2, window, out, s); break;
  }
}

}  // namespace kiln
