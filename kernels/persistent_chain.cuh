// persistent_chain: a synthetic decode chain run two ways -- as one kernel launch per phase (how
// the runner decodes: a captured graph of dependent launches with PDL) and as ONE persistent
// kernel whose phases are separated by grid-wide barriers -- with the same device code per phase,
// so the time difference is what the launch boundaries cost against the barriers. It measures
// the lead every decode note ends on (docs/perf-notes.md: a persistent decode kernel) before
// anyone rewrites the runner around it; it is not used by the runner.
//
// The chain, per layer l < layers, on a residual stream x[d] (Qwen3's FFN sub-layer without the
// norm weight, with BF16 weights so that every phase is a plain streaming kernel):
//   xn = x * rsqrt(mean(x^2) + eps)                      norm phase: one CTA
//   h  = silu(Wa_l . xn)        Wa_l: [f rows][d] BF16   matvec phase, silu in the epilogue
//   x  = x + Wb_l . h           Wb_l: [d rows][f] BF16   matvec phase, residual add epilogue
// Weights: wa = [layers][f][d], wb = [layers][d][f], row-major, contiguous.
//
// Both modes run the same phases on the same grid (persistent_chain_ctas() CTAs of
// kChainThreads threads: every SM's share of co-resident CTAs). A matvec phase gives CTA b the
// row groups b, b + grid, ... (kChainRows rows each); every thread owns 16-byte chunks
// t, t + kChainThreads of each row and keeps its weight registers one row group ahead. The first
// row group of a matvec is loaded *before* the phase's dependency is resolved: before the PDL
// wait (Launches), or between arriving at and waiting on the grid barrier (Persistent); weights
// are never written by a kernel.
//
// CONTRACT: both modes bit-exact vs ref::persistent_chain<float> (which follows the kernel's
// order: reference/persistent_chain.h) and so with each other; ref<float> within 1e-4 (relative,
// floor 1) of ref<double> for weights ~ N(0, 1/K) and x ~ N(0, 1) (tests/persistent_chain_test).
//
// Requirements (checked on the host before any CUDA call; violations throw kiln::Error): d and f
// multiples of 8 in [8, kChainMaxWidth]; layers >= 1; all pointers non-null and 16-byte aligned.
// barrier: kChainBarrierWords words in device memory, zero before the first Persistent launch
// (cudaMemset once); every Persistent launch leaves them zero. x is read and written in place; xn ([d]) and h ([f])
// are scratch. Nothing is allocated, nothing synchronizes: both modes are capturable.
// Persistent launches use the cooperative launch attribute (all CTAs co-resident, or the launch
// fails with a CUDA error rather than deadlocking).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/persistent_chain_spec.h"

namespace kiln {

enum class ChainMode {
  Launches,    // 3 launches per layer (norm, Wa, Wb), launch_pdl
  Persistent,  // 1 launch; 3 grid barriers per layer (2 on the last)
};

struct ChainOp {
  int d = 0, f = 0, layers = 0;
  float eps = 1e-6f;
  const uint16_t* wa = nullptr;  // [layers][f][d] BF16
  const uint16_t* wb = nullptr;  // [layers][d][f] BF16
  float* x = nullptr;            // [d], in/out
  float* xn = nullptr;           // [d] scratch
  float* h = nullptr;            // [f] scratch
  unsigned* barrier = nullptr;   // [kChainBarrierWords], zero (Persistent only)
};

void persistent_chain(const ChainOp& op, ChainMode mode, cudaStream_t s);
// The grid both modes use on the current device.
int persistent_chain_ctas();
// Kernel launches one call issues.
int persistent_chain_launches(const ChainOp& op, ChainMode mode);
// Weight bytes one call streams (each weight byte once).
double persistent_chain_weight_bytes(const ChainOp& op);

}  // namespace kiln
