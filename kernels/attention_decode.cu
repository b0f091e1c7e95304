// Decode attention: split-K flash-decoding, CUDA cores, bit-exact with
// ref::attention_decode_split (order documented in reference/attention.h).
//
// attn_decode_split_kernel: grid (n_splits, n_head_kv), kDecodeWarps warps. The CTA serves all G
// query heads of its kv head (each K/V byte read once per group). Warp w owns tiles w, w+W, ...
// of tw positions (32, or 8 / 16 in short splits: attn::decode_warp_tile). Scores: lanes split
// head_dim (lane l holds E = hd/32 consecutive dims), butterfly-reduced; lane j keeps score j,
// so each exponential is computed once. P.V: lanes split head_dim again, p_j broadcast by shuffle.
// Warps merge through shared memory; partial (m, l, O) per (head, split) go to the workspace;
// attn_decode_merge_kernel combines the splits -- also those of the tensor-core split kernel
// (DecodePath::TensorCores, kernels/attention_decode_tc.cu), which writes the same partials.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/attention.cuh"
#include "kernels/attention_decode_split.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/smem_stage.cuh"
#include "kernels/common/math.h"
#include "kernels/quantize_q8_1.cuh"

namespace kiln {
namespace {

constexpr int W = attn::kDecodeWarps;
constexpr int TILE = attn::kDecodeTile;
static_assert(TILE == 32, "one position per lane");

using detail::neg_inf;
using detail::ring_row;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = v + __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the 32 lanes of N values per lane (N a power of two <= 32) with the butterfly's pairing
// (lane i with lane i ^ o, o = 16, 8, ..., 1) but transposed: at each level a lane keeps half of
// its values and trades the other half with its partner, so 32 sums cost 31 shuffles instead of
// 160. Input order: lane L holds value p ^ perm(L) at position p, perm(L) = L / (32 / N) (the
// caller permutes what it computes, for free: it picks which rows and heads it loads). Then at
// every level the kept half is the lower one and the traded half the upper one in every lane --
// no selects (they were a third of the reduction's instructions) -- and position k of a lane and
// position k + H of its partner hold the same value. Every sum adds exactly the operands the
// plain butterfly adds (a + b == b + a bitwise), so the result equals ref's butterfly_sum bit for
// bit. On return v[0] of lane L holds the total of value perm(L).
template <int N, int O = 16>
__device__ __forceinline__ void transpose_reduce(float (&v)[32]) {
  if constexpr (O >= 1) {
    if constexpr (N > 1) {
      constexpr int H = N / 2;
#pragma unroll
      for (int k = 0; k < H; ++k) v[k] = v[k] + __shfl_xor_sync(0xffffffffu, v[k + H], O);
      transpose_reduce<H, O / 2>(v);
    } else {
      v[0] = v[0] + __shfl_xor_sync(0xffffffffu, v[0], O);
      transpose_reduce<1, O / 2>(v);
    }
  }
}

// Per-warp ring of NS slots in shared memory, each 8 rows (positions) of K or V, filled with
// cp.async: a warp's tile is consumed as 4 K groups then 4 V groups of 8 rows, and the copies for
// the next NS-1 groups are always in flight (no registers held by outstanding loads).
template <int HD>
struct Ring {
  // 64 KiB per 4-warp CTA for hd 64-256 (96 KiB for hd 512): hd 64 keeps two tiles in flight
  static constexpr int NS = HD == 64 ? 16 : HD == 128 ? 8 : HD == 256 ? 4 : 3;
  static constexpr int SLOT = 8 * HD * 2;                 // bytes
  static constexpr int WARP_BYTES = NS * SLOT;
};

template <int HD, int G, bool RING>
constexpr int decode_smem_bytes() {
  constexpr int ring = RING ? W * Ring<HD>::WARP_BYTES : 0;
  constexpr int merge = W * G * HD * 4 + 2 * W * G * 4;
  return ring > merge ? ring : merge;
}

// a * b as a 64-bit product of two 32-bit ints (one IMAD.WIDE with the add that follows; C++'s
// int64_t(a) * b was compiled as a 64 x 64-bit multiply when b had a 64-bit twin in scope)
__device__ __forceinline__ int64_t mul_wide(int a, int b) {
  int64_t r;
  asm("mul.wide.s32 %0, %1, %2;" : "=l"(r) : "r"(a), "r"(b));
  return r;
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}

// E consecutive FP16 values -> float (exact).
template <int E>
__device__ __forceinline__ void halves_to_float(const uint32_t* w, float (&f)[E]) {
#pragma unroll
  for (int i = 0; i < E / 2; ++i) {
    const float2 x = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
template <int E>
struct RegRow {  // one row's E halves held in registers (E = 2, 4, 8, 16)
  uint32_t w[E / 2];
  __device__ __forceinline__ void load(const uint16_t* p) {
    if constexpr (E == 2) {
      w[0] = __ldg(reinterpret_cast<const unsigned int*>(p));
    } else if constexpr (E >= 8) {
#pragma unroll
      for (int i = 0; i < E / 8; ++i) {
        const uint4 x = __ldg(reinterpret_cast<const uint4*>(p) + i);
        w[4 * i] = x.x, w[4 * i + 1] = x.y, w[4 * i + 2] = x.z, w[4 * i + 3] = x.w;
      }
    } else {
      const uint2 x = __ldg(reinterpret_cast<const uint2*>(p));
      w[0] = x.x, w[1] = x.y;
    }
  }
};

// RING = false: rows are loaded straight into registers, R at a time. RING = true: rows come
// through the per-warp shared-memory ring (R = 8). Same arithmetic either way.
template <int HD, int G, bool RING>
__global__ void __launch_bounds__(W * 32)
    attn_decode_split_kernel(const float* __restrict__ q, const uint16_t* __restrict__ kc,
                             const uint16_t* __restrict__ vc, int cap, int n_head_kv, float scale,
                             int window, const int32_t* __restrict__ pos, int S, int settled,
                             float* __restrict__ part_o, float2* __restrict__ part_ml) {
  constexpr int E = HD / 32;
  constexpr int R = RING ? 8 : (E >= 16 ? 4 : 8);  // rows per group
  constexpr int NG = TILE / R;                      // groups per tile
  constexpr int NC = R * G > 32 ? R * G / 32 : 1;   // 32-value chunks per group
  constexpr int GC = G / NC;                        // heads per chunk
  constexpr int NV = R * GC;                        // values per chunk (<= 32)
  static_assert(NV <= 32 && (NV & (NV - 1)) == 0, "values per chunk must be a power of two <= 32");
  using RG = Ring<HD>;
  constexpr int NS = RG::NS;
  constexpr int CPR = HD / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char dsm[];

  const int s = blockIdx.x, kh = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // settled (the caller's promise, attention.cuh): *pos and the cache rows of positions < *pos
  // were written before this launch's stream predecessors began, so they are read before the
  // PDL wait; only q and the row of *pos itself (appended by the previous kernel) come after it.
  if (!settled) pdl_wait();  // q / pos / cache come from earlier kernels
  const int qp = *pos;

  // [b, e): this split's positions. An empty split (or *pos < 0) runs no tile and writes no
  // partial: the merge skips it. (No early return: a shuffle after a possibly divergent exit
  // compiles to a collective fallback path, WARPSYNC/ENDCOLLECTIVE, around every shuffle.)
  int b = 0, e = 0, tw = TILE;  // tw: positions per warp tile (attn::decode_warp_tile)
  if (qp >= 0) {
    const int lo = window > 0 ? max(0, qp - window + 1) : 0;
    const int n = qp - lo + 1;
    const int chunk = int(attn::decode_chunk(n, S, HD));
    tw = attn::decode_warp_tile(chunk);
    if (s < attn::decode_used_splits(n, S, HD)) {
      b = lo + s * chunk;
      e = min(b + chunk, qp + 1);
    }
  }
  const bool used = b < e;
  const int64_t rs = int64_t(n_head_kv) * HD;
  const uint16_t* kb = kc + int64_t(kh) * HD;
  const uint16_t* vb = vc + int64_t(kh) * HD;
  // this warp's tiles: t0 = first + i * W * tw, i < n_my
  const int first = b + warp * tw;
  const int n_my = first < e ? (e - first + W * tw - 1) / (W * tw) : 0;
  auto cache_row = [&](int p) { return ring_row(p, cap); };

  // transpose_reduce's input order: this lane computes the value of row r ^ rp and head
  // (g / GC) * GC + (g % GC ^ hp) where the plain order has row r, head g (value index r * GC + g % GC).
  const int perm = lane / (32 / NV), rp = perm / GC, hp = perm % GC;

  // Registers mode with the one-group-ahead prefetch (head_dim <= 256): when settled, the first
  // tile's first K row group is loaded before the wait, straight into the prefetch registers pf
  // (no extra registers: more would cost occupancy at long contexts), and its V rows are
  // prefetched into L1; the row of *pos itself (appended by the previous kernel) is read after
  // the wait. So the cache round trips overlap the previous kernel.
  constexpr bool PF = !RING && E <= 8;
  RegRow<E> pf[PF ? R : 1];
  const bool pre = PF && settled && n_my > 0;
  if constexpr (PF) {
    if (pre) {
      const int nv0 = min(tw, e - first), row0 = first % cap;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int j = r ^ rp;  // (the K phase's row order)
        if (j < nv0 && first + j < qp) {
          const int64_t o = int64_t(cache_row(row0 + j)) * rs + lane * E;
          pf[r].load(kb + o);
          asm volatile("prefetch.global.L1 [%0];" ::"l"(vb + o));
        }
      }
    }
  }
  if (settled) pdl_wait();
  if constexpr (PF) {
    if (pre) {
      const int row0 = first % cap;
#pragma unroll
      for (int r = 0; r < R; ++r)  // (first + j == qp: inside the first tile's valid rows, qp < e)
        if (first + (r ^ rp) == qp) pf[r].load(kb + int64_t(cache_row(row0 + (r ^ rp))) * rs + lane * E);
    }
  }
  float qr[G][E], acc[G][E], m[G], l[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const float* qh = q + int64_t(kh * G + g / GC * GC + (g % GC ^ hp)) * HD + lane * E;
    if constexpr (E == 2) {
      const float2 x = *reinterpret_cast<const float2*>(qh);
      qr[g][0] = x.x, qr[g][1] = x.y;
    } else {
#pragma unroll
      for (int i = 0; i < E; i += 4) {
        const float4 x = *reinterpret_cast<const float4*>(qh + i);
        qr[g][i] = x.x, qr[g][i + 1] = x.y, qr[g][i + 2] = x.z, qr[g][i + 3] = x.w;
      }
    }
#pragma unroll
    for (int i = 0; i < E; ++i) acc[g][i] = 0.f;
    m[g] = neg_inf();
    l[g] = 0.f;
  }

  // ---- ring plumbing (RING only) ----
  const int n_groups = n_my * 8;
  unsigned char* ring = dsm + (RING ? warp * RG::WARP_BYTES : 0);
  const uint32_t ring_s = uint32_t(__cvta_generic_to_shared(ring));
  auto issue = [&](int gq) {  // group gq: tile gq/8, part gq%8 (0-3 K rows, 4-7 V rows)
    if (gq < n_groups) {
      const int i = gq >> 3, part = gq & 7;
      const int t0 = first + i * W * tw;
      const int j = (part & 3) * 8 + (lane >> 2);
      if (j < tw && t0 + j < e) {
        const int row = cache_row(t0 % cap + j);
        const uint16_t* src = (part < 4 ? kb : vb) + int64_t(row) * rs;
        const uint32_t dst = ring_s + (gq % NS) * RG::SLOT + (lane >> 2) * HD * 2;
#pragma unroll
        for (int c = lane & 3; c < CPR; c += 4) cp_async16(dst + c * 16, src + c * 8);
      }
    }
    asm volatile("cp.async.commit_group;\n" ::);
  };
  int gc = 0;
  auto acquire = [&]() -> const unsigned char* {
    issue(gc + NS - 1);
    asm volatile("cp.async.wait_group %0;\n" ::"n"(NS - 1));
    __syncwarp();
    return ring + (gc % NS) * RG::SLOT;
  };
  auto release = [&]() {
    __syncwarp();  // all lanes done reading the slot before it is refilled
    ++gc;
  };
  if constexpr (RING) {
    for (int g0 = 0; g0 < NS - 1; ++g0) issue(g0);
  }

  // Registers mode: lane j holds the cache row of the tile's position j (clamped to the tile's
  // last valid position, whose row is written), computed once per tile, and each row load takes
  // its row by shuffle. Per-row ring arithmetic and a bounds branch per row were a quarter of the
  // kernel's instructions (H200, ncu, hd 128 at 32768: 4,837 instructions per 32-position tile).
  // Past-the-end rows load a duplicate of a valid row; the math below never uses them.
  const uint16_t* kl = kb + lane * E;
  const uint16_t* vl = vb + lane * E;
  const int rs_bytes = int(rs) * 2;  // n_head_kv * HD * 2 <= 8 * 512 * 2
  int my_row = 0;
  auto tile_rows = [&](int t0) {
    const int nv = min(tw, e - t0);
    my_row = cache_row(t0 % cap + min(lane, nv - 1));
  };
  // (The shuffles run unconditionally, only the loads are predicated on `go`: a shuffle under a
  // branch the compiler cannot prove warp-uniform costs a collective fallback path.)
  // Row r of group `sub` is the tile's row sub * R + (r ^ x): x = rp for K (transpose_reduce's
  // order), 0 for V.
  auto load_group = [&](const uint16_t* base, int sub, RegRow<E>* dst, bool go, int x) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = __shfl_sync(0xffffffffu, my_row, sub * R + (r ^ x));
      if (go) dst[r].load(reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(base) + mul_wide(row, rs_bytes)));
    }
  };

#pragma unroll 1
  for (int i = 0; i < n_my; ++i) {
    const int t0 = first + i * W * tw;
    const int nvalid = min(tw, e - t0);
    // The group loops stay rolled (#pragma unroll 1): unrolled, the kernel was 90-230 KB of
    // straight-line code per instantiation, executed about once per launch, so nearly every
    // instruction was an instruction-cache miss (H200, ncu: 24 us for a 32-position tile).
    // Registers mode visits only the groups holding valid rows (warp-uniform); the ring consumes
    // every group's slot in order, so it visits all NG.
    const int ng = RING ? NG : (nvalid + R - 1) / R;
    // Registers mode, head_dim <= 256: the rows of the next group (K groups, then V groups) are
    // loaded one group ahead into pf[], so each group's load overlaps the previous group's math
    // (rolled loops do not let the compiler hoist loads across groups). hd 512 runs without
    // it: G * hd of q and accumulators live in registers, and with it (211 -> 255 registers, same
    // occupancy) 32768 positions went 60.6 -> 60.0 us, within noise (H200, session 12).
    // (PF: tile i > 0's first K group was loaded during tile i - 1's last V group; tile 0's
    // when pre, before the PDL wait)
    if (!RING && (!PF || i == 0)) tile_rows(t0);
    if constexpr (PF) load_group(kl, 0, pf, i == 0 && !pre, rp);
    // lane j <- score of row j for every head: row j sits in group j / R, value
    // (j % R) * GC + g % GC of chunk g / GC, held by lane value * (32 / NV)
    float my_s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) my_s[g] = neg_inf();
#pragma unroll 1
    for (int sub = 0; sub < ng; ++sub) {
      float res[NC];
#pragma unroll
      for (int c = 0; c < NC; ++c) res[c] = 0.f;
      const unsigned char* slot = nullptr;
      RegRow<E> rr[RING ? 1 : R];
      if constexpr (RING) {
        slot = acquire();
      } else if constexpr (PF) {
#pragma unroll
        for (int r = 0; r < R; ++r) rr[r] = pf[r];
        // the next K group, or the first V group during the last K group and the softmax
        const bool more = sub + 1 < ng;
        load_group(more ? kl : vl, more ? sub + 1 : 0, pf, true, more ? rp : 0);
      } else {
        load_group(kl, sub, rr, true, rp);
      }
      {  // unconditional: a shuffle under a branch the compiler cannot prove warp-uniform costs a
         // collective fallback path (WARPSYNC/ENDCOLLECTIVE in the SASS). Rows past nvalid hold
         // a duplicate row or stale data: a value's sum only ever adds that row's partials, and
         // those scores land in lanes >= nvalid, which are set to -inf below.
        float v[NC][32];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float kf[E];
          if constexpr (RING)
            halves_to_float<E>(reinterpret_cast<const uint32_t*>(slot + (r ^ rp) * HD * 2) + lane * E / 2, kf);
          else
            halves_to_float<E>(rr[r].w, kf);
#pragma unroll
          for (int g = 0; g < G; ++g) {
            float part = 0.f;
#pragma unroll
            for (int x = 0; x < E; ++x) part = fmaf(qr[g][x], kf[x], part);
            v[g / GC][r * GC + g % GC] = part;
          }
        }
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          transpose_reduce<NV>(v[c]);
          res[c] = v[c][0];
        }
      }
      if constexpr (RING) release();
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const int src = ((lane % R) * GC + g % GC) * (32 / NV);
        const float x = __shfl_sync(0xffffffffu, res[g / GC], src);
        if (lane / R == sub) my_s[g] = x * scale;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g)
      if (lane >= nvalid) my_s[g] = neg_inf();
    float my_p[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float mt = warp_max(my_s[g]);
      const float mn = fmaxf(m[g], mt);
      const float c = kexp(m[g] - mn);
      const float p = lane < nvalid ? kexp(my_s[g] - mn) : 0.f;
      l[g] = l[g] * c + warp_sum(p);
      m[g] = mn;
      my_p[g] = p;
#pragma unroll
      for (int x = 0; x < E; ++x) acc[g][x] = acc[g][x] * c;
    }
#pragma unroll 1
    for (int sub = 0; sub < ng; ++sub) {
      const unsigned char* slot = nullptr;
      RegRow<E> rr[RING ? 1 : R];
      if constexpr (RING) {
        slot = acquire();
      } else if constexpr (PF) {
#pragma unroll
        for (int r = 0; r < R; ++r) rr[r] = pf[r];
        // the next V group, or the next tile's first K group during this tile's last V group
        const bool more = sub + 1 < ng, next = !more && i + 1 < n_my;
        if (next) tile_rows(t0 + W * tw);
        load_group(more ? vl : kl, more ? sub + 1 : 0, pf, more || next, more ? 0 : rp);
      } else {
        load_group(vl, sub, rr, true, 0);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int j = sub * R + r;
        float pj[G];  // shuffled outside the branch (see the K phase)
#pragma unroll
        for (int g = 0; g < G; ++g) pj[g] = __shfl_sync(0xffffffffu, my_p[g], j);
        if (j < nvalid) {
          float vf[E];
          if constexpr (RING)
            halves_to_float<E>(reinterpret_cast<const uint32_t*>(slot + r * HD * 2) + lane * E / 2, vf);
          else
            halves_to_float<E>(rr[r].w, vf);
#pragma unroll
          for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int x = 0; x < E; ++x) acc[g][x] = fmaf(pj[g], vf[x], acc[g][x]);
          }
        }
      }
      if constexpr (RING) release();
    }
  }
  if constexpr (RING) asm volatile("cp.async.wait_group 0;\n" ::);

  // Let the merge kernel's CTAs start launching (they wait for this grid's completion).
  pdl_trigger();

  if (!used) return;  // uniform over the CTA; no shuffles follow
  __syncthreads();  // rings are dead: reuse the shared memory for the warp merge
  float(*sm_acc)[G][HD] = reinterpret_cast<float(*)[G][HD]>(dsm);
  float(*sm_m)[G] = reinterpret_cast<float(*)[G]>(dsm + W * G * HD * 4);
  float(*sm_l)[G] = reinterpret_cast<float(*)[G]>(dsm + W * G * HD * 4 + W * G * 4);
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int i = 0; i < E; ++i) sm_acc[warp][g][lane * E + i] = acc[g][i];
    if (lane == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * HD; idx += W * 32) {
    const int g = idx / HD, d = idx % HD;
    float M = neg_inf();
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, sm_m[w][g]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float mw = sm_m[w][g];
      const float f = mw == neg_inf() ? 0.f : kexp(mw - M);
      L = L + sm_l[w][g] * f;
      O = O + sm_acc[w][g][d] * f;
    }
    const int h = kh * G + g;
    part_o[(int64_t(h) * S + s) * HD + d] = O;
    if (d == 0) part_ml[int64_t(h) * S + s] = make_float2(M, L);
  }
}

// Grid (n_head, hd / 32): CTA (h, y) writes out[h][d] for the 32 dims d = 32 y + lane:
// (sum_s O_s[d] f_s) / (sum_s l_s f_s) over the used splits s = 0..U-1 in order (the split
// kernel left the others unwritten); zeros when *pos < 0. Each output is a chain of U dependent
// adds (the split order is the bit-exact contract), so the merge is latency-bound: the CTA's
// four warps copy its U x 32 block of partials to shared memory with cp.async (one round trip;
// the first chunk is issued before *pos is even read), then warp 0 runs the O chains (lane = dim)
// and warp 1 the denominator's while the others idle. With out_q, warp 0 also writes its 32 dims
// as one Q8_1 block (the output projection's input: no separate quantize launch; hd % 32 == 0
// keeps a block inside one head). H200, ncu at context 32768, hd 512 (132 splits): the previous
// merge (a thread per dim looping over batches of loads, 32 CTAs) took 7.3 us, this one 5.2
// (with 256-split chunks).
// The chunk is small on purpose: the merge's CTAs become resident while the split kernel's still
// run (PDL), and an SM takes them only if both fit the shared-memory carveout the split kernel
// set (the hd 128 kernel: 2 x 8.3 KB, carveout 32 KB). Staging 256 splits (34 KB) cost 4 us at
// context 32768 in attention_bench (hd 128 38.2 -> 42.5 us, hd 512 43.2 -> 47.3); 64 or 80
// splits (8.5 / 10.6 KB) do not (hd 128 37.4 / 37.6, hd 512 41.9 / 42.3 against the previous
// merge's 37.8 / 43.0), and 80 takes the runner's 65-81 used hd 512 splits (contexts 513-641)
// in one pass (context 576: 8.2 us against 8.6 with 64 and 9.0 before).
constexpr int kMergeThreads = 128;
constexpr int kMergeChunk = 80;  // splits staged per pass: 10 KB of partials
__global__ void __launch_bounds__(kMergeThreads)
    attn_decode_merge_kernel(const float* __restrict__ part_o, const float2* __restrict__ part_ml,
                             int S, int hd, const int32_t* __restrict__ pos, int window,
                             float* __restrict__ out, const q8dev::Q8Col out_q) {
  __shared__ __align__(16) float tile[kMergeChunk][32];
  __shared__ __align__(16) float fs[kMergeChunk];  // split weights exp(m_s - M) of the chunk
  __shared__ __align__(16) float ls[kMergeChunk];  // split denominators l_s of the chunk
  __shared__ float red[kMergeThreads / 32];
  pdl_trigger();  // the next kernel (the output projection) may start streaming its weights
  pdl_wait();
  const int h = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t o_idx = int64_t(h) * hd + blockIdx.y * 32 + lane;
  const float* po = part_o + int64_t(h) * S * hd + blockIdx.y * 32;
  auto stage = [&](int c0, int rows) {  // partials of splits c0 .. c0 + rows - 1 -> tile
    for (int i = threadIdx.x; i < rows * 8; i += kMergeThreads) {
      const int r = i >> 3, c = 4 * (i & 7);  // 8 16-byte pieces per split's 32 dims
      smemdev::cp_async16(smemdev::smem_u32(&tile[r][c]), po + int64_t(c0 + r) * hd + c, true);
    }
    smemdev::cp_async_commit();
  };
  stage(0, min(S, kMergeChunk));  // rows past the used splits are staged and never read
  const int qp = *pos;
  const int n = qp < 0 ? 0 : qp - (window > 0 ? max(0, qp - window + 1) : 0) + 1;
  const int U = attn::decode_used_splits(n, S, hd);
  auto emit = [&](float o) {  // warp 0
    out[o_idx] = o;
    if (out_q.col) q8dev::q8_1_warp(o, out_q, o_idx / QK8_1);
  };
  if (U == 0) {
    smemdev::cp_async_wait<0>();  // no copy in flight at exit
    if (warp == 0) emit(0.f);
    return;
  }
  const float2* ml = part_ml + int64_t(h) * S;
  float M = neg_inf();
  for (int s = threadIdx.x; s < U; s += kMergeThreads) M = fmaxf(M, ml[s].x);
  M = warp_max(M);
  if (lane == 0) red[warp] = M;
  __syncthreads();
  M = red[0];
  for (int w = 1; w < kMergeThreads / 32; ++w) M = fmaxf(M, red[w]);
  float O = 0.f, L = 0.f;  // in split order (bit-exact vs ref::attention_decode_split)
  // acc = acc + v[s] * w[s] over s = 0..rows-1, the weights read four at a time
  auto chain = [](float acc, const float* v, int stride, const float* w, int rows) {
    int s = 0;
#pragma unroll 2
    for (; s + 4 <= rows; s += 4) {
      const float4 w4 = *reinterpret_cast<const float4*>(w + s);
      acc = acc + v[s * stride] * w4.x;
      acc = acc + v[(s + 1) * stride] * w4.y;
      acc = acc + v[(s + 2) * stride] * w4.z;
      acc = acc + v[(s + 3) * stride] * w4.w;
    }
    for (; s < rows; ++s) acc = acc + v[s * stride] * w[s];
    return acc;
  };
  for (int c0 = 0; c0 < U; c0 += kMergeChunk) {
    const int rows = min(kMergeChunk, U - c0);
    if (c0 > 0) stage(c0, rows);  // the previous chunk's reads ended at the loop's last barrier
    for (int s = threadIdx.x; s < rows; s += kMergeThreads) {
      const float2 x = ml[c0 + s];
      fs[s] = x.x == neg_inf() ? 0.f : kexp(x.x - M);
      ls[s] = x.y;
    }
    smemdev::cp_async_wait<0>();
    __syncthreads();
    if (warp == 0) O = chain(O, &tile[0][lane], 32, fs, rows);
    if (warp == 1) L = chain(L, ls, 1, fs, rows);
    __syncthreads();
  }
  if (warp == 1 && lane == 0) red[0] = L;  // every warp read red[] before the loop's barriers
  __syncthreads();
  if (warp == 0) emit(O / red[0]);
}


template <int HD, int G, bool RING>
void launch_split(dim3 grid, cudaStream_t st, const float* q, const uint16_t* kc, const uint16_t* vc,
                  int cap, int n_head_kv, float scale, int window, const int32_t* pos, int S,
                  int settled, float* po, float2* pml) {
  launch_pdl(attn_decode_split_kernel<HD, G, RING>, grid, dim3(W * 32),
             size_t(decode_smem_bytes<HD, G, RING>()), st, q, kc, vc, cap, n_head_kv, scale, window,
             pos, S, settled, po, pml);
}

template <int HD, int G, bool RING>
detail::DecodeSplitKernel make_split() {
  detail::DecodeSplitKernel k;
  if constexpr (HD * G <= attn::kDecodeMaxGroupDims) {
    k.fn = reinterpret_cast<const void*>(attn_decode_split_kernel<HD, G, RING>);
    k.smem = decode_smem_bytes<HD, G, RING>();
    k.launch = launch_split<HD, G, RING>;
    static const bool attr_set = [] {
      KILN_CUDA_CHECK(cudaFuncSetAttribute(attn_decode_split_kernel<HD, G, RING>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           decode_smem_bytes<HD, G, RING>()));
      return true;
    }();
    (void)attr_set;
  }
  return k;
}

// Resolves (hd, G, path) to the split kernel instantiation and its shared-memory size.
detail::DecodeSplitKernel split_kernel(int hd, int G, DecodePath path) {
  detail::DecodeSplitKernel k;
  if (path == DecodePath::TensorCores) {
    k = detail::decode_split_tc(hd, G);
    KILN_REQUIRE(k.fn != nullptr, "attention_decode: GQA group ", G, " with head_dim ", hd,
                 " not supported on tensor cores (group in {1, 2, 4, 8})");
    return k;
  }
  const bool ring = path == DecodePath::SharedRing;
  k = detail::dispatch_hd_group<detail::DecodeSplitKernel>(hd, G, [ring](auto h, auto g) {
    constexpr int HD = decltype(h)::value, GG = decltype(g)::value;
    return ring ? make_split<HD, GG, true>() : make_split<HD, GG, false>();
  });
  KILN_REQUIRE(k.fn != nullptr, "attention_decode: GQA group ", G, " with head_dim ", hd,
               " not supported (group in {1, 2, 4, 8}, group * head_dim <= ",
               attn::kDecodeMaxGroupDims, ")");
  return k;
}

}  // namespace

// `want` splits, at least 1, at most 1024 and at most one per `min_chunk` positions of max_ctx
// (attn::decode_min_chunk: more would always be empty). The graph's split count is fixed for its
// longest context, and most decode steps run far below it, where a split holds the minimum chunk.
static int clamp_splits(int64_t want, int64_t max_ctx, int min_chunk) {
  const int64_t useful = (max_ctx + min_chunk - 1) / min_chunk;
  return int(std::max<int64_t>(1, std::min<int64_t>(std::min(want, useful), 1024)));
}

size_t attention_decode_workspace_bytes(int n_head, int hd, int n_splits) {
  // part_ml (float2 per head x split) first, then part_o (256-byte aligned)
  const size_t ml = (size_t(n_head) * n_splits * sizeof(float2) + 255) / 256 * 256;
  return ml + size_t(n_head) * n_splits * hd * sizeof(float);
}

int attention_decode_splits(int n_head_kv, int64_t max_ctx, int sm_count) {
  KILN_REQUIRE(n_head_kv > 0, "attention_decode_splits: n_head_kv ", n_head_kv);
  return clamp_splits((int64_t(3) * sm_count + n_head_kv - 1) / n_head_kv, max_ctx, attn::kDecodeMinChunkAny);
}

bool decode_cluster_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KILN_DECODE_CLUSTER");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

int64_t decode_cluster_ctx(int hd) {
  const int groups = hd <= 128 ? 4 : 512 / hd;  // position groups per CTA (attention_decode_tc.cu)
  return int64_t(attn::kDecodeClusterMax) * 2 * 32 * groups;
}

int attention_decode_splits(int n_head, int n_head_kv, int hd, int64_t max_ctx, int sm_count,
                            DecodePath path) {
  KILN_REQUIRE(n_head_kv > 0 && n_head % n_head_kv == 0 && (hd == 64 || hd == 128 || hd == 256 || hd == 512),
               "attention_decode_splits: bad shape");
  const detail::DecodeSplitKernel k = split_kernel(hd, n_head / n_head_kv, path);
  int per_sm = 0;
  KILN_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k.fn, W * 32, size_t(k.smem)));
  // one full wave of resident CTAs
  const int s = clamp_splits((int64_t(std::max(per_sm, 1)) * sm_count + n_head_kv - 1) / n_head_kv, max_ctx,
                             attn::decode_min_chunk(hd));
  const bool cluster = path == DecodePath::TensorCores && decode_cluster_enabled() && max_ctx <= decode_cluster_ctx(hd) &&
                       int64_t(n_head_kv) * attn::kDecodeClusterMax * 2 <= sm_count;
  return cluster ? std::min(s, attn::kDecodeClusterMax) : s;
}

void attention_decode(const float* q, int64_t q_stride, const uint16_t* k_cache,
                      const uint16_t* v_cache, int64_t cap, int n_head, int n_head_kv, int hd,
                      float scale, int window, const int32_t* pos, int n_splits, void* workspace,
                      size_t workspace_bytes, float* out, BlockQ8_1* out_q, cudaStream_t s, DecodePath path,
                      bool kv_settled, DecodeMerge merge, Q8Layout out_q_layout) {
  KILN_REQUIRE(hd == 64 || hd == 128 || hd == 256 || hd == 512, "attention_decode: head_dim ", hd,
               " not in {64, 128, 256, 512}");
  KILN_REQUIRE(n_head_kv > 0 && n_head > 0 && n_head % n_head_kv == 0, "attention_decode: n_head ",
               n_head, " not a multiple of n_head_kv ", n_head_kv);
  KILN_REQUIRE(cap > 0 && cap <= INT32_MAX && window >= 0, "attention_decode: cap ", cap,
               " window ", window);
  KILN_REQUIRE(n_splits >= 1 && n_splits <= 65535, "attention_decode: n_splits ", n_splits);
  KILN_REQUIRE(workspace_bytes >= attention_decode_workspace_bytes(n_head, hd, n_splits),
               "attention_decode: workspace of ", workspace_bytes, " bytes, need ",
               attention_decode_workspace_bytes(n_head, hd, n_splits));
  KILN_REQUIRE(q_stride == 0, "attention_decode: one token: q_stride must be 0");
  KILN_REQUIRE((reinterpret_cast<uintptr_t>(out_q) & 3) == 0, "attention_decode: out_q must be 4-byte aligned");
  KILN_REQUIRE(q8_layout_valid(out_q_layout), "attention_decode: unknown Q8_1 layout ", int(out_q_layout));
  KILN_REQUIRE(((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k_cache) |
                 reinterpret_cast<uintptr_t>(v_cache) | reinterpret_cast<uintptr_t>(workspace)) & 15) == 0,
               "attention_decode: q, caches and workspace need 16-byte alignment");
  const detail::DecodeSplitKernel k = split_kernel(hd, n_head / n_head_kv, path);
  if (path == DecodePath::TensorCores && merge == DecodeMerge::Auto && decode_cluster_enabled() &&
      n_splits <= attn::kDecodeClusterMax) {  // the merge fused: one launch
    detail::decode_cluster_tc(hd, n_head / n_head_kv)(dim3{unsigned(n_splits), unsigned(n_head_kv)}, s, q, k_cache,
                                                      v_cache, int(cap), n_head_kv, scale, window, pos, n_splits,
                                                      kv_settled ? 1 : 0, out, out_q, out_q_layout);
    return;
  }
  auto* pml = static_cast<float2*>(workspace);
  auto* po = reinterpret_cast<float*>(static_cast<char*>(workspace) +
                                      (size_t(n_head) * n_splits * sizeof(float2) + 255) / 256 * 256);
  k.launch(dim3{unsigned(n_splits), unsigned(n_head_kv)}, s, q, k_cache, v_cache, int(cap),
           n_head_kv, scale, window, pos, n_splits, kv_settled ? 1 : 0, po, pml);
  launch_pdl(attn_decode_merge_kernel, dim3(unsigned(n_head), unsigned(hd / 32)), dim3(kMergeThreads), 0, s,
             static_cast<const float*>(po), static_cast<const float2*>(pml), n_splits, hd, pos, window, out,
             q8dev::Q8Col{out_q, int64_t(n_head) * hd / QK8_1, out_q_layout});
}

}  // namespace kiln
