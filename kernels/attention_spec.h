// The parts of the attention kernels' numerical specification that their CPU references must
// share: the decode kernel's split/tile geometry (it fixes the float reduction order that
// ref::attention_decode_split<float> follows bit for bit). Host-only, no CUDA: included by
// kernels/attention.cuh and reference/attention.h alike.
#pragma once

#include <array>
#include <functional>
#include <queue>
#include <vector>

#include "kernels/common/hd.h"

namespace kiln::attn {

// Decode: one CTA per (split, kv head) runs kDecodeWarps warps; warp w walks the split's positions
// in tiles of kDecodeTile consecutive positions, tiles w, w + kDecodeWarps, ... (see
// reference/attention.h, attention_decode_split, for the full order).
constexpr int kDecodeWarps = 4;
constexpr int kDecodeTile = 32;

// Most splits whose merge the tensor-core decode path fuses into the split kernel (one thread-
// block cluster per kv head; 16 is the non-portable cluster limit, which sm_90 allows).
constexpr int kDecodeClusterMax = 16;

// Largest GQA group x head_dim a decode CTA keeps in registers (q and the accumulator).
constexpr int kDecodeMaxGroupDims = 2048;

// Positions per split for a query attending to n positions with n_splits splits: ceil(n /
// n_splits), but never fewer than decode_min_chunk(hd). The split count is fixed when the decode
// graph is captured (sized for the longest context), so at short contexts splits would otherwise
// hold a handful of positions each while every split still writes, and the merge still reads, its
// G * hd partial floats per head. With the minimum only the first ceil(n / chunk) splits hold
// positions; the rest are empty and are skipped by the split kernel, the merge and
// ref::attention_decode_split alike. The minimum depends on head_dim: 32 positions for hd <= 128
// (one 8-row group per warp, decode_warp_tile: 4x fewer CTAs and partials than 8-position splits;
// H200, Qwen3's shape at context 576: 12.6 -> 9.2 us), 8 above (a CTA's four warps then pull 16-32
// KB per phase through one SM, and fewer SMs take part: with 32, Gemma 4's hd 256 / 512 layers
// at context 576 went 10.4 -> 10.9 and 15.7 -> 17.1 us).
KILN_HD constexpr int decode_min_chunk(int hd) { return hd <= 128 ? 32 : 8; }
constexpr int kDecodeMinChunkAny = decode_min_chunk(512);  // the smallest, at the largest head_dim
KILN_HD constexpr long long decode_chunk(long long n, int n_splits, int hd) {
  const long long c = (n + n_splits - 1) / n_splits;
  return c < decode_min_chunk(hd) ? decode_min_chunk(hd) : c;
}
// Positions per warp tile in a split of `chunk` positions: kDecodeTile (32, one per lane) when
// every warp gets at least that much, else 8 or 16, so the split's kDecodeWarps warps share a
// short split instead of its first warp walking it alone (a tile is read one 8-row group per
// memory round trip; lanes past the tile's positions are masked as at a split's end).
KILN_HD constexpr int decode_warp_tile(long long chunk) {
  const long long per_warp = (chunk + kDecodeWarps - 1) / kDecodeWarps;
  return per_warp <= 8 ? 8 : (per_warp <= 16 ? 16 : kDecodeTile);
}
// Splits that hold positions (>= 1 for n >= 1).
KILN_HD constexpr int decode_used_splits(long long n, int n_splits, int hd) {
  return n <= 0 ? 0 : int((n + decode_chunk(n, n_splits, hd) - 1) / decode_chunk(n, n_splits, hd));
}

// Prefill key splits, both kernels: s CTAs (a thread-block cluster) share one (row tile, head)'s
// key tiles, each taking a contiguous share, and merge their partial softmax states through
// distributed shared memory. A causal grid is lopsided -- the last row tile attends all T keys,
// the first only its own -- so a grid of about one wave lasts as long as its longest tile (Gemma
// 4's 8 heads x 16 row tiles at T = 2048 on 132 SMs: twice the mean), and a short prompt leaves
// SMs idle. Splitting shortens that critical path but adds s - 1 CTAs' fixed cost (staging Q,
// filling the pipeline) and a merge. prefill_splits picks s from a list-scheduling model of the
// grid: each CTA costs its key tiles + kPrefillCtaTiles (+ kPrefillMergeTiles when split), the
// CTAs go out longest row tile first (the grid order) to the first free of the resident slots.
// The overheads are fitted to the wgmma kernel on an H100 (session 29): with them the model
// picks the faster of 1 and 2 splits in all 12 measured shapes (hd 128 / 256, Split / Half,
// T 512 / 2048, causal and window 512). The model depends on the shape and device only.
constexpr int kPrefillMaxSplit = 4;
constexpr int kPrefillCtaTiles = 2, kPrefillMergeTiles = 1;
// Estimated finish time, in key tiles, of n_head x ceil(T / rows) row tiles (chunk at position
// 0; each tile's causal key range, or the window) split s ways into key tiles of bc keys, on
// `slots` resident CTAs. An empty share (fewer key tiles than s) still costs one tile: the
// kernels run one fully masked tile rather than branch around their MMAs.
inline long long prefill_makespan(int T, int n_head, int rows, int bc, int window, int s, int slots) {
  std::priority_queue<long long, std::vector<long long>, std::greater<long long>> free_at;
  for (int i = 0; i < slots; ++i) free_at.push(0);
  long long end = 0;
  for (int qt = (T + rows - 1) / rows - 1; qt >= 0; --qt) {
    const int hi = (qt + 1) * rows < T ? (qt + 1) * rows - 1 : T - 1;
    const int lo = window > 0 && qt * rows - window + 1 > 0 ? qt * rows - window + 1 : 0;
    const int n = (hi - lo + bc) / bc;
    for (int h = 0; h < n_head; ++h)
      for (int r = 0; r < s; ++r) {
        const int share = (r + 1) * n / s - r * n / s;
        const long long t = free_at.top() + (share > 0 ? share : 1) + kPrefillCtaTiles + (s > 1 ? kPrefillMergeTiles : 0);
        free_at.pop();
        free_at.push(t);
        end = t > end ? t : end;
      }
  }
  return end;
}
// The split: the smallest power of two up to max_split whose makespan beats every smaller one's
// by 5 %; none for grids of four waves or more (balanced already; the model is not run for them)
// or where a cluster of s does not fit. slots[i]: resident CTAs when they come in clusters of
// 2^i (i = 0, 1, 2).
// The last answer is kept per thread: a prefill asks the same question once per layer, and the
// model runs up to 4 x slots x max_split CTAs through a heap (tens of us).
inline int prefill_splits(int T, int n_head, int rows, int bc, int window, const int* slots, int max_split) {
  if (T < 1 || slots[0] < 1 || (long long)((T + rows - 1) / rows) * n_head >= 4LL * slots[0]) return 1;
  const std::array<int, 9> key{T, n_head, rows, bc, window, slots[0], slots[1], slots[2], max_split};
  thread_local std::array<int, 9> last_key{};
  thread_local int last = 0;
  if (last > 0 && key == last_key) return last;
  int best = 1;
  long long best_t = prefill_makespan(T, n_head, rows, bc, window, 1, slots[0]);
  for (int s = 2, i = 1; s <= max_split && s <= kPrefillMaxSplit; s *= 2, ++i) {
    if (slots[i] < s) break;
    const long long t = prefill_makespan(T, n_head, rows, bc, window, s, slots[i]);
    if (t * 20 < best_t * 19) best = s, best_t = t;
  }
  last_key = key;
  last = best;
  return best;
}

}  // namespace kiln::attn
