// Decode attention on tensor cores (DecodePath::TensorCores): attention_decode's split kernel
// with Q.K and P.V as FP16 mma.sync m16n8k16 (F32 accumulation) and Q and P split into FP16
// hi + lo pairs as in prefill (kernels/attention_prefill.cu, common/mma_f16.cuh), so it is held
// to the prefill contract (kernels/attention.cuh) instead of bit-exactness. Same grid, split
// geometry (attn::decode_chunk) and partials as the CUDA-core kernel, so the same merge follows.
// Why: the CUDA-core kernel is instruction-bound at long contexts (H200, ncu, hd 128 at 32768:
// ~3,650 instructions per 32-position tile for 1,024 FMAs; 60 % of copy bandwidth).
//
// Work split. A warp computes tiles of 32 positions (two 16-row m-tiles) x DW = min(hd, 128)
// dims. hd > 128 splits the dims over WD = hd / 128 warps, which add their partial scores through
// shared memory (one named barrier per tile, double-buffered); the CTA's PG = 4 / WD position
// groups walk tiles pg, pg + PG, ... of the split and are merged at the end. Positions are the
// MMA rows, so the G <= 8 query heads of the kv head are the n = 8 columns:
//   S^T [32 pos x 8 heads]  = K [32 x DW] . Q^T       (A: K rows, straight from global memory)
//   O^T [DW x 8 heads]     += V^T [DW x 32] . P^T    (A: V^T, paired from V rows with PRMT)
// Both sums are free in their order under the tolerance contract, so dims and positions are
// assigned to fragment slots where every load is 16 contiguous bytes of one cache row:
//   Q.K: thread (g, t) = (lane / 4, lane % 4) loads K rows 16 mt + g and + 8 at the 16-byte
//        chunks c = 4 i + t; chunk c's 8 dims fill k-slots (2t, 2t+1) and (2t+8, 2t+9) of k-steps
//        2i and 2i + 1, and Q's B fragment (head g) takes the same dims.
//   P.V: thread (g, t) loads V rows 2t, 2t+1, 2t+8, 2t+9 of each 16-position k-step at dims
//        64 u + 8 g; word w of chunk u holds dims (d, d + 1), MMA rows g and g + 8 of m-tile
//        4 u + w, and a byte permute pairs two rows' words into the A fragment's position pair.
//        P's C fragment (positions x heads) becomes the B fragment by an 8x8 transpose
//        (movmatrix).
// Softmax as in prefill: exp2 domain, P = 2^15 exp2(x - m) (l carries the factor, the merge's
// O / l cancels it); masked positions (past the split's end) load a valid duplicate row and get
// p = 0. The partial (m, l) is handed to the merge in the natural-log domain (m ln 2).
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include "kernels/attention.cuh"
#include "kernels/attention_decode_split.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/mma_f16.cuh"
#include "kernels/common/math.h"
#include "kernels/common/pdl.cuh"
#include "kernels/quantize_q8_1.cuh"

namespace kiln {
namespace {

using mmadev::mma16816;
using mmadev::split_half2;
using mmadev::transpose8x8;

constexpr int W = attn::kDecodeWarps;
constexpr int TP = 32;  // positions per warp tile
using mmadev::kLog2e;
using detail::neg_inf;
using detail::ring_row;
constexpr float kLn2 = 0.6931471805599453f;

template <int HD, int G>
struct Tc {
  static constexpr int DW = HD < 128 ? HD : 128;  // dims per warp
  static constexpr int WD = HD / DW;              // warps sharing a tile (dims)
  static constexpr int PG = W / WD;               // position groups per CTA
  static constexpr int KC = DW / 32;              // K chunks per row and thread
  static constexpr int VC = DW / 64;              // V chunks per row and thread
  static constexpr int MD = DW / 16;              // P.V m-tiles
  static constexpr int XCH = WD > 1 ? PG * 2 * WD * 32 * 8 : 0;  // floats: score exchange
  static constexpr int MERGE = PG * G * HD + 2 * PG * G;         // floats: position-group merge
  static constexpr int PART = G * HD + 2 * G;                     // floats: the split's partial (cluster merge)
  static constexpr int SMEM = (XCH + MERGE) * 4;
  static constexpr int SMEM_CL = (XCH + MERGE + PART) * 4;
  static_assert(G >= 1 && G <= 8 && VC >= 1, "heads are the 8 MMA columns");
};

__device__ __forceinline__ uint4 ldg16(const uint16_t* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ uint32_t word(const uint4& v, int w) {
  return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w;
}

template <int HD, int G>
__device__ void cluster_merge(const float* part, int S, int U, int kh, float* out, const q8dev::Q8Col& out_q);

// CL: the merge fused through the cluster (cluster_merge); part_o / part_ml are then unused, and
// out / out_q are written here. Otherwise partials go to global memory for the merge kernel.
template <int HD, int G, bool CL>
__global__ void __launch_bounds__(W * 32, 2)
    attn_decode_tc_kernel(const float* __restrict__ q, const uint16_t* __restrict__ kc,
                          const uint16_t* __restrict__ vc, int cap, int n_head_kv, float scale, int window,
                          const int32_t* __restrict__ pos, int S, int settled, float* __restrict__ part_o,
                          float2* __restrict__ part_ml, float* __restrict__ out, const q8dev::Q8Col out_q) {
  using C = Tc<HD, G>;
  extern __shared__ __align__(16) float tsm[];
  const int s = blockIdx.x, kh = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int wd = warp % C::WD, pg = warp / C::WD;
  // settled (attention.cuh): *pos and the rows of positions < *pos may be read before the PDL
  // wait; q and the row of *pos itself (appended by the previous kernel) only after it.
  if (!settled) pdl_wait();
  const int qp = *pos;
  int b = 0, e = 0, U = 0;  // this split's positions (the CUDA-core kernel's geometry); used splits
  if (qp >= 0) {
    const int lo = window > 0 ? max(0, qp - window + 1) : 0;
    const int n = qp - lo + 1;
    const int chunk = int(attn::decode_chunk(n, S, HD));
    U = attn::decode_used_splits(n, S, HD);
    if (s < U) {
      b = lo + s * chunk;
      e = min(b + chunk, qp + 1);
    }
  }
  const int64_t rs = int64_t(n_head_kv) * HD;
  const int dbase = wd * C::DW;
  const uint16_t* kb = kc + int64_t(kh) * HD + dbase;
  const uint16_t* vb = vc + int64_t(kh) * HD + dbase;

  float o[C::MD][4];  // O^T: rows (dims d, d + 1 of m-tile md) x heads 2t, 2t + 1
#pragma unroll
  for (int md = 0; md < C::MD; ++md) o[md][0] = o[md][1] = o[md][2] = o[md][3] = 0.f;
  float m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};  // heads 2t, 2t + 1; l: own positions
  const float sl2 = scale * kLog2e;
  // Tile t0's slot j holds position min(t0 + min(j, nv - 1), lim) (past the nv valid positions
  // a valid duplicate; lim: see the first tile below); only slots at positions >= from are loaded.
  auto row_of = [&](int p) { return int64_t(ring_row(p, cap)) * rs; };
  uint4 kw[2][2][C::KC], vw[2][4][C::VC];
  auto load_k = [&](int t0, int nv, int lim, int from) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int p = min(t0 + min(16 * mt + g + 8 * h, nv - 1), lim);
        const uint16_t* r = kb + row_of(p);
        if (p >= from) {
#pragma unroll
          for (int i = 0; i < C::KC; ++i) kw[mt][h][i] = ldg16(r + 8 * (4 * i + t));
        }
      }
  };
  auto load_v = [&](int t0, int nv, int lim, int from) {
#pragma unroll
    for (int ks = 0; ks < 2; ++ks)
#pragma unroll
      for (int r4 = 0; r4 < 4; ++r4) {
        const int p = min(t0 + min(16 * ks + 2 * t + (r4 & 1) + 8 * (r4 >> 1), nv - 1), lim);
        const uint16_t* r = vb + row_of(p);
        if (p >= from) {
#pragma unroll
          for (int u = 0; u < C::VC; ++u) vw[ks][r4][u] = ldg16(r + 64 * u + 8 * g);
        }
      }
  };
  constexpr int kAll = 0x7fffffff, kAny = -kAll;
  // First tile: when settled and it starts below *pos, its rows are loaded before the PDL wait
  // with positions capped at *pos - 1 (settled rows), and the slots of *pos reloaded after it.
  int t0 = b + pg * TP;
  const int nv0 = min(TP, e - t0);
  const bool early = settled && t0 < e && t0 < qp;
  if (early) load_k(t0, nv0, qp - 1, kAny), load_v(t0, nv0, qp - 1, kAny);
  if (settled) pdl_wait();
  if (t0 < e) {
    const int from = early ? qp : kAny;  // (positions past the tile's valid ones are <= qp)
    load_k(t0, nv0, kAll, from), load_v(t0, nv0, kAll, from);
  }
  // Q^T's B fragments (head g, zero past G), hi and lo: chunk 4i + t -> k-steps 2i, 2i + 1.
  uint32_t qh[C::KC][4], ql[C::KC][4];
  {
    const float* qg = q + int64_t(kh * G + (g < G ? g : 0)) * HD + dbase;
#pragma unroll
    for (int i = 0; i < C::KC; ++i) {
      float4 a = *reinterpret_cast<const float4*>(qg + 8 * (4 * i + t));
      float4 c = *reinterpret_cast<const float4*>(qg + 8 * (4 * i + t) + 4);
      if (g >= G) a = c = make_float4(0.f, 0.f, 0.f, 0.f);
      split_half2(a.x, a.y, qh[i][0], ql[i][0]);
      split_half2(a.z, a.w, qh[i][1], ql[i][1]);
      split_half2(c.x, c.y, qh[i][2], ql[i][2]);
      split_half2(c.z, c.w, qh[i][3], ql[i][3]);
    }
  }

  // Software pipeline in the same registers: the next tile's K rows are loaded as soon as this
  // tile's Q.K has consumed kw (they arrive during the softmax and P.V), its V rows once P.V has
  // consumed vw (during the next Q.K).
  int it = 0;
#pragma unroll 1
  for (; t0 < e; t0 += C::PG * TP, ++it) {
    const int nv = min(TP, e - t0);
    const int tn = t0 + C::PG * TP, nvn = min(TP, e - tn);
    float sc[2][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      sc[mt][0] = sc[mt][1] = sc[mt][2] = sc[mt][3] = 0.f;
#pragma unroll
      for (int i = 0; i < C::KC; ++i) {
        const uint32_t a0[4] = {kw[mt][0][i].x, kw[mt][1][i].x, kw[mt][0][i].y, kw[mt][1][i].y};
        const uint32_t a1[4] = {kw[mt][0][i].z, kw[mt][1][i].z, kw[mt][0][i].w, kw[mt][1][i].w};
        mma16816(sc[mt], a0, qh[i][0], qh[i][1]);
        mma16816(sc[mt], a0, ql[i][0], ql[i][1]);
        mma16816(sc[mt], a1, qh[i][2], qh[i][3]);
        mma16816(sc[mt], a1, ql[i][2], ql[i][3]);
      }
    }
    if (tn < e) load_k(tn, nvn, kAll, kAny);
    if constexpr (C::WD > 1) {  // add the dims groups' partial scores, in warp order (same bits in every warp)
      float* xb = tsm + (pg * 2 + (it & 1)) * C::WD * 256;
      float4* mine = reinterpret_cast<float4*>(xb + wd * 256 + lane * 8);
      mine[0] = make_float4(sc[0][0], sc[0][1], sc[0][2], sc[0][3]);
      mine[1] = make_float4(sc[1][0], sc[1][1], sc[1][2], sc[1][3]);
      asm volatile("bar.sync %0, %1;" ::"r"(1 + pg), "n"(C::WD * 32) : "memory");
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        float4 v = reinterpret_cast<const float4*>(xb + lane * 8)[mt];
#pragma unroll
        for (int w = 1; w < C::WD; ++w) {
          const float4 x = reinterpret_cast<const float4*>(xb + w * 256 + lane * 8)[mt];
          v.x = v.x + x.x, v.y = v.y + x.y, v.z = v.z + x.z, v.w = v.w + x.w;
        }
        sc[mt][0] = v.x, sc[mt][1] = v.y, sc[mt][2] = v.z, sc[mt][3] = v.w;
      }
    }

    // scores of positions 16 mt + g (k = 0, 1) and + 8 (k = 2, 3) for heads 2t + (k & 1)
    float x[2][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int k = 0; k < 4; ++k) x[mt][k] = 16 * mt + g + 8 * (k >> 1) < nv ? sc[mt][k] * sl2 : neg_inf();
    // P = kPScale 2^(x - m) as one subtract of mo = m - kPScaleLog2 and the MUFU alone
    // (mmadev::exp2_ftz; exp2f and a kPScale multiply took four instructions more per score;
    // H100, session 30: -0.8 to +1.4 % across attention_bench's decode rows, run-to-run level)
    float corr[2], mo[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = fmaxf(fmaxf(x[0][h], x[0][2 + h]), fmaxf(x[1][h], x[1][2 + h]));
#pragma unroll
      for (int o2 = 4; o2 <= 16; o2 *= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
      const float mn = fmaxf(m[h], mx);  // finite: position 0 of the tile is valid
      corr[h] = mmadev::exp2_ftz(m[h] - mn);
      m[h] = mn;
      mo[h] = mn - mmadev::kPScaleLog2;
      l[h] = l[h] * corr[h];
    }
    uint32_t bh[2][2], bl[2][2];  // P^T's B fragments per k-step (= m-tile): hi, lo
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      float p[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        p[k] = mmadev::exp2_ftz(x[mt][k] - mo[k & 1]);
        l[k & 1] = l[k & 1] + p[k];
      }
      uint32_t h0, l0, h1, l1;
      split_half2(p[0], p[1], h0, l0);
      split_half2(p[2], p[3], h1, l1);
      bh[mt][0] = transpose8x8(h0), bh[mt][1] = transpose8x8(h1);
      bl[mt][0] = transpose8x8(l0), bl[mt][1] = transpose8x8(l1);
    }
#pragma unroll
    for (int md = 0; md < C::MD; ++md) {
      o[md][0] *= corr[0], o[md][1] *= corr[1], o[md][2] *= corr[0], o[md][3] *= corr[1];
    }
#pragma unroll
    for (int ks = 0; ks < 2; ++ks)
#pragma unroll
      for (int md = 0; md < C::MD; ++md) {
        const int u = md >> 2, w = md & 3;
        const uint32_t w0 = word(vw[ks][0][u], w), w1 = word(vw[ks][1][u], w);
        const uint32_t w2 = word(vw[ks][2][u], w), w3 = word(vw[ks][3][u], w);
        const uint32_t a[4] = {__byte_perm(w0, w1, 0x5410), __byte_perm(w0, w1, 0x7632),
                               __byte_perm(w2, w3, 0x5410), __byte_perm(w2, w3, 0x7632)};
        mma16816(o[md], a, bh[ks][0], bh[ks][1]);
        mma16816(o[md], a, bl[ks][0], bl[ks][1]);
      }
    if (tn < e) load_v(tn, nvn, kAll, kAny);
  }

  // Position groups may walk one tile fewer than group 0; those pass their named barrier as often
  // anyway, so every warp of the CTA has synchronized the same number of times before the merge's
  // __syncthreads (compute-sanitizer racecheck reported the merge's shared-memory reads below as
  // racing with the writes before that __syncthreads while the counts differed: hd 256, 16 hazards).
  if constexpr (C::WD > 1) {
    const int it0 = b < e ? (e - b + C::PG * TP - 1) / (C::PG * TP) : 0;  // group 0's tiles
    for (; it < it0; ++it) asm volatile("bar.sync %0, %1;" ::"r"(1 + pg), "n"(C::WD * 32) : "memory");
  }
  pdl_trigger();  // the merge may start launching (it waits for this grid's completion)
  // Uniform over the CTA: an empty split writes no partial. In a cluster it stays for the
  // cluster's barriers and its share of the merge (its partial, -inf / 0, is never read).
  if (!CL && b >= e) return;

  // Merge the position groups: each writes (O, m, l) per (head, dim), then one pass combines.
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int o2 = 4; o2 <= 16; o2 *= 2) l[h] = l[h] + __shfl_xor_sync(0xffffffffu, l[h], o2);
  float* sm_o = tsm + C::XCH;            // [PG][G][HD]
  float* sm_m = sm_o + C::PG * G * HD;   // [PG][G]
  float* sm_l = sm_m + C::PG * G;        // [PG][G]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int head = 2 * t + h;
    if (head < G) {
      float* so = sm_o + (pg * G + head) * HD + dbase;
#pragma unroll
      for (int md = 0; md < C::MD; ++md) {
        const int d = 64 * (md >> 2) + 8 * g + 2 * (md & 3);
        so[d] = o[md][h];
        so[d + 1] = o[md][2 + h];
      }
      if (g == 0 && wd == 0) sm_m[pg * G + head] = m[h], sm_l[pg * G + head] = l[h];
    }
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += W * 32) {
    const int hg = idx / HD, d = idx % HD;
    float M = neg_inf();
#pragma unroll
    for (int p = 0; p < C::PG; ++p) M = fmaxf(M, sm_m[p * G + hg]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int p = 0; p < C::PG; ++p) {
      const float mp = sm_m[p * G + hg];
      const float f = mp == neg_inf() ? 0.f : exp2f(mp - M);  // a group without tiles adds nothing
      L = L + sm_l[p * G + hg] * f;
      O = O + sm_o[(p * G + hg) * HD + d] * f;
    }
    if constexpr (CL) {  // [G][HD] then (m, l) per head: the layout cluster_merge reads
      float* part = tsm + C::XCH + C::MERGE;
      part[hg * HD + d] = O;
      if (d == 0) reinterpret_cast<float2*>(part + G * HD)[hg] = make_float2(M * kLn2, L);
    } else {
      const int hq = kh * G + hg;
      part_o[(int64_t(hq) * S + s) * HD + d] = O;
      if (d == 0) part_ml[int64_t(hq) * S + s] = make_float2(M * kLn2, L);
    }
  }
  if constexpr (CL) cluster_merge<HD, G>(tsm + C::XCH + C::MERGE, S, U, kh, out, out_q);
}

// The merge kernel's arithmetic (kernels/attention_decode.cu, attn_decode_merge_kernel: the same
// operations in the same split order, so the same bits), run by the cluster's CTAs on the
// partials in their shared memories: one warp per 32 output dims of a head (one Q8_1 block),
// the tasks spread over the cluster's warps. Lane s < U reads split s's (m, l); each lane then
// reads its dim of every split's O (all U distributed-shared-memory loads issued before the
// chain that adds them in split order).
template <int HD, int G>
__device__ void cluster_merge(const float* part, int S, int U, int kh, float* out, const q8dev::Q8Col& out_q) {
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every split's partial is written and visible cluster-wide
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rank = int(cluster.block_rank());
  constexpr int kBlocks = HD / 32;  // Q8_1 blocks per head
  for (int task = rank * W + warp; task < G * kBlocks; task += S * W) {
    const int hg = task / kBlocks, d = (task % kBlocks) * 32 + lane;
    float o = 0.f;  // no position: zeros
    if (U > 0) {
      float m = neg_inf(), l = 0.f;
      if (lane < U) {
        const float2 x = reinterpret_cast<const float2*>(cluster.map_shared_rank(part, lane) + G * HD)[hg];
        m = x.x, l = x.y;
      }
      float M = m;
#pragma unroll
      for (int o2 = 16; o2 >= 1; o2 /= 2) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o2));
      const float f = lane < U && m != neg_inf() ? kexp(m - M) : 0.f;
      float v[attn::kDecodeClusterMax];
#pragma unroll
      for (int sp = 0; sp < attn::kDecodeClusterMax; ++sp)
        v[sp] = sp < U ? cluster.map_shared_rank(part, sp)[hg * HD + d] : 0.f;
      float O = 0.f, L = 0.f;
#pragma unroll
      for (int sp = 0; sp < attn::kDecodeClusterMax; ++sp) {
        const float fs = __shfl_sync(0xffffffffu, f, sp), ls = __shfl_sync(0xffffffffu, l, sp);
        if (sp < U) O = O + v[sp] * fs, L = L + ls * fs;
      }
      o = O / L;
    }
    const int64_t idx = int64_t(kh * G + hg) * HD + d;
    out[idx] = o;
    if (out_q.col) q8dev::q8_1_warp(o, out_q, idx / QK8_1);
  }
  cluster.sync();  // no CTA leaves while another still reads its shared memory
}

template <int HD, int G>
void launch_tc(dim3 grid, cudaStream_t st, const float* q, const uint16_t* kc, const uint16_t* vc, int cap,
               int n_head_kv, float scale, int window, const int32_t* pos, int S, int settled, float* po,
               float2* pml) {
  launch_pdl(attn_decode_tc_kernel<HD, G, false>, grid, dim3(W * 32), size_t(Tc<HD, G>::SMEM), st, q, kc, vc, cap,
             n_head_kv, scale, window, pos, S, settled, po, pml, static_cast<float*>(nullptr),
             q8dev::Q8Col{nullptr, 0, Q8Layout::Blocks});
}

// Cluster of grid.x (= S <= 16) CTAs along x; above 8 (the portable limit) the kernel opts in.
template <int HD, int G>
void launch_tc_cluster(dim3 grid, cudaStream_t st, const float* q, const uint16_t* kc, const uint16_t* vc, int cap,
                       int n_head_kv, float scale, int window, const int32_t* pos, int S, int settled, float* out,
                       void* out_q, Q8Layout out_q_layout) {
  auto kernel = attn_decode_tc_kernel<HD, G, true>;
  static const bool attr_set = [&] {
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    return true;
  }();
  (void)attr_set;
  // one cluster per kv head: its grid.x splits
  launch_pdl_cluster(kernel, grid, dim3(W * 32), size_t(Tc<HD, G>::SMEM_CL), st, grid.x, q, kc, vc, cap, n_head_kv,
                     scale, window, pos, S, settled, static_cast<float*>(nullptr), static_cast<float2*>(nullptr),
                     out, q8dev::Q8Col{static_cast<BlockQ8_1*>(out_q), int64_t(n_head_kv) * G * HD / QK8_1, out_q_layout});
}

template <int HD, int G>
detail::DecodeSplitKernel make_tc() {
  static_assert(Tc<HD, G>::SMEM_CL <= 48 * 1024, "no opt-in shared memory needed");
  return {reinterpret_cast<const void*>(attn_decode_tc_kernel<HD, G, false>), Tc<HD, G>::SMEM, launch_tc<HD, G>};
}

}  // namespace

detail::DecodeSplitKernel detail::decode_split_tc(int hd, int G) {
  return dispatch_hd_group<DecodeSplitKernel>(
      hd, G, [](auto h, auto g) { return make_tc<decltype(h)::value, decltype(g)::value>(); });
}

detail::DecodeClusterLaunch detail::decode_cluster_tc(int hd, int G) {
  return dispatch_hd_group<DecodeClusterLaunch>(hd, G, [](auto h, auto g) -> DecodeClusterLaunch {
    return launch_tc_cluster<decltype(h)::value, decltype(g)::value>;
  });
}

}  // namespace kiln
