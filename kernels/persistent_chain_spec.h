// persistent_chain's launch geometry, shared by the kernel and its reference (which follows the
// kernel's summation order): plain C++, no CUDA headers.
#pragma once

namespace kiln {

constexpr int kChainThreads = 512;   // per CTA: 16 warps
constexpr int kChainRows = 2;        // rows per CTA row group of a matvec phase
constexpr int kChainChunks = 2;      // 16-byte chunks per thread and row
constexpr int kChainMaxWidth = 8 * kChainThreads * kChainChunks;  // 8192 BF16 per row
constexpr int kChainBarrierWords = 2;  // ChainOp::barrier

}  // namespace kiln
