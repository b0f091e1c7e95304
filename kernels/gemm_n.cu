// gemm_n integer (dp4a) and float paths, dispatch. Numerics: kernels/gemm_n_plan.h.
#include "kernels/gemm_n.cuh"

#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/common/device.cuh"
#include "kernels/common/error.h"
#include "kernels/gemm_n_plan.h"

namespace kiln {

namespace {

namespace plan = gemm_n_plan;

constexpr int kWarps = plan::kWarpsPerCta;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 4;           // rows per warp (R)
constexpr int kRowBuf = 1088 + 32;  // staging bytes per row: largest chunk (32 Q8_0 blocks) + misalignment + 1 word

struct Mat {
  const uint8_t* data;
  const uint8_t* end;  // data + M * row_bytes
  float* y;
  int64_t M;
  int64_t row_bytes;
  int type;
  int S;
  int cta_begin;
  int rows_per_cta;
};

struct Params {
  Mat mats[kGemmNMaxMats];
  int count;
  const void* x;  // BlockQ8_1* (integer path) or float* (float path)
  int64_t K;
  int64_t units;   // units per row
  int64_t x_stride;  // elements (float) or blocks (Q8_1) between columns
  int add;
  int vec;  // float path: 16-byte vector loads allowed
};

__device__ __forceinline__ uint4 ld_stream_v4(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Unaligned little-endian reads from shared memory (buffers are padded by one word).
template <int NW>
__device__ __forceinline__ void lds_words(const uint8_t* base, int off, uint32_t (&out)[NW]) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(base) + (off >> 2);
  const uint32_t sh = uint32_t(off & 3) * 8;
  uint32_t a[NW + 1];
#pragma unroll
  for (int i = 0; i <= NW; ++i) a[i] = w[i];
#pragma unroll
  for (int i = 0; i < NW; ++i) out[i] = __funnelshift_r(a[i], a[i + 1], sh);
}
__device__ __forceinline__ uint32_t lds_u16(const uint8_t* base, int off) {
  return uint32_t(base[off]) | (uint32_t(base[off + 1]) << 8);
}
__device__ __forceinline__ float h2f(uint32_t h) { return __half2float(__ushort_as_half((unsigned short)h)); }

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

__device__ __forceinline__ void cp_async16(uint8_t* dst, const uint8_t* src, int src_bytes) {
  const uint32_t d = uint32_t(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
}

constexpr int kStages = 3;  // chunks in flight per warp (cp.async ring)
constexpr size_t kQSmem = size_t(kWarps) * kStages * kRows * kRowBuf;

// Issues the asynchronous copy of chunk c of rows row0.. into one ring stage: aligned 16-byte
// segments covering each row's chunk; bytes past the end of the matrix are zero-filled, not read.
__device__ __forceinline__ void issue_chunk(const Mat& m, int64_t row0, int64_t c, int bpc, int bb, int len,
                                            uint8_t (*buf)[kRowBuf], int lane) {
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = row0 + r;
    if (row >= m.M) continue;
    const uint8_t* g = m.data + row * m.row_bytes + c * int64_t(bpc) * bb;
    const uint8_t* a0 = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(g) & ~uintptr_t(15));
    const int nseg = (int(g - a0) + len + 15) >> 4;
    for (int i = lane; i < nseg; i += 32) {
      const uint8_t* src = a0 + 16 * i;
      const int64_t left = m.end - src;
      cp_async16(&buf[r][16 * i], src, left >= 16 ? 16 : int(left));
    }
  }
}

template <int N>
__global__ void __launch_bounds__(kThreads, N <= 4 ? 4 : 3) gemm_n_q8_1_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) uint8_t qsmem[];
  __shared__ float red[kWarps][kRows][N];
  const int mi = find_mat(p, blockIdx.x);
  const Mat& m = p.mats[mi];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int S = m.S;
  const int local = blockIdx.x - m.cta_begin;
  const int64_t row0 = int64_t(local) * m.rows_per_cta + int64_t(warp / S) * kRows;
  const int ws = warp % S;
  const DType type = DType(m.type);
  const int upb = type == DType::Q8_0 ? 1 : 8;        // units per block
  const int bb = type == DType::Q8_0 ? 34 : (type == DType::Q4_K ? 144 : 210);
  const int bpc = plan::kLanes / upb;                 // blocks per chunk
  const int64_t blocks_per_row = p.units / upb;
  const int64_t nchunks = (p.units + plan::kLanes - 1) / plan::kLanes;
  const BlockQ8_1* x = static_cast<const BlockQ8_1*>(p.x);
  auto ring = reinterpret_cast<uint8_t(*)[kRows][kRowBuf]>(qsmem) + size_t(warp) * kStages;

  float acc[kRows][N];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) acc[r][n] = 0.f;

  if (row0 < m.M) {
    const int64_t J = ws < nchunks ? (nchunks - ws + S - 1) / S : 0;  // this warp's chunks
    auto chunk_len = [&](int64_t c) {
      const int64_t left = blocks_per_row - c * bpc;
      return int(left < bpc ? left : bpc) * bb;
    };
#pragma unroll
    for (int j = 0; j < kStages - 1; ++j) {
      if (j < J) issue_chunk(m, row0, ws + j * S, bpc, bb, chunk_len(ws + j * S), ring[j], lane);
      cp_async_commit();
    }
    for (int64_t j = 0; j < J; ++j) {
      const int64_t jn = j + kStages - 1;
      if (jn < J) issue_chunk(m, row0, ws + jn * S, bpc, bb, chunk_len(ws + jn * S), ring[jn % kStages], lane);
      cp_async_commit();
      cp_async_wait<kStages - 1>();
      __syncwarp();
      const int64_t c = ws + j * S;
      uint8_t(*buf)[kRowBuf] = ring[j % kStages];
      const int nblk = chunk_len(c) / bb;
      int offs[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        offs[r] = int(reinterpret_cast<uintptr_t>(m.data + (row0 + r) * m.row_bytes + c * int64_t(bpc) * bb) & 15);
      // ---- decode this lane's unit of each row, then apply it to every column
      const int nunits = nblk * upb;
      if (lane < nunits) {
        const int64_t ug = c * plan::kLanes + lane;
        uint32_t wq[kRows][8];
        float f0[kRows], f1[kRows];
        int i0[kRows], i1[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          f0[r] = f1[r] = 0.f;
          i0[r] = i1[r] = 0;
          if (row0 + r >= m.M) {
#pragma unroll
            for (int i = 0; i < 8; ++i) wq[r][i] = 0;
            continue;
          }
          const uint8_t* b = buf[r];
          if (type == DType::Q8_0) {
            const int bo = offs[r] + 34 * lane;
            f0[r] = h2f(lds_u16(b, bo));
            lds_words<8>(b, bo + 2, wq[r]);
          } else if (type == DType::Q4_K) {
            const int bo = offs[r] + 144 * (lane >> 3), j = lane & 7;
            const float d = h2f(lds_u16(b, bo)), dmin = h2f(lds_u16(b, bo + 2));
            uint32_t sw[3];
            lds_words<3>(b, bo + 4, sw);
            uint8_t sb[12];
#pragma unroll
            for (int i = 0; i < 12; ++i) sb[i] = uint8_t(sw[i >> 2] >> (8 * (i & 3)));
            int sc, mn;
            q4k_scale_min(sb, j, sc, mn);
            f0[r] = d * float(sc);
            f1[r] = dmin * float(mn);
            uint32_t q[8];
            lds_words<8>(b, bo + 16 + 32 * (j >> 1), q);
            const int sh = 4 * (j & 1);
#pragma unroll
            for (int i = 0; i < 8; ++i) wq[r][i] = (q[i] >> sh) & 0x0f0f0f0fu;
          } else {  // Q6_K
            const int bo = offs[r] + 210 * (lane >> 3), pp = lane & 7, h = pp >> 2, qt = pp & 3;
            uint32_t ql[8], qh[8];
            lds_words<8>(b, bo + 64 * h + 32 * (qt & 1), ql);
            lds_words<8>(b, bo + 128 + 32 * h, qh);
            const int shl = (qt < 2) ? 0 : 4, shh = 2 * qt;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
              const uint32_t q6 = ((ql[i] >> shl) & 0x0f0f0f0fu) | (((qh[i] >> shh) & 0x03030303u) << 4);
              wq[r][i] = __vsub4(q6, 0x20202020u);
            }
            i0[r] = int(int8_t(b[bo + 192 + 2 * pp]));
            i1[r] = int(int8_t(b[bo + 193 + 2 * pp]));
            f0[r] = h2f(lds_u16(b, bo + 208));
          }
        }
#pragma unroll
        for (int n = 0; n < N; ++n) {
          const BlockQ8_1* xb = x + int64_t(n) * p.x_stride + ug;
          const int* xw = reinterpret_cast<const int*>(xb);
          const uint32_t ds = uint32_t(__ldg(xw));
          const float dx = h2f(ds & 0xffffu), sx = h2f(ds >> 16);
          int xq[8];
#pragma unroll
          for (int i = 0; i < 8; ++i) xq[i] = __ldg(xw + 1 + i);
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            if (row0 + r >= m.M) continue;
            int sa = 0, sb2 = 0;
#pragma unroll
            for (int i = 0; i < 4; ++i) sa = __dp4a(int(wq[r][i]), xq[i], sa);
#pragma unroll
            for (int i = 4; i < 8; ++i) sb2 = __dp4a(int(wq[r][i]), xq[i], sb2);
            float cu;
            if (type == DType::Q8_0)
              cu = plan::unit_q8_0(f0[r], dx, sa + sb2);
            else if (type == DType::Q4_K)
              cu = ((f0[r] * dx) * float(sa + sb2)) - f1[r] * sx;  // == plan::unit_q4_k
            else
              cu = plan::unit_q6_k(f0[r], dx, i0[r] * sa + i1[r] * sb2);
            acc[r][n] = acc[r][n] + cu;
          }
        }
      }
      __syncwarp();
    }
    cp_async_wait<0>();
  }
  finish<N>(m, row0, warp, S, lane, p.add, acc, red);
}

// ---------------------------------------------------------------- float path

template <DType T>
__device__ __forceinline__ void load_unit_vec(const uint8_t* row, int64_t u, float (&w)[8]) {
  if (T == DType::F32) {
    const uint4 a = ld_stream_v4(row + 32 * u), b = ld_stream_v4(row + 32 * u + 16);
    const uint32_t v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = __uint_as_float(v[i]);
  } else {
    const uint4 a = ld_stream_v4(row + 16 * u);
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
        load_unit_vec<T>(rp, u, w[r]);
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

template <int NC>
void launch_q(dim3 grid, dim3 block, cudaStream_t s, const Params& q) {
  static const bool configured = [] {  // once per instantiation (not a stream operation)
    KILN_CUDA_CHECK(cudaFuncSetAttribute(gemm_n_q8_1_kernel<NC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(kQSmem)));
    return true;
  }();
  (void)configured;
  gemm_n_q8_1_kernel<NC><<<grid, block, kQSmem, s>>>(q);
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
            const char* fn) {
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
  vec = vec && aligned16(x) && K % 8 == 0;

  Params p{};
  p.count = count;
  p.K = K;
  p.units = plan::units_per_row(mats[0].w.type, K);
  p.x_stride = quant ? K / QK8_1 : K;
  p.add = ep == Epilogue::Add;
  p.vec = vec;
  int64_t ctas = 0;
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
      launch_q<NC>(grid, block, s, q);                   \
    else                                                                  \
      gemm_n_f_kernel<NC><<<grid, block, 0, s>>>(q);                      \
    break;
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

void gemm_n_q8_1(const WeightDesc& w, const BlockQ8_1* x, int64_t n, float* y, Epilogue ep, cudaStream_t s) {
  const GemmNTarget t{w, y};
  launch(true, &t, 1, x, n, ep, s, "gemm_n_q8_1");
}

void gemm_n_q8_1_multi(const GemmNTarget* mats, int count, const BlockQ8_1* x, int64_t n, Epilogue ep,
                       cudaStream_t s) {
  launch(true, mats, count, x, n, ep, s, "gemm_n_q8_1_multi");
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
            const GemmNContext& ctx, cudaStream_t s) {
  switch (gemm_n_path(w.type, n)) {
    case GemmNPath::Int8Dp4a:
      KILN_REQUIRE(xq != nullptr, "gemm_n: the int8 path (", dtype_name(w.type), ", N=", n,
                   ") needs Q8_1 activations (quantize_q8_1 first)");
      gemm_n_q8_1(w, xq, n, y, ep, s);
      return;
    case GemmNPath::Float: gemm_n_f(w, x, n, y, ep, s); return;
    case GemmNPath::TensorCore:
      gemm_n_tc(w, x, n, y, ep, ctx.workspace, ctx.workspace_bytes, ctx.cublas, s);
      return;
  }
}

}  // namespace kiln
