// Shared benchmark plumbing. Every kernel benchmark times with CUDA events, rotates its inputs so
// the working set exceeds L2, and reports bytes moved, GB/s and % of the copy bandwidth measured
// in the same process (DESIGN.md §6).
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>

#include "kernels/common/device.cuh"
#include "kernels/probe.cuh"

namespace kiln::bench {

// Device ceilings of this process: copy and read bandwidth measured once on first use (1 GiB
// buffers). Printed to stderr the first time.
const Ceilings& ceilings();
// cuBLAS BF16 GEMM TFLOP/s at m x n x k, measured once per shape in this process.
double bf16_gemm_tflops(int m, int n, int k);

// False (and the benchmark skipped with "no CUDA device") when there is no GPU: the first line
// of every benchmark, before it allocates anything.
bool gpu_or_skip(benchmark::State& state);

// The stream benchmarks launch on.
cudaStream_t stream();

// How many copies of a working set of `bytes` to rotate through so that consecutive launches
// touch more than 2x the L2 (at least 1, at most kBatch).
int rotation(size_t bytes);

// Runs the benchmark loop: launch(0..kBatch-1) is captured once into a CUDA graph (after a
// direct warm-up), and each iteration replays it, timed with CUDA events around the replay
// (manual time: Google Benchmark's Time column is one replay of kBatch launches; the `us`
// counter that report_bytes / report_flops set is the per-launch time). A graph is how the
// runner issues its kernels (with the programmatic edges of launch_pdl). Host-issued launches back to back were
// bound by the host's submission rate for every kernel shorter than it: an empty kernel measured
// 3.9-5.0 us per launch that way, so a 28 MB matvec (6.7 us of copy bandwidth) was timed with
// ~4 us that no kernel in a captured graph pays. launch(i) picks rotated input copy i % copies:
// kBatch covers every copy rotation() asks for. Returns the mean event-timed seconds per launch
// (0 and the benchmark skipped with a message when there is no GPU).
double run(benchmark::State& state, const std::function<void(int)>& launch);

// Counters from the event-timed mean: bytes per launch, GB/s, % of the measured copy bandwidth
// (and the ceiling itself). Rates are computed here, not by Google Benchmark's CPU-time rates.
void report_bytes(benchmark::State& state, double bytes_per_launch, double seconds);
// Counters: TFLOP/s and % of the cuBLAS BF16 rate measured at the given GEMM shape.
void report_flops(benchmark::State& state, double flops_per_launch, double seconds, int m, int n, int k);

constexpr int kBatch = 64;  // launches per captured graph (run()); >= rotation()'s largest count

// ---- helpers of the fused-kernel benchmarks (T = 1 latency, T = 512 batched) ----------------
// Mean per-launch time of an empty kernel in a captured graph (timed like run()): the launch
// floor a T = 1 time is compared to.
double empty_floor_us();

// Mean per-launch time of a device-to-device cudaMemcpyAsync moving `bytes` in all (bytes / 2
// read, bytes / 2 written), in a captured graph of kBatch copies over rotated buffers, timed like
// run(): what a plain copy of a kernel's working set reaches in this harness. At the fused
// kernels' sizes (1-60 MB, a few us) the fixed cost per graph node and the DRAM latency of one
// wave are a large part of the time, so the copy itself stays below the 1 GiB copy bandwidth
// (H200, 4254 GB/s: 1.2 MB in 1.74 us = 16 %, 16.8 MB in 5.51 us = 72 %, 48 MB in 12.7 us =
// 88 %); it is a rough reference at those sizes (pct_same_size_copy = copy time / kernel time).
// Rough because memcpy graph nodes are not the kind of node the kernels are, and their times
// were not monotonic in the size (25 MB 10.6 us, 49.9 MB 19.4 us against 48 MB 12.7 us): a copy
// kernel launched like kiln's (launch_pdl) would be the fairer reference (not yet measured).
double same_size_copy_us(double bytes);

// Times one(i) with run() and reports bytes, GB/s and % of copy bandwidth, plus the same-size
// copy's time and the kernel's speed as a % of it (plus the empty-kernel floor when T == 1).
void timed(benchmark::State& st, double bytes, int64_t T, const std::function<void(int)>& one);

// A device buffer holding `copies` rotated copies of `count` elements, filled with small values
// (0x3c bytes: ~0.0115f as floats; valid Q8 blocks).
template <class T>
struct Rot {
  DeviceBuffer<T> buf;
  size_t count = 0;
  int copies = 1;
  Rot(size_t n, int c) : buf(n * size_t(c)), count(n), copies(c) {
    KILN_CUDA_CHECK(cudaMemset(buf.data(), 0x3c, buf.bytes()));
  }
  T* at(int i) const { return buf.data() + size_t(i % copies) * count; }
};

}  // namespace kiln::bench
