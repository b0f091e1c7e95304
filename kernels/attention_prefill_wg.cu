// Prefill attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): the path
// attention_prefill takes for head_dim 128 and 256 where the device and the build allow it
// (detail::prefill_wg_supported; PrefillPath in kernels/attention.cuh). Same semantics,
// precisions and contracts as the mma.sync kernel (kernels/attention_prefill.cu): Q and P split
// into FP16 hi + lo (Split) or rounded to FP16 once (Half: Instance LO = false), K and V the
// cache's FP16, F32 accumulation, exp2 online softmax with P scaled by 2^15.
//
// Warp-specialized, as FlashAttention-3: a CTA is one head's 128 query rows and three
// warpgroups. Warpgroup 0 produces: it streams the row tile's key tiles of BC positions into
// STAGES shared-memory stages (cp.async, 128-byte swizzle) and hands each over on a "full"
// mbarrier without waiting for it (cp.async.mbarrier.arrive), so STAGES tiles are in flight;
// consumers free a stage on its "empty" mbarrier. Warpgroups 1 and 2 consume 64 rows each
// (warp w owns rows 16 w .. 16 w + 15, as in the mma.sync kernel):
//   S [64 x BC]  = Q_hi K^T + Q_lo K^T    (A: Q, B: K tile K-major)
//   O [64 x hd] += P_hi V + P_lo V        (A: P in registers, B: V tile MN-major)
// and take turns on the tensor cores (ping-pong on two named barriers): a turn issues S of
// tile j and P.V of tile j - 1 back to back, then the consumer runs tile j's softmax while the
// other one's turn keeps the tensor cores busy. setmaxnreg moves registers from the producer
// (56) to the consumers (224). hd 128 holds Q's A fragments in registers (QREG): the producer
// streams the row tile's Q (float rows) through the ring ahead of its key tiles, so a CTA that
// walks several row tiles (persistent grids) has the next tile's Q landed when its consumers
// finish the last. hd 256 (twice the fragments) stages Q's hi and lo tiles in shared memory of
// their own and reads them in every S.
//
// Measured (H200, attention_bench, T = 8192 causal, us): hd 128 mma.sync 5491; one kernel
// with every warpgroup loading and computing in step (a CTA barrier per tile): 64-key tiles, Q
// from shared memory 3521 -> 128-key tiles 2902 -> 64-key tiles with Q in registers 2810-3100
// (session 18); warp-specialized with the producer waiting for each tile (two in flight) 2785,
// 2 stages 4607; with the asynchronous hand-over, the intra-warpgroup overlap and a 4-stage ring
// 2223 (27.7% of cuBLAS BF16), 3 stages 2222; P's factor in exp2's argument and the skipped
// rescale (session 20) 2143-2182 (28.3-28.8%). Half (no lo halves) 1567, with 128-key tiles 1455
// (42.4%): the split costs 1.5x, not 2x. hd 256 (32-key tiles): lock-step 1825,
// warp-specialized 1233 (25.0%), session 20 1150-1166; Half 780-796, with 48-key tiles 738
// (40.9%). Grid order (session 28, H100, Half): with the row tile the slowest grid dimension
// (every head's longest tile first, instead of one head's tiles longest first, then the next
// head's), hd 128 T 2048 135.1 -> 113.0 us (28.5 -> 33.8% of cuBLAS), T 8192 1464.7 -> 1399.8
// (42.0 -> 43.6%); hd 256 T 8192 742.2 -> 631.6 (41.4 -> 48.3%). In the lock-step design,
// overlapping softmax with P.V was slower (3654 against 3521), as were a truncating P split and
// one warpgroup per CTA with two CTAs per SM (3324).
// Key splits (session 29): where attn::prefill_splits says so (at most 2; short prompts and
// grids of about one wave), a cluster of 2 CTAs shares each row tile's key tiles and merges
// through distributed shared memory (see the kernel's end). H100, T 2048 causal hd 256 (8
// heads: one wave of 128 CTAs, the longest tile twice the mean): Split 118.8 -> 84.4 us, Half
// 77.3 -> 59.7; Gemma 4's sliding shape at T 512: Split 34.8 -> 23.9, Half 25.9 -> 20.2.
// Qwen3's 32 heads lose (hd 128 T 512 Split 19.2 -> 23.1), clusters of 4 lose everywhere.
// Q staged with all its loads in flight (mmadev::stage_split, session 29): +1.3 to +15 % on
// every bench row (a rolled loop waited one round trip per 32 bytes in every CTA's prologue).
// Softmax at one FFMA and one MUFU per score (mmadev::online_softmax, session 30; exp2f without
// -ftz had added a range test and two multiplies, the scale one more): H100, same machine, Half
// hd 128 / 256 T 8192 1357.4 -> 1254.4 / 618.5 -> 581.8 us (43.7 -> 48.3 / 48.0 -> 52.1 % of the
// in-process cuBLAS BF16), T 2048 106.0 -> 97.8 / 59.8 -> 57.1; Split +1.0 to +6.0 %.
// The causal / window mask as its own pass behind the warp-uniform `if (!full)`
// (mmadev::mask_scores, session 34): ptxas had if-converted the mask into predicates on every
// tile (262 of a consumer's 671 instructions per key tile under ncu). H100, same call, Half hd
// 128 / 256 T 8192 1249.3 -> 1130.5 / 594.1 -> 564.3 us (48.5 -> 53.6 / 51.0 -> 53.7 % of
// cuBLAS BF16), T 2048 95.1 -> 87.1 / 58.4 -> 57.2; Split -0.4 to -4.3 %.
// wgmma under a branch the compiler cannot prove warpgroup-uniform is serialized by ptxas
// (warning C7520), so every consumer computes every tile of its CTA and the mask zeroes what its
// rows do not see.
#include <cooperative_groups.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>

#include "kernels/attention.cuh"
#include "kernels/attention_prefill_wg.cuh"
#include "kernels/common/device.cuh"
#include "kernels/common/mma_f16.cuh"
#include "kernels/common/pdl.cuh"
#include "kernels/common/smem_stage.cuh"
#include "kernels/common/wgmma.cuh"

namespace kiln {
namespace {

namespace cg = cooperative_groups;
using mmadev::split_half2;

using smemdev::cp_async16;
using smemdev::cp_async_commit;
using smemdev::cp_async_wait;
using smemdev::smem_u32;

// Device code only where wgmma exists (sm_90a device passes); elsewhere the kernel is a trap.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Byte offset of 16-byte chunk c of row r in a swizzled tile of `rows` rows (wgmma.cuh's layout:
// 64-element atoms along the row, each rows x 128 bytes).
__device__ __forceinline__ uint32_t tile_off(int r, int c, int rows) {
  return uint32_t((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}
// Byte offset of 16-byte chunk c (4 floats) of row r of Q's float rows in a ring entry (QREG):
// 32-byte units XOR-swizzled by r % 4, so each half warp's float2 reads of an A fragment (rows g,
// columns 2t .. 2t + 1 of one unit) hit four different 32-byte units of one 128-byte line.
template <int HD>
__device__ __forceinline__ uint32_t qrow_off(int r, int c) {
  return uint32_t(r * HD * 4 + ((((c >> 1) ^ (r & 3)) << 5) | ((c & 1) << 4)));
}
#endif

// One instantiation: head_dim, keys per tile, ring stages, whether Q's A fragments live in
// registers, and LO: false drops the lo halves of Q and P (PrefillPrecision::Half: half the MMAs).
// QREG: the producer streams each row tile's Q as float rows through the ring ahead of its key
// tiles (QE entries of ROWS / QE rows), and the consumers build their fragments from them; else
// the consumers stage Q_hi [, Q_lo] in FP16 in a region of their own, which S reads every tile.
template <int HD_, int BC_, int STAGES_, bool QREG_, bool LO_ = true>
struct Instance {
  static constexpr int HD = HD_, BC = BC_, STAGES = STAGES_;
  static constexpr bool QREG = QREG_, LO = LO_;
  static constexpr int THREADS = 384, ROWS = 128;  // producer + 2 consumer warpgroups of 64 rows
  static constexpr int Q_TILE = 64 * HD * 2;       // bytes of one consumer's Q_hi (or Q_lo)
  static constexpr int KV_TILE = BC * HD * 2, STAGE = 2 * KV_TILE;  // K then V
  static constexpr int QE = QREG ? ROWS * HD * 4 / STAGE : 0;      // Q's ring entries per row tile
  static constexpr int KV_OFFSET = QREG ? 0 : 2 * (LO ? 2 : 1) * Q_TILE;  // per consumer: Q_hi [, Q_lo]
  // Arrivals that free a stage: every consumer thread where threads read the ring with plain
  // loads (Q's rows: racecheck follows each reading thread's own arrive, not a warp's __syncwarp
  // and one lane's arrive, and reported the one-lane form as races; H100, session 31, same speed
  // within one pass), else one per consumer warp (the stages are read by wgmma only).
  static constexpr bool THREAD_RELEASE = QREG;
  static constexpr int RELEASES = THREAD_RELEASE ? 256 : 8;
  static constexpr int BAR_OFFSET = KV_OFFSET + STAGES * STAGE;     // full[STAGES], empty[STAGES]
  static constexpr int SMEM = BAR_OFFSET + 2 * STAGES * 8 + 1024;   // + alignment of the atoms
  static_assert(HD % 64 == 0 && BC % 16 == 0 && STAGES >= 2, "whole swizzle atoms, k-steps, a ring");
  static_assert(128 % (HD / 8) == 0 && BC % (128 / (HD / 8)) == 0, "the producer's row passes");
  static_assert(!QREG || HD <= 128, "Q_hi + Q_lo fragments: hd / 2 registers per thread");
  static_assert(!QREG || (ROWS * HD * 4 % STAGE == 0 && QE <= STAGES && (ROWS / (QREG ? QE : 1)) % 64 == 0),
                "Q's float rows fill whole entries, all in the ring at once, a consumer's rows in one");
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
__device__ __forceinline__ void mbar_arrive_cp_async(uint32_t a) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}
__device__ __forceinline__ void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
__device__ __forceinline__ void bar_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }
#endif

template <class I>
__global__ void __launch_bounds__(I::THREADS, 1)
    attn_prefill_wg_kernel(const float* __restrict__ q, int64_t q_stride, int T, const int32_t* __restrict__ pos,
                           const uint16_t* __restrict__ kc, const uint16_t* __restrict__ vc, int cap, int n_head,
                           int n_head_kv, float scale_log2, int window, int n_split, int persist_stride,
                           float* __restrict__ out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int HD = I::HD, BC = I::BC, STAGES = I::STAGES;
  constexpr int CH = HD / 8, KS = BC / 16;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;  // swizzle atoms are 1024-byte aligned
  unsigned char* const smem = smem_raw + (base - raw);
  const uint32_t full0 = base + I::BAR_OFFSET, empty0 = full0 + STAGES * 8;

  pdl_trigger();
  pdl_wait();
  const int tid = threadIdx.x, wg = tid / 128, wt = tid % 128, warp = wt / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  // Work items (head, row tile); item w = row-tile rank * n_head + head, so every head's
  // heaviest (latest) row tile comes before any head's next one (attention.cuh: longest first).
  // stride == 0: one item per CTA, grid (n_split x n_head, row tiles), CTAs (clusters of n_split
  // along x) handed out x fastest. stride > 0 (persistent; n_split 1): the grid is `stride` CTAs,
  // and CTA b takes item k stride + b in even rounds k and k stride + stride - 1 - b in odd ones
  // (a snake: the longest of one round, then the shortest of the next), so its producer streams
  // the next item's keys and Q while the consumers finish the last one. Only QREG instances run
  // persistent (plan_for): a compile-time 0 gives the others the one-item code.
  const int stride = I::QREG ? persist_stride : 0;
  const int n_rt = (T + I::ROWS - 1) / I::ROWS, n_items = n_rt * n_head;
  const int b = int(blockIdx.x), rank = stride ? 0 : b % n_split;  // rank: the CTA's in its cluster
  const int n_rounds = stride ? (n_items + stride - 1) / stride : 1;
  auto item_of = [&](int k) {
    return stride ? k * stride + ((k & 1) ? stride - 1 - b : b) : int(blockIdx.y) * n_head + b / n_split;
  };
  const int P0 = pos[0];
  struct Item {
    int h, q0, rows, kv_lo, kv_hi, n_tiles;
  };
  auto item = [&](int w) {
    Item it;
    it.h = w % n_head;
    it.q0 = (n_rt - 1 - w / n_head) * I::ROWS;
    it.rows = min(I::ROWS, T - it.q0);
    // The row tile's keys [tile_lo, tile_hi] are n_all key tiles; this CTA takes tiles [j0, j1)
    // of them as its range [kv_lo, kv_hi]. An empty share (n_all < n_split) runs one tile with
    // every key masked (kv_hi = kv_lo - 1: nothing loaded, m stays -inf, l and O 0): a CTA-uniform
    // branch around the wgmma would serialize them all (C7520, see the top of the file).
    const int tile_hi = P0 + it.q0 + it.rows - 1;
    const int tile_lo = window > 0 ? max(0, P0 + it.q0 - window + 1) : 0;
    const int n_all = (tile_hi - tile_lo + BC) / BC;
    const int j0 = rank * n_all / n_split, j1 = (rank + 1) * n_all / n_split;
    it.kv_lo = tile_lo + j0 * BC;
    it.kv_hi = j1 > j0 ? min(tile_hi, tile_lo + j1 * BC - 1) : it.kv_lo - 1;
    it.n_tiles = max(j1 - j0, 1);
    return it;
  };
  const uint32_t sKV = base + I::KV_OFFSET;
  if (tid == 0) {
    for (int st = 0; st < STAGES; ++st) {
      mbar_init(full0 + 8 * st, 128);  // every producer thread, once its copies have landed
      mbar_init(empty0 + 8 * st, I::RELEASES);  // consumers done reading the stage (Instance)
    }
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n");
    const int64_t rs = int64_t(n_head_kv) * HD;
    // This thread's rows r0 + 128 / CH * i of each tile, chunk wt % CH. The rows loaded span at
    // most cap positions (kv_lo..kv_hi fits the ring), so one conditional wrap replaces p % cap;
    // a tile whose rows would still pass the cache after it (a breach of that contract the host
    // cannot see: the positions live on the device) is zero-filled instead of read. A modulo per
    // row here (the decode kernels' ring_row) cost 7 % at hd 128 (H200, T 8192: 2209 -> 2370 us),
    // a test per row a register (spills).
    const int r0 = wt / CH, cc = wt % CH;
    int jg = 0;  // entries streamed so far, over all items: the ring's running index
    auto acquire = [&]() {  // the stage of entry jg, once the consumers have freed it
      const int st = jg % STAGES;
      if (jg >= STAGES) {
        mbar_wait(empty0 + 8 * st, uint32_t((jg / STAGES - 1) & 1));
        // Entry jg - STAGES's copies into this stage have landed (the consumers waited for them
        // before freeing it), so this returns at once; it tells racecheck so, which does not
        // follow cp.async completion through an mbarrier (else: write-after-write hazards).
        cp_async_wait<STAGES - 1>();
      }
      return st;
    };
    // The stage's full barrier counts this thread once its copies land; no wait here, so
    // STAGES entries are in flight. The consumers fence the async proxy after their wait.
    auto hand_over = [&](int st) {
      cp_async_commit();
      mbar_arrive_cp_async(full0 + 8 * st);
      ++jg;
    };
    for (int k = 0; k < n_rounds; ++k) {
      const int w = item_of(k);
      if (w >= n_items) continue;
      const Item it = item(w);
      if constexpr (I::QREG) {  // Q's float rows first: QE entries of QR rows (rows past T zero)
        // This thread's chunk wt % QC of rows wt / QC + RP n (the swizzle is the same in all)
        constexpr int QR = I::ROWS / I::QE, QC = HD / 4, RP = 128 / QC;
        static_assert(RP % 4 == 0 && QR % RP == 0, "one swizzle for all of a thread's rows");
        const int rq = wt / QC;
        const float* const src = q + int64_t(it.q0 + rq) * q_stride + int64_t(it.h) * HD + (wt % QC) * 4;
        const uint32_t dst = sKV + qrow_off<HD>(rq, wt % QC);
        for (int e = 0; e < I::QE; ++e) {
          const int st = acquire();
#pragma unroll 1  // unrolled, ptxas kept every pass's address live and spilled (both QREG instances)
          for (int n = 0; n < QR / RP; ++n) {
            const int r = e * QR + RP * n;  // + rq: the row in the tile
            const bool ok = r + rq < it.rows;
            cp_async16(dst + st * I::STAGE + RP * n * HD * 4, src + (ok ? int64_t(r) * q_stride : 0), ok);
          }
          hand_over(st);
        }
      }
      const int kh = it.h / (n_head / n_head_kv), kv_lo = it.kv_lo, kv_hi = it.kv_hi;
      const uint16_t* kbase = kc + int64_t(kh) * HD;
      const uint16_t* vbase = vc + int64_t(kh) * HD;
      for (int j = 0; j < it.n_tiles; ++j) {
        const int st = acquire();
        const int kb = kv_lo + j * BC;
        const int ring0 = kb % cap;
        // rows kb .. last are loaded; one wrap keeps them in the cache iff ring0 + last - kb < 2 cap
        const int last = min(kb + BC - 1, kv_hi);
        const int lim = ring0 + (last - kb) < 2 * cap ? kv_hi : kb - 1;
        const uint32_t sK = sKV + st * I::STAGE, sV = sK + I::KV_TILE;
#pragma unroll
        for (int r = r0; r < BC; r += 128 / CH) {
          int pr = ring0 + r;
          pr = pr >= cap ? pr - cap : pr;
          const bool ok = kb + r <= lim;
          const int64_t row = ok ? int64_t(pr) * rs + cc * 8 : 0;
          cp_async16(sK + tile_off(r, cc, BC), kbase + row, ok);
          cp_async16(sV + tile_off(r, cc, BC), vbase + row, ok);
        }
        hand_over(st);
      }
    }
    if (n_split > 1) {  // the merge's two cluster barriers count every thread of the cluster
      cg::this_cluster().sync();
      cg::this_cluster().sync();
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n");
  const int c = wg - 1;  // consumer 0 or 1: rows [64 c, 64 c + 64) of the CTA
  const int wq0 = c * 64;
  unsigned char* const qhi = smem + c * (I::LO ? 2 : 1) * I::Q_TILE;  // !QREG
  unsigned char* const qlo = qhi + I::Q_TILE;
  const uint64_t dq_hi = wgmma::desc(smem_u32(qhi), 16, 1024), dq_lo = wgmma::desc(smem_u32(qlo), 16, 1024);
  int jg = 0;  // the ring index of the item's first entry (the producer's running count)
  if (c == 1) bar_arrive(1, 256);  // opens consumer 0's first turn (the turns below)
  for (int k = 0; k < n_rounds; ++k) {
    const int w = item_of(k);
    if (w >= n_items) continue;
    const Item it = item(w);
    const int h = it.h, q0 = it.q0, rows = it.rows, kv_lo = it.kv_lo, kv_hi = it.kv_hi, n_tiles = it.n_tiles;
    // QREG: the warp's Q_hi / Q_lo A fragments (rows 16 warp .., k-step ks), from the item's
    // first QE ring entries: thread (g, t) holds rows g, g + 8 x columns 16 ks + 2 t (+ 1) and
    // 16 ks + 8 + 2 t (+ 1), as ldmatrix would give them. Each thread waits for every entry and
    // frees every entry (the empty barriers count every consumer thread: freeing one not waited
    // for could count in its previous phase).
    uint32_t qf[I::QREG ? HD / 16 : 1][4], qlf[I::QREG ? HD / 16 : 1][4];
    int jt = jg;  // the ring index of the item's first key tile
    if constexpr (I::QREG) {
      constexpr int QR = I::ROWS / I::QE;
      for (int e = 0; e < I::QE; ++e) mbar_wait(full0 + 8 * ((jg + e) % STAGES), uint32_t(((jg + e) / STAGES) & 1));
      const int e = wq0 / QR, r = wq0 - e * QR + warp * 16 + g;  // this thread's rows r, r + 8 of the entry
      // Row r's columns 16 ks + 8 (x >> 1) + 2 t, + 1 for fragment register x (row + 8 (x & 1)):
      // unit 2 ks + (x >> 1) of qrow_off, written here as compile-time offsets from one pointer
      // and a per-thread swizzle (32 addresses computed per item stayed live across the item loop
      // and spilled).
      const unsigned char* const sq = smem + I::KV_OFFSET + ((jg + e) % STAGES) * I::STAGE + r * HD * 4 + 8 * t;
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
#pragma unroll
        for (int x = 0; x < 4; ++x) {
          const int u = 2 * ks + (x >> 1);
          const float2 v =
              *reinterpret_cast<const float2*>(sq + 8 * (x & 1) * HD * 4 + (u >> 2) * 128 + (((u & 3) ^ (r & 3)) << 5));
          split_half2(v.x, v.y, qf[ks][x], qlf[ks][x]);  // Half never reads qlf: its lo is dead code
        }
      }
      for (int e2 = 0; e2 < I::QE; ++e2) mbar_arrive(empty0 + 8 * ((jg + e2) % STAGES));  // THREAD_RELEASE
      jt = jg + I::QE;
    } else {
      const int wrows = min(64, rows - wq0);
      // Q's 64 rows x HD floats, 64 * CH / 128 pieces per thread (mmadev::stage_split)
      mmadev::stage_split<64 * CH / 128>(
          wt, 128,
          [&](int i) {
            const int r = i / CH, cc = i % CH;
            return r < wrows ? q + int64_t(q0 + wq0 + r) * q_stride + int64_t(h) * HD + cc * 8 : nullptr;
          },
          [&](int i, uint4 hi, uint4 lo) {
            *reinterpret_cast<uint4*>(qhi + tile_off(i / CH, i % CH, 64)) = hi;
            if constexpr (I::LO) *reinterpret_cast<uint4*>(qlo + tile_off(i / CH, i % CH, 64)) = lo;
          });
      wgmma::fence_proxy_async();  // S reads Q_hi / Q_lo through the async proxy
      bar_sync(3 + c, 128);        // this consumer's Q tile is staged
    }

    float o[HD / 2], s[BC / 2];
#pragma unroll
    for (int i = 0; i < HD / 2; ++i) o[i] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    const int qpos0 = P0 + q0 + wq0 + warp * 16 + g;
    const int wpos_lo = P0 + q0 + wq0, wpos_hi = wpos_lo + 63;
    uint32_t ph[KS][4], pl[KS][4];

    // Turns (FA3's ping-pong): consumer c issues on barrier 1 + c once the other has issued (256
    // threads: 128 bar.sync + 128 bar.arrive). A turn issues S(j) = Q K_j^T and P(j-1) V(j-1)
    // back to back, so the tensor cores are fed while the other consumer runs its softmax. Each
    // consumer takes n_tiles + 1 turns per item, so the turns alternate across items too; consumer
    // 1 opens consumer 0's first (before the first item) and consumer 0 takes one extra sync after
    // the last, so both barriers end balanced. (Per item instead, consumer 1 could open the next
    // item's first turn before consumer 0's extra sync of the last had paired with consumer 1's
    // final arrive: two arrives in one barrier generation.) Every tile of the CTA is
    // computed by both consumers, the mask zeroing what a consumer's rows do not see: one wgmma
    // under such a branch makes ptxas serialize every wgmma of the kernel (C7520; ptxas_guard).
    // Key tile j of this item is the ring's entry jt + j.
    auto stage_k = [&](int j) { return sKV + ((jt + j) % STAGES) * I::STAGE; };
    auto take = [&](int j) {  // wait until tile j's stage has landed
      mbar_wait(full0 + 8 * ((jt + j) % STAGES), uint32_t(((jt + j) / STAGES) & 1));
      wgmma::fence_proxy_async();  // cp.async wrote the stage through the generic proxy
    };
    auto issue_s = [&](int j) {  // S = Q_hi K^T + Q_lo K^T; k-step ks: atom ks / 4, + 32 bytes per step
      const uint64_t dk = wgmma::desc(stage_k(j), 16, 1024);
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
        const uint32_t qo = uint32_t((ks >> 2) * 64 * 128 + (ks & 3) * 32);
        const uint64_t ko = uint64_t(((ks >> 2) * BC * 128 + (ks & 3) * 32) >> 4);
        if constexpr (I::QREG) {
          wgmma::rs_kmajor(s, qf[ks], dk + ko, ks > 0);
          if constexpr (I::LO) wgmma::rs_kmajor(s, qlf[ks], dk + ko, 1);
        } else {
          wgmma::ss(s, wgmma::advance(dq_hi, qo), dk + ko, ks > 0);
          if constexpr (I::LO) wgmma::ss(s, wgmma::advance(dq_lo, qo), dk + ko, 1);
        }
      }
      wgmma::commit();
    };
    auto issue_pv = [&](int j) {  // V tile MN-major: 16 keys per k-step (2048 bytes), LBO = next 64 dims
      const uint64_t dv = wgmma::desc(stage_k(j) + I::KV_TILE, BC * 128, 1024);
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        const uint64_t vo = uint64_t((kk * 16 * 128) >> 4);
        wgmma::rs(o, ph[kk], dv + vo, 1);
        if constexpr (I::LO) wgmma::rs(o, pl[kk], dv + vo, 1);
      }
      wgmma::commit();
    };
    auto release = [&](int j) {  // this thread / warp is done with tile j's stage
      if constexpr (I::THREAD_RELEASE) {
        mbar_arrive(empty0 + 8 * ((jt + j) % STAGES));
      } else {
        __syncwarp();
        if (lane == 0) mbar_arrive(empty0 + 8 * ((jt + j) % STAGES));
      }
    };
    // Masked online softmax of S(j) in place (s becomes P * kPScale); returns o's correction.
    auto softmax = [&](int j, float(&corr)[2]) {
      const int kb = kv_lo + j * BC;
      const bool full = kb + BC - 1 <= wpos_lo && kb + BC - 1 <= kv_hi && (window == 0 || wpos_hi - kb < window);
      mmadev::online_softmax<BC / 8>(s, full, kb, qpos0, kv_hi, window, t, scale_log2, mrow, lrow, corr);
    };
    auto rescale_and_split = [&](const float(&corr)[2]) {
      if (!mmadev::warp_corr_is_one(corr)) {
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) {
          o[4 * n] *= corr[0], o[4 * n + 1] *= corr[0];
          o[4 * n + 2] *= corr[1], o[4 * n + 3] *= corr[1];
        }
      }
#pragma unroll
      for (int kk = 0; kk < KS; ++kk) {
        split_half2(s[8 * kk], s[8 * kk + 1], ph[kk][0], pl[kk][0]);
        split_half2(s[8 * kk + 2], s[8 * kk + 3], ph[kk][1], pl[kk][1]);
        split_half2(s[8 * kk + 4], s[8 * kk + 5], ph[kk][2], pl[kk][2]);
        split_half2(s[8 * kk + 6], s[8 * kk + 7], ph[kk][3], pl[kk][3]);
      }
    };

    float corr[2];
    take(0);
    bar_sync(1 + c, 256);
    wgmma::fence();
    issue_s(0);
    bar_arrive(2 - c, 256);
    wgmma::wait<0>();
    wgmma::pin(s);
    softmax(0, corr);
    rescale_and_split(corr);
#pragma unroll 1
    for (int j = 1; j < n_tiles; ++j) {
      take(j);
      bar_sync(1 + c, 256);
      wgmma::fence();
      issue_s(j);
      issue_pv(j - 1);
      bar_arrive(2 - c, 256);
      wgmma::wait<1>();  // S(j)
      wgmma::pin(s);
      softmax(j, corr);
      wgmma::wait<0>();  // P(j-1) V(j-1): o may be rescaled, tile j - 1's stage is free
      wgmma::pin(o);
      release(j - 1);
      rescale_and_split(corr);
    }
    bar_sync(1 + c, 256);
    wgmma::fence();
    issue_pv(n_tiles - 1);
    bar_arrive(2 - c, 256);
    wgmma::wait<0>();
    wgmma::pin(o);
    release(n_tiles - 1);

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 1);
      lrow[r] += __shfl_xor_sync(0xffffffffu, lrow[r], 2);
    }
    // Key split: consumer warp cw (rows 16 cw .. of the CTA) of the cluster's CTA cw * n_split / 8
    // owns its rows. Every other CTA's warp cw leaves its unnormalized O fragment, m and l in its
    // shared memory (Q and the stages are free once both consumers' last P.V is done); after the
    // cluster barrier the owner folds them into its registers in rank order, reading them through
    // distributed shared memory:
    //   O = sum_p 2^(m_p - M) O_p,  l = sum_p 2^(m_p - M) l_p,  M = max_p m_p
    // (M = 0 when every m_p is -inf -- a padded row past T -- which leaves O = l = 0). The same
    // lane reads the same offsets it would have written: [warp][value][lane], conflict-free.
    const int cw = c * 4 + warp;
    const bool owner = cw * n_split / 8 == rank;
    if (n_split > 1) {
      constexpr int PW = HD / 2 + 4;  // o, m[2], l[2] per lane
      static_assert(8 * PW * 32 * 4 <= I::BAR_OFFSET, "the partials fit below the mbarriers");
      float* const part = reinterpret_cast<float*>(smem);
      bar_sync(5, 256);  // both consumers' wgmma are done reading Q and the stages
      if (!owner) {
        float* const w = part + cw * PW * 32 + lane;
#pragma unroll
        for (int i = 0; i < HD / 2; ++i) w[i * 32] = o[i];
#pragma unroll
        for (int r = 0; r < 2; ++r) w[(HD / 2 + r) * 32] = mrow[r], w[(HD / 2 + 2 + r) * 32] = lrow[r];
      }
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();  // partials visible cluster-wide
      if (owner) {
        float mx[2] = {mrow[0], mrow[1]};
        for (int p = 0; p < n_split; ++p) {
          const float* const w = cluster.map_shared_rank(part, p) + cw * PW * 32 + lane;
          if (p != rank) mx[0] = fmaxf(mx[0], w[(HD / 2) * 32]), mx[1] = fmaxf(mx[1], w[(HD / 2 + 1) * 32]);
        }
        const float mu[2] = {mx[0] == -INFINITY ? 0.f : mx[0], mx[1] == -INFINITY ? 0.f : mx[1]};
        const float f0 = exp2f(mrow[0] - mu[0]), f1 = exp2f(mrow[1] - mu[1]);
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) o[4 * n] *= f0, o[4 * n + 1] *= f0, o[4 * n + 2] *= f1, o[4 * n + 3] *= f1;
        lrow[0] *= f0, lrow[1] *= f1;
        for (int p = 0; p < n_split; ++p) {
          if (p == rank) continue;
          const float* const w = cluster.map_shared_rank(part, p) + cw * PW * 32 + lane;
          const float w0 = exp2f(w[(HD / 2) * 32] - mu[0]), w1 = exp2f(w[(HD / 2 + 1) * 32] - mu[1]);
#pragma unroll
          for (int n = 0; n < HD / 8; ++n) {
            o[4 * n] += w0 * w[(4 * n) * 32], o[4 * n + 1] += w0 * w[(4 * n + 1) * 32];
            o[4 * n + 2] += w1 * w[(4 * n + 2) * 32], o[4 * n + 3] += w1 * w[(4 * n + 3) * 32];
          }
          lrow[0] += w0 * w[(HD / 2 + 2) * 32], lrow[1] += w1 * w[(HD / 2 + 3) * 32];
        }
      }
      cluster.sync();  // no CTA leaves while another still reads its shared memory
    }
    if (owner) {  // else another CTA of the cluster stores these rows (no return: C7520)
      const float inv0 = lrow[0] > 0.f ? 1.f / lrow[0] : 0.f;
      const float inv1 = lrow[1] > 0.f ? 1.f / lrow[1] : 0.f;
      const int r0 = wq0 + warp * 16 + g;  // row within the CTA
      const int64_t ostride = int64_t(n_head) * HD;
      float* const orow0 = out + int64_t(q0 + r0) * ostride + int64_t(h) * HD + 2 * t;
#pragma unroll
      for (int n = 0; n < HD / 8; ++n) {
        if (r0 < rows) *reinterpret_cast<float2*>(orow0 + 8 * n) = make_float2(o[4 * n] * inv0, o[4 * n + 1] * inv0);
        if (r0 + 8 < rows)
          *reinterpret_cast<float2*>(orow0 + 8 * ostride + 8 * n) =
              make_float2(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
      }
    }
    jg = jt + n_tiles;
  }
  if (c == 0) bar_sync(1, 256);  // pairs with consumer 1's last arrive
#else
  __trap();  // not built for sm_90a: prefill_wg_supported() keeps the host from launching it
#endif
}

// hd 128: 64-key tiles, Q in registers, 5 x 32 KiB, Q's float rows two of the entries (Half:
// 128-key tiles, which the freed lo registers allow, 3 x 64 KiB, Q one entry; H200, T 8192 causal,
// with Q in a region of its own: 1567 -> 1452 us, T 2048 147 -> 134);
// hd 256: 32-key tiles, 128 + 3 x 32 KiB (Half: Q_hi only, 48-key tiles, 64 + 3 x 48 KiB; T 8192
// 781 -> 739 us, T 2048 87.8 -> 82.0; 4 stages of 32 keys measured the same as 3, 2 of 64 slower).
template <class F>
auto with_instance(int hd, bool split, F f) {
  if (hd == 128) return split ? f(Instance<128, 64, 5, true>{}) : f(Instance<128, 128, 3, true, false>{});
  return split ? f(Instance<256, 32, 3, false>{}) : f(Instance<256, 48, 3, false, false>{});
}

// The instantiation's kernel, its shared memory opted in on first use.
template <class I>
auto configured_kernel() {
  auto kernel = attn_prefill_wg_kernel<I>;
  static const bool configured = [&] {  // once per instantiation
    KILN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, I::SMEM));
    return true;
  }();
  (void)configured;
  return kernel;
}

// attn::prefill_splits for this instantiation on the current device, at most 2: clusters of 4
// lost to 1 and 2 in every shape measured (H100, session 29: hd 128 T 512 56.5 us against 19.2
// unsplit and 23.1 in pairs; hd 256 T 512 Split 30.1 against 33.7 and 23.2).
template <class I>
const std::array<int, 3>& slots_of() {  // resident CTAs by cluster size 1, 2, 4 (once)
  static const std::array<int, 3> slots =
      resident_ctas_by_cluster(reinterpret_cast<const void*>(configured_kernel<I>()), I::THREADS, size_t(I::SMEM));
  return slots;
}

// How prefill_wg launches a shape: its key split, and the persistent grid's CTA count (0: one
// CTA per item). Unsplit hd 128 (QREG) grids of more than one wave run persistent: `resident`
// CTAs walk the items (the kernel's top says in what order), each CTA's next item's Q and keys
// loading behind its last. H100, against one CTA per item, us: hd 128 Half T 2048 97.1 -> 93.3,
// T 8192 1249.2 -> 1213.9; Split 142.8 -> 136.9, 1945.4 -> 1856.4 (session 31, with the Q ring;
// session 30 without it: +1.0 to +2.3 %). hd 256 (Q staged by the consumers, S reading it from
// shared memory) gained at most 0.5 % (session 30), and the item loop cost its one-item launches
// 1-3.6 % (session 31), so it keeps those.
struct Plan {
  int n_split, stride;
};
template <class I>
Plan plan_for(int T, int n_head, int window) {
  const std::array<int, 3>& slots = slots_of<I>();
  const int n_split = attn::prefill_splits(T, n_head, I::ROWS, I::BC, window, slots.data(), 2);
  const int64_t ctas = int64_t(n_head) * ((T + I::ROWS - 1) / I::ROWS);
  const bool persist = I::QREG && n_split == 1 && slots[0] > 0 && ctas > slots[0];
  return {n_split, persist ? slots[0] : 0};
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

int prefill_wg_splits(int T, int n_head, int hd, int window, bool split) {
  KILN_REQUIRE(prefill_wg_supported(hd), "attention_prefill: the wgmma path does not serve head_dim ", hd,
               " on this device/build");
  return with_instance(hd, split, [&](auto i) { return plan_for<decltype(i)>(T, n_head, window).n_split; });
}

bool prefill_wg_persistent(int T, int n_head, int hd, int window, bool split) {
  KILN_REQUIRE(prefill_wg_supported(hd), "attention_prefill: the wgmma path does not serve head_dim ", hd,
               " on this device/build");
  return with_instance(hd, split, [&](auto i) { return plan_for<decltype(i)>(T, n_head, window).stride > 0; });
}

void prefill_wg(const float* q, int64_t q_stride, int T, const int32_t* pos, const uint16_t* kc,
                const uint16_t* vc, int cap, int n_head, int n_head_kv, int hd, float scale_log2, int window,
                bool split, float* out, cudaStream_t s) {
  KILN_REQUIRE(prefill_wg_supported(hd), "attention_prefill: the wgmma path does not serve head_dim ", hd,
               " on this device/build");
  with_instance(hd, split, [&](auto i) {
    using I = decltype(i);
    const Plan plan = plan_for<I>(T, n_head, window);
    // persistent: `stride` CTAs; else (n_split x heads, row tiles): row tiles slowest, clusters
    // of a row tile's n_split CTAs
    const dim3 grid = plan.stride ? dim3(unsigned(plan.stride))
                                  : dim3(unsigned(plan.n_split * n_head), unsigned((T + I::ROWS - 1) / I::ROWS));
    launch_pdl_cluster(configured_kernel<I>(), grid, dim3(I::THREADS), size_t(I::SMEM), s,
                       unsigned(plan.n_split > 1 ? plan.n_split : 0), q, q_stride, T, pos, kc, vc, cap, n_head,
                       n_head_kv, scale_log2, window, plan.n_split, plan.stride, out);
  });
}

}  // namespace detail
}  // namespace kiln
