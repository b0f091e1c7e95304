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

// Largest GQA group x head_dim a decode CTA keeps in registers (q and the accumulator).
constexpr int kDecodeMaxGroupDims = 2048;

// Positions per split for a query attending to n positions with n_splits splits: ceil(n /
// n_splits), but never fewer than kDecodeMinChunk. The split count is fixed when the decode graph
// is captured (sized for the longest context), so at short contexts splits would otherwise hold
// a handful of positions each while every split still writes, and the merge still reads, its
// G * hd partial floats per head (at context 576 with 128 splits, more bytes than the K/V). With
// the minimum only the first ceil(n / chunk) splits hold positions; the rest are empty and are
// skipped by the split kernel, the merge and ref::attention_decode_split alike. 8 positions (one
// row group of the split kernel for head_dim <= 256) keep a split's work to one K and one V load
// round trip at short contexts, while the partials stay below the K/V bytes they summarize.
constexpr int kDecodeMinChunk = 8;
KILN_HD constexpr long long decode_chunk(long long n, int n_splits) {
  const long long c = (n + n_splits - 1) / n_splits;
  return c < kDecodeMinChunk ? kDecodeMinChunk : c;
}
// Splits that hold positions (>= 1 for n >= 1).
KILN_HD constexpr int decode_used_splits(long long n, int n_splits) {
  return n <= 0 ? 0 : int((n + decode_chunk(n, n_splits) - 1) / decode_chunk(n, n_splits));
}

}  // namespace kiln::attn
