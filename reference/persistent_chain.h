// Reference for kernels/persistent_chain.cu: the synthetic decode chain, per layer l
//   xn = x * rms_inv(x)  (reference/rmsnorm.h, canonical order with W = 16 warps)
//   h  = silu(Wa_l . xn),  x = x + Wb_l . h      (BF16 weights, exact in T)
// T=float follows the kernel bit for bit. A dot product of a K-wide row (chain_dot):
//   1. Chunk c = elements 8c..8c+7. Lane j of L = kChainThreads lanes owns chunks j + L*i for
//      i < kChainChunks (zeros past K) and keeps acc = fma(w_e, x_e, acc) over them in that
//      order, elements in increasing order, from +0 (zero chunks included).
//   2. The lanes' partials summed in the canonical tree (ref::lanes_sum_ordered, W = 16).
// silu: kiln::silu (kernels/common/math.h, the device's). T=double is the precision oracle.
#pragma once

#include <cstdint>

namespace kiln::ref {

// One dot product of a BF16 row w[0..K) with x[0..K) in the kernel's order (T=float) or exactly
// summed in double (T=double).
template <class T>
T chain_dot(const uint16_t* w, const T* x, int K);

// The whole chain on x[d] in place. wa: [layers][f][d], wb: [layers][d][f] BF16.
template <class T>
void persistent_chain(int d, int f, int layers, float eps, const uint16_t* wa, const uint16_t* wb, T* x);

}  // namespace kiln::ref
