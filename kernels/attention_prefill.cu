// Prefill attention on tensor cores: flash-attention-2 style tiled online softmax.
//
// CTA = 4 warps = 64 query rows of one head (16 rows per warp) x one slice of DV output dims
// (DV = hd for 64/128/256; hd 512 runs two CTAs per row tile, each computing the full 512-wide
// scores but only 256 output dims, which keeps the accumulator in registers). Key tiles of BC
// positions stream through shared memory with cp.async (two stages); S = Q K^T and O += P V use
// mma.sync.m16n8k16 with FP16 operands and F32 accumulation. Q is converted float -> FP16 when
// staged. Softmax in the exp2 domain (x = s * scale * log2 e), running max per row, fully masked
// rows use 0 as their reference so no -inf - -inf = NaN arises; unwritten/out-of-range key rows
// are zero-filled, so garbage in the cache beyond the last position cannot reach P.V.
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"

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
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
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
  // hd <= 128: Q is only staged once (its fragments then live in registers), in the space of
  // K stage 1, which the first prefetch overwrites after Q has been read.
  static constexpr bool Q_IN_REGS = HD <= 128;
  static constexpr int Q_OFFSET = Q_IN_REGS ? K_BYTES : 0;
  static constexpr int K_OFFSET = Q_IN_REGS ? 0 : Q_BYTES;
  static constexpr int SMEM = (Q_IN_REGS ? 0 : Q_BYTES) + 2 * (K_BYTES + V_BYTES);
  static constexpr int MIN_BLOCKS = Q_IN_REGS ? 3 : 1;
  static_assert(!Q_IN_REGS || Q_BYTES <= K_BYTES, "Q must fit in K stage 1");
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
  const uint32_t sK0 = smem_u32(smem) + C::K_OFFSET;
  const uint32_t sV0 = sK0 + 2 * C::K_BYTES;
  unsigned char* const q_smem = smem + C::Q_OFFSET;

  asm volatile("griddepcontrol.wait;" ::: "memory");
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

  // Q: float -> FP16, 8 values (one 16-byte chunk) per step; rows past T are zero.
  for (int i = tid; i < BR * C::QC; i += kWarps * 32) {
    const int r = i / C::QC, c = i % C::QC;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < rows) {
      const float* src = q + int64_t(q0 + r) * q_stride + int64_t(h) * HD + c * 8;
      const float4 a = *reinterpret_cast<const float4*>(src);
      const float4 b = *reinterpret_cast<const float4*>(src + 4);
      v = make_uint4(pack_half2(a.x, a.y), pack_half2(a.z, a.w), pack_half2(b.x, b.y),
                     pack_half2(b.z, b.w));
    }
    *reinterpret_cast<uint4*>(q_smem + swz(r, c, C::QC)) = v;
  }

  // hd <= 128: the warp's Q fragments stay in registers for the whole key loop
  constexpr bool kQReg = C::Q_IN_REGS;
  uint32_t qf[kQReg ? HD / 16 : 1][4];
  if constexpr (kQReg) {
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk)
      ldsm_x4(qf[kk], sQ + swz(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC));
    __syncthreads();  // every warp holds its Q before K stage 1 (Q's space) is refilled
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

    // S = Q K^T (16 x BC per warp)
    float sacc[BC / 8][4];
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) sacc[n][0] = sacc[n][1] = sacc[n][2] = sacc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[4];
      if constexpr (kQReg) {
        a[0] = qf[kk][0], a[1] = qf[kk][1], a[2] = qf[kk][2], a[3] = qf[kk][3];
      } else {
        ldsm_x4(a, sQ + swz(wr0 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C::QC));
      }
#pragma unroll
      for (int n2 = 0; n2 < BC / 16; ++n2) {
        uint32_t b[4];
        ldsm_x4(b, sK + swz(n2 * 16 + (lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1), C::QC));
        mma16816(sacc[2 * n2], a, b[0], b[1]);
        mma16816(sacc[2 * n2 + 1], a, b[2], b[3]);
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
    float ls[2] = {0.f, 0.f};
    uint32_t pa[BC / 16][4];
#pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
      const float p0 = exp2f(sacc[n][0] - muse[0]), p1 = exp2f(sacc[n][1] - muse[0]);
      const float p2 = exp2f(sacc[n][2] - muse[1]), p3 = exp2f(sacc[n][3] - muse[1]);
      ls[0] += p0 + p1;
      ls[1] += p2 + p3;
      pa[n >> 1][(n & 1) * 2 + 0] = pack_half2(p0, p1);
      pa[n >> 1][(n & 1) * 2 + 1] = pack_half2(p2, p3);
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

    // O += P V
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
#pragma unroll
      for (int n2 = 0; n2 < DV / 16; ++n2) {
        uint32_t b[4];
        ldsm_x4_t(b, sV + swz(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * n2 + (lane >> 4), C::VC));
        mma16816(o[2 * n2], pa[kk], b[0], b[1]);
        mma16816(o[2 * n2 + 1], pa[kk], b[2], b[3]);
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
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((T + BR - 1) / BR), unsigned(n_head), unsigned(HD / DV));
  cfg.blockDim = dim3(kWarps * 32);
  cfg.dynamicSmemBytes = C::SMEM;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, q, q_stride, T, pos, kc, vc, cap, n_head,
                                     n_head_kv, scale_log2, window, out));
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
