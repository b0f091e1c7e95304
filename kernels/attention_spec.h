// The parts of the attention kernels' numerical specification that their CPU references must
// share: the decode kernel's split/tile geometry (it fixes the float reduction order that
// ref::attention_decode_split<float> follows bit for bit). Host-only, no CUDA: included by
// kernels/attention.cuh and reference/attention.h alike.
#pragma once

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

// Prefill: up to kPrefillMaxSplit CTAs (a thread-block cluster) share one (row tile, head)'s key
// tiles, each taking a contiguous share, and merge their partial softmax states through
// distributed shared memory. A prompt of a few hundred tokens has only n_row_tiles x heads CTAs
// (Gemma 4 at 512 tokens: 64 for hd 256, on 132 SMs), and the causal row tile at the bottom
// holds every key: splitting shortens that critical path and fills idle SMs. Split only while
// the grid still fits in one wave of resident CTAs -- a second wave costs more than the split
// saves (H200, hd 512 at T = 512: 128 CTAs 106 us, split in 2: 126 us) -- and the heaviest row
// tile (at least min(T, window) keys) gives every part at least `min_keys` keys. Depends on the
// shape and the device only.
constexpr int kPrefillMaxSplit = 4;
inline int prefill_splits(long long ctas, long long resident_ctas, int T, int window, int min_keys) {
  const long long keys = window > 0 && window < T ? window : T;
  int s = 1;
  while (s < kPrefillMaxSplit && ctas * s * 2 <= resident_ctas && 2LL * s * min_keys <= keys) s *= 2;
  return s;
}

}  // namespace kiln::attn
