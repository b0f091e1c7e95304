// The parts of the attention kernels' numerical specification that their CPU references must
// share: the decode kernel's split/tile geometry (it fixes the float reduction order that
// ref::attention_decode_split<float> follows bit for bit). Host-only, no CUDA: included by
// kernels/attention.cuh and reference/attention.h alike.
#pragma once

namespace kiln::attn {

// Decode: one CTA per (split, kv head) runs kDecodeWarps warps; warp w walks the split's positions
// in tiles of kDecodeTile consecutive positions, tiles w, w + kDecodeWarps, ... (see
// reference/attention.h, attention_decode_split, for the full order).
constexpr int kDecodeWarps = 4;
constexpr int kDecodeTile = 32;

// Largest GQA group x head_dim a decode CTA keeps in registers (q and the accumulator).
constexpr int kDecodeMaxGroupDims = 2048;

}  // namespace kiln::attn
