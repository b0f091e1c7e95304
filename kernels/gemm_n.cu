// gemm_n integer (dp4a) and float paths, dispatch. Numerics: kernels/gemm_n_plan.h.
#include "kernels/gemm_n.cuh"

#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>

#include "kernels/common/device.cuh"
#include "kernels/common/error.h"
#include "kernels/gemm_n_plan.h"

namespace kiln {

namespace {

namespace plan = gemm_n_plan;

// Float path: CTA of kWarps warps, kRows rows per warp.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 4;

struct Mat {
  const uint8_t* data;
  const uint8_t* end;  // data + M * row_bytes
  float* y;
  int64_t M;
  int64_t row_bytes;
  int type;
  int S;
  int cta_begin;     // float path: first CTA of this matrix; integer path: first row block
  int rows_per_cta;  // rows per CTA (float) / per row block (integer)
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
  // integer path
  int64_t pairs;    // items (unit pairs) per row
  int64_t nchunks;  // chunks per row
  int nrb;          // row blocks over all matrices
  int units_pad;    // units rounded up to even (activation smem stride)
  int rowbuf;       // ring bytes per row
  int need_sums;    // some matrix is Q6_K: stage the 16-element activation quant sums
  uint32_t act_bytes;
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

// Cross-warp combination and epilogue. acc: per-lane values; folded here (step 4).
template <int R, int N>
__device__ __forceinline__ void finish(const Mat& m, int64_t row0, int warp, int S, int lane, int add,
                                       float (&acc)[R][N], float (*red)[R][N]) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int n = 0; n < N; ++n) acc[r][n] = warp_fold(acc[r][n]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int n = 0; n < N; ++n) red[warp][r][n] = acc[r][n];
  }
  __syncthreads();
  if (warp % S == 0 && lane < R * N) {
    const int r = lane / N, n = lane % N;
    const int64_t row = row0 + r;
    if (row >= 0 && row < m.M) {
      float t = red[warp][r][n];
      for (int w = 1; w < S; ++w) t = t + red[warp + w][r][n];
      float* y = m.y + int64_t(n) * m.M + row;
      *y = add ? *y + t : t;
    }
  }
  __syncthreads();  // red is reused by the next row block
}

// ---------------------------------------------------------------- integer path
//
// CTA of kQWarps warps, persistent over "row blocks" (R * kQWarps / S rows of one matrix).
// At start the CTA copies the N activation columns (Q8_1) into shared memory once, repacked:
// int8 quants as 16-byte pieces (XOR-swizzled so lanes reading consecutive unit pairs hit
// distinct banks), float (d, s) pairs, and for Q6_K the two 16-element quant sums per block.
// Each warp then walks its (row block, chunk) items through a kStages-deep cp.async ring (the
// ring runs across row blocks, so loads of the next row block overlap the current one's tail),
// decodes one unit pair per lane per row from shared memory with 16-byte / word loads, and
// applies it to all N columns with __dp4a.

__device__ __forceinline__ void cp_async16(uint8_t* dst, const uint8_t* src, int src_bytes) {
  const uint32_t d = uint32_t(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
}

constexpr int kQWarps = 8;
constexpr int kQThreads = kQWarps * 32;
constexpr int kStages = 3;

__device__ __forceinline__ int fmt_bpc(int type) { return DType(type) == DType::Q8_0 ? 64 : 8; }  // blocks per chunk
__device__ __forceinline__ int fmt_bb(int type) {
  return DType(type) == DType::Q8_0 ? 34 : (DType(type) == DType::Q4_K ? 144 : 210);
}

// A warp's position in its sequence of (row block, chunk) items.
struct QIt {
  int rb;
  int mi, S, ws;
  int64_t row0, j, J;
};

template <int R>
__device__ __forceinline__ void it_load(const Params& p, int warp, QIt& it) {
  it.j = 0;
  it.J = 0;
  if (it.rb >= p.nrb) return;
  it.mi = find_mat(p, it.rb);
  const Mat& m = p.mats[it.mi];
  it.S = m.S;
  it.ws = warp % m.S;
  it.row0 = int64_t(it.rb - m.cta_begin) * m.rows_per_cta + int64_t(warp / m.S) * R;
  it.J = (it.row0 < m.M && it.ws < p.nchunks) ? (p.nchunks - it.ws + m.S - 1) / m.S : 0;
}
template <int R>
__device__ __forceinline__ void it_skip(const Params& p, int warp, QIt& it) {
  while (it.rb < p.nrb && it.j >= it.J) {
    it.rb += gridDim.x;
    it_load<R>(p, warp, it);
  }
}

// Asynchronous copy of the item's chunk of rows row0 .. row0+R-1 into one ring stage: aligned
// 16-byte segments covering each row's chunk; bytes past the end of the matrix are zero-filled.
template <int R>
__device__ __forceinline__ void issue_item(const Params& p, const QIt& it, uint8_t* stage, int lane) {
  const Mat& m = p.mats[it.mi];
  const int bpc = fmt_bpc(m.type), bb = fmt_bb(m.type);
  const int64_t c = it.ws + it.j * it.S;
  const int64_t bpr = DType(m.type) == DType::Q8_0 ? p.units : p.units / 8;
  const int64_t left = bpr - c * bpc;
  const int len = int(left < bpc ? left : bpc) * bb;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = it.row0 + r;
    if (row >= m.M) break;
    const uint8_t* g = m.data + row * m.row_bytes + c * int64_t(bpc) * bb;
    const uint8_t* a0 = reinterpret_cast<const uint8_t*>(reinterpret_cast<uintptr_t>(g) & ~uintptr_t(15));
    const int nseg = (int(g - a0) + len + 15) >> 4;
    uint8_t* dst = stage + r * p.rowbuf;
    for (int i = lane; i < nseg; i += 32) {
      const uint8_t* src = a0 + 16 * i;
      const int64_t rem = m.end - src;
      cp_async16(dst + 16 * i, src, rem >= 16 ? 16 : int(rem));
    }
  }
}

__device__ __forceinline__ uint32_t byte_at(uint32_t w, int i) { return (w >> (8 * i)) & 0xffu; }
__device__ __forceinline__ int sbyte_at(uint32_t w, int i) { return int(int8_t(uint8_t(w >> (8 * i)))); }

// One chunk of R rows: lane takes item i = 32c + lane (a unit pair) of every row.
template <int N, int R>
__device__ __forceinline__ void consume_item(const Params& p, const Mat& m, int64_t row0, int64_t c,
                                             const uint8_t* stage, const uint8_t* aq, const float2* ads,
                                             const uint32_t* asum, int lane, float (&acc)[R][N]) {
  const int64_t item = c * plan::kLanes + lane;
  if (item >= p.pairs) return;
  const DType type = DType(m.type);
  const int bpc = fmt_bpc(m.type), bb = fmt_bb(m.type);
  int offs[R];
#pragma unroll
  for (int r = 0; r < R; ++r)
    offs[r] = int(reinterpret_cast<uintptr_t>(m.data + (row0 + r) * m.row_bytes + c * int64_t(bpc) * bb) & 15);
  const int lb = lane >> 2;  // Q4_K / Q6_K: block within the chunk
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t u64 = plan::pair_unit(type, item, e);
    if (u64 >= p.units) break;
    const int u = int(u64);
    uint32_t wq[R][8];
    float f0[R], f1[R];
    int i0[R], i1[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      f0[r] = f1[r] = 0.f;
      i0[r] = i1[r] = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) wq[r][i] = 0;
      if (row0 + r >= m.M) continue;
      const uint8_t* b = stage + r * p.rowbuf;
      if (type == DType::Q8_0) {
        const int o = offs[r] + 34 * (2 * lane + e);
        const uint32_t dw = reinterpret_cast<const uint32_t*>(b)[o >> 2];
        f0[r] = h2f((o & 2) ? (dw >> 16) : (dw & 0xffffu));
        lds_words<8>(b, o + 2, wq[r]);
      } else if (type == DType::Q4_K) {
        // Q4_K blocks are 16-byte aligned in memory (aligned data, 144 | row bytes): offs == 0.
        const int g = lane & 3;
        const uint8_t* blk = b + 144 * lb;
        const uint4 hd = *reinterpret_cast<const uint4*>(blk);
        const uint32_t scw = g < 2 ? (hd.y & 0x3f3f3f3fu) : ((hd.w & 0x0f0f0f0fu) | ((hd.y >> 2) & 0x30303030u));
        const uint32_t mnw =
            g < 2 ? (hd.z & 0x3f3f3f3fu) : (((hd.w >> 4) & 0x0f0f0f0fu) | ((hd.z >> 2) & 0x30303030u));
        const int bi = (2 * g + e) & 3;
        f0[r] = h2f(hd.x & 0xffffu) * float(int(byte_at(scw, bi)));
        f1[r] = h2f(hd.x >> 16) * float(int(byte_at(mnw, bi)));
        const uint4 q0 = *reinterpret_cast<const uint4*>(blk + 16 + 32 * g);
        const uint4 q1 = *reinterpret_cast<const uint4*>(blk + 32 + 32 * g);
        const uint32_t q[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
        const int sh = 4 * e;
#pragma unroll
        for (int i = 0; i < 8; ++i) wq[r][i] = (q[i] >> sh) & 0x0f0f0f0fu;
      } else {  // Q6_K: half h, ql column p; quarter p + 2e; q in 0..63 (the -32 comes from the sums)
        const int h = (lane >> 1) & 1, pp = lane & 1;
        const int bo = offs[r] + 210 * lb;
        uint32_t ql[8], qh[8], sc[2], dd[1];
        lds_words<8>(b, bo + 64 * h + 32 * pp, ql);
        lds_words<8>(b, bo + 128 + 32 * h, qh);
        lds_words<2>(b, bo + 192 + 8 * h, sc);
        lds_words<1>(b, bo + 208, dd);
        const int shl = 4 * e, shh = 2 * (pp + 2 * e);
#pragma unroll
        for (int i = 0; i < 8; ++i) wq[r][i] = ((ql[i] >> shl) & 0x0f0f0f0fu) | (((qh[i] >> shh) & 0x03030303u) << 4);
        i0[r] = sbyte_at(sc[e], 2 * pp);
        i1[r] = sbyte_at(sc[e], 2 * pp + 1);
        f0[r] = h2f(dd[0] & 0xffffu);
      }
    }
    const int P0 = 2 * u, xr = (P0 >> 3) & 3;
#pragma unroll
    for (int n = 0; n < N; ++n) {
      const uint8_t* qn = aq + size_t(n) * p.units_pad * 32;
      const uint4 a0 = *reinterpret_cast<const uint4*>(qn + 16 * (P0 ^ xr));
      const uint4 a1 = *reinterpret_cast<const uint4*>(qn + 16 * ((P0 + 1) ^ xr));
      const float2 ds = ads[size_t(n) * p.units_pad + u];
      int xs_a = 0, xs_b = 0;
      if (type == DType::Q6_K) {
        const uint32_t sv = asum[size_t(n) * p.units_pad + u];
        xs_a = int(sv << 16) >> 16;
        xs_b = int(sv) >> 16;
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (row0 + r >= m.M) continue;
        int sa = 0, sb = 0;
        sa = __dp4a(int(wq[r][0]), int(a0.x), sa);
        sa = __dp4a(int(wq[r][1]), int(a0.y), sa);
        sa = __dp4a(int(wq[r][2]), int(a0.z), sa);
        sa = __dp4a(int(wq[r][3]), int(a0.w), sa);
        sb = __dp4a(int(wq[r][4]), int(a1.x), sb);
        sb = __dp4a(int(wq[r][5]), int(a1.y), sb);
        sb = __dp4a(int(wq[r][6]), int(a1.z), sb);
        sb = __dp4a(int(wq[r][7]), int(a1.w), sb);
        float cu;
        if (type == DType::Q8_0) {
          cu = plan::unit_q8_0(f0[r], ds.x, sa + sb);
        } else if (type == DType::Q4_K) {
          cu = ((f0[r] * ds.x) * float(sa + sb)) - f1[r] * ds.y;  // == plan::unit_q4_k
        } else {
          sa = sa - 32 * xs_a;
          sb = sb - 32 * xs_b;
          cu = plan::unit_q6_k(f0[r], ds.x, i0[r] * sa + i1[r] * sb);
        }
        acc[r][n] = acc[r][n] + cu;
      }
    }
  }
}

template <int N, int R>
__global__ void __launch_bounds__(kQThreads, 2) gemm_n_q8_1_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) uint8_t qsmem[];
  __shared__ float red[kQWarps][R][N];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint8_t* aq = qsmem;
  float2* ads = reinterpret_cast<float2*>(qsmem + size_t(N) * p.units_pad * 32);
  uint32_t* asum = reinterpret_cast<uint32_t*>(ads + size_t(N) * p.units_pad);
  uint8_t* ring = qsmem + p.act_bytes + size_t(warp) * kStages * R * p.rowbuf;
  const size_t stage_bytes = size_t(R) * p.rowbuf;

  // Producer: prologue of the weight ring.
  QIt prod;
  prod.rb = blockIdx.x;
  it_load<R>(p, warp, prod);
  it_skip<R>(p, warp, prod);
  int64_t nreal = 0;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (prod.rb < p.nrb) {
      issue_item<R>(p, prod, ring + size_t(nreal % kStages) * stage_bytes, lane);
      ++nreal;
      ++prod.j;
      it_skip<R>(p, warp, prod);
    }
    cp_async_commit();
  }

  // Activations -> shared memory (once per CTA).
  {
    const BlockQ8_1* x = static_cast<const BlockQ8_1*>(p.x);
    const int units = int(p.units);
    for (int idx = threadIdx.x; idx < N * units; idx += kQThreads) {
      const int n = idx / units, u = idx - n * units;
      const uint32_t* src = reinterpret_cast<const uint32_t*>(x + int64_t(n) * p.x_stride + u);
      uint32_t w[9];
#pragma unroll
      for (int i = 0; i < 9; ++i) w[i] = __ldg(src + i);
      uint8_t* qn = aq + size_t(n) * p.units_pad * 32;
      const int P0 = 2 * u, xr = (P0 >> 3) & 3;
      *reinterpret_cast<uint4*>(qn + 16 * (P0 ^ xr)) = make_uint4(w[1], w[2], w[3], w[4]);
      *reinterpret_cast<uint4*>(qn + 16 * ((P0 + 1) ^ xr)) = make_uint4(w[5], w[6], w[7], w[8]);
      ads[size_t(n) * p.units_pad + u] = make_float2(h2f(w[0] & 0xffffu), h2f(w[0] >> 16));
      if (p.need_sums) {
        int sa = 0, sb = 0;
#pragma unroll
        for (int i = 1; i <= 4; ++i) sa = __dp4a(int(w[i]), 0x01010101, sa);
#pragma unroll
        for (int i = 5; i <= 8; ++i) sb = __dp4a(int(w[i]), 0x01010101, sb);
        asum[size_t(n) * p.units_pad + u] = (uint32_t(sa) & 0xffffu) | (uint32_t(sb) << 16);
      }
    }
  }
  __syncthreads();

  int64_t g = 0;  // items consumed by this warp
  for (int rb = blockIdx.x; rb < p.nrb; rb += gridDim.x) {
    QIt cur;
    cur.rb = rb;
    it_load<R>(p, warp, cur);
    const Mat& m = p.mats[cur.mi];
    float acc[R][N];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int n = 0; n < N; ++n) acc[r][n] = 0.f;
    for (int64_t jj = 0; jj < cur.J; ++jj, ++g) {
      if (prod.rb < p.nrb) {
        issue_item<R>(p, prod, ring + size_t(nreal % kStages) * stage_bytes, lane);
        ++nreal;
        ++prod.j;
        it_skip<R>(p, warp, prod);
      }
      cp_async_commit();
      cp_async_wait<kStages - 1>();
      __syncwarp();
      consume_item<N, R>(p, m, cur.row0, cur.ws + jj * cur.S, ring + size_t(g % kStages) * stage_bytes, aq, ads,
                         asum, lane, acc);
      __syncwarp();
    }
    finish<R, N>(m, cur.row0, warp, cur.S, lane, p.add, acc, red);
  }
  cp_async_wait<0>();
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
  finish<kRows, N>(m, row0, warp, S, lane, p.add, acc, red);
}

// ---------------------------------------------------------------- host side

int device_attr(cudaDeviceAttr a) {
  int dev = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&dev));
  int v = 0;
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&v, a, dev));
  return v;
}
int sm_count_cached() {
  static std::atomic<int> cache[64] = {};
  int dev = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return device_attr(cudaDevAttrMultiProcessorCount);
  int v = cache[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    v = device_attr(cudaDevAttrMultiProcessorCount);
    cache[dev].store(v, std::memory_order_relaxed);
  }
  return v;
}
// Dynamic shared memory a CTA may use (opt-in limit minus the static reduction buffer).
int max_dyn_smem() {
  static const int v = device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin) - 2048;
  return v;
}


template <int NC, int R>
void launch_q(const Params& q, size_t smem, int sm_count, cudaStream_t s) {
  static const bool configured = [] {  // once per instantiation (not a stream operation)
    KILN_CUDA_CHECK(cudaFuncSetAttribute(gemm_n_q8_1_kernel<NC, R>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         max_dyn_smem()));
    return true;
  }();
  (void)configured;
  static std::atomic<int> occ_cache[256] = {};
  const size_t kb = smem / 1024;
  int occ = kb < 256 ? occ_cache[kb].load(std::memory_order_relaxed) : 0;
  if (occ == 0) {
    KILN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gemm_n_q8_1_kernel<NC, R>, kQThreads, smem));
    KILN_REQUIRE(occ >= 1, "gemm_n_q8_1: kernel does not fit on an SM (", smem, " bytes of shared memory)");
    if (kb < 256) occ_cache[kb].store(occ, std::memory_order_relaxed);
  }
  const int grid = int(std::min<int64_t>(q.nrb, int64_t(occ) * sm_count));
  gemm_n_q8_1_kernel<NC, R><<<grid, kQThreads, smem, s>>>(q);
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
  bool any_q6 = false;
  int chunk_bytes = 0;
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
    any_q6 = any_q6 || w.type == DType::Q6_K;
    if (quant) {
      const int bb = w.type == DType::Q8_0 ? 34 : (w.type == DType::Q4_K ? 144 : 210);
      const int bpc = w.type == DType::Q8_0 ? 64 : 8;
      chunk_bytes = std::max(chunk_bytes, bb * bpc);
    }
  }
  if (!quant) {
    int64_t ctas = 0;
    for (int i = 0; i < count; ++i) {
      Mat& m = p.mats[i];
      m.rows_per_cta = kRows * (kWarps / m.S);
      m.cta_begin = int(ctas);
      ctas += (m.M + m.rows_per_cta - 1) / m.rows_per_cta;
    }
    KILN_REQUIRE(ctas < (int64_t(1) << 31), fn, ": grid too large");
    for (int64_t n0 = 0; n0 < n; n0 += kGemmNMaxCols) {
      const int nc = int(std::min<int64_t>(kGemmNMaxCols, n - n0));
      Params q = p;
      q.x = x + n0 * p.x_stride;
      for (int i = 0; i < count; ++i) q.mats[i].y = p.mats[i].y + n0 * p.mats[i].M;
      const dim3 grid(static_cast<unsigned>(ctas)), block(static_cast<unsigned>(kThreads));
      switch (nc) {
        case 1: gemm_n_f_kernel<1><<<grid, block, 0, s>>>(q); break;
        case 2: gemm_n_f_kernel<2><<<grid, block, 0, s>>>(q); break;
        case 3: gemm_n_f_kernel<3><<<grid, block, 0, s>>>(q); break;
        case 4: gemm_n_f_kernel<4><<<grid, block, 0, s>>>(q); break;
        case 5: gemm_n_f_kernel<5><<<grid, block, 0, s>>>(q); break;
        case 6: gemm_n_f_kernel<6><<<grid, block, 0, s>>>(q); break;
        case 7: gemm_n_f_kernel<7><<<grid, block, 0, s>>>(q); break;
        default: gemm_n_f_kernel<8><<<grid, block, 0, s>>>(q); break;
      }
      KILN_CUDA_CHECK_LAUNCH();
    }
    return;
  }

  // Integer path.
  p.pairs = plan::items_per_row(mats[0].w.type, K);
  p.nchunks = (p.pairs + plan::kLanes - 1) / plan::kLanes;
  p.units_pad = int((p.units + 1) / 2 * 2);
  p.rowbuf = (chunk_bytes + 16 + 15) / 16 * 16 + 16;  // chunk + misalignment, + one word of overread
  p.need_sums = any_q6;
  KILN_REQUIRE(p.units < (int64_t(1) << 24), fn, ": K=", K, " too large");
  const size_t max_smem = size_t(max_dyn_smem());
  const int sms = sm_count_cached();
  auto rows_of = [](int nc) { return nc <= 2 ? 2 : 4; };
  auto smem_of = [&](int nc) {
    const size_t act = (size_t(nc) * size_t(p.units_pad) * (32 + 8 + (any_q6 ? 4 : 0)) + 15) / 16 * 16;
    const size_t ring = size_t(kQWarps) * kStages * size_t(rows_of(nc)) * size_t(p.rowbuf);
    return std::make_pair(act, (act + ring + 1023) / 1024 * 1024);
  };
  // Columns per launch: up to 8, fewer when the staged activations would not fit in shared
  // memory (very large K); each group re-reads the weights, the bits are the same.
  int group = kGemmNMaxCols;
  while (group > 1 && smem_of(group).second > max_smem) group /= 2;
  KILN_REQUIRE(smem_of(group).second <= max_smem, fn, ": K=", K, " too large for the shared-memory staging");
  for (int64_t n0 = 0; n0 < n; n0 += group) {
    const int nc = int(std::min<int64_t>(group, n - n0));
    Params q = p;
    q.x = x + n0 * p.x_stride;
    const int R = rows_of(nc);
    int64_t nrb = 0;
    for (int i = 0; i < count; ++i) {
      Mat& m = q.mats[i];
      m.y = p.mats[i].y + n0 * m.M;
      m.rows_per_cta = R * (kQWarps / m.S);
      m.cta_begin = int(nrb);
      nrb += (m.M + m.rows_per_cta - 1) / m.rows_per_cta;
    }
    KILN_REQUIRE(nrb < (int64_t(1) << 30), fn, ": too many rows");
    q.nrb = int(nrb);
    const auto sm = smem_of(nc);
    q.act_bytes = uint32_t(sm.first);
    switch (nc) {
      case 1: launch_q<1, 2>(q, sm.second, sms, s); break;
      case 2: launch_q<2, 2>(q, sm.second, sms, s); break;
      case 3: launch_q<3, 4>(q, sm.second, sms, s); break;
      case 4: launch_q<4, 4>(q, sm.second, sms, s); break;
      case 5: launch_q<5, 4>(q, sm.second, sms, s); break;
      case 6: launch_q<6, 4>(q, sm.second, sms, s); break;
      case 7: launch_q<7, 4>(q, sm.second, sms, s); break;
      default: launch_q<8, 4>(q, sm.second, sms, s); break;
    }
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
