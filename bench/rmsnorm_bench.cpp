// Benchmarks for kernels/rmsnorm.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

// mode 0: plain -> f32 out; 1: Qwen3 add + norm -> Q8_1; 2: Gemma post-norm add * scale + norm -> Q8_1
void BM_rmsnorm(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const int64_t n = st.range(0), T = st.range(1);
  const int mode = int(st.range(2));
  const size_t N = size_t(T * n), NB = size_t(T * (n / 32));
  const double per_set = double(N) * 4 * (mode == 0 ? 2 : 3) + double(NB) * 36;
  const int rot = bench::rotation(size_t(per_set));
  Rot<float> x(N, rot), y(N, rot), out(N, rot), w(size_t(n), 1), wy(size_t(n), 1);
  Rot<BlockQ8_1> q(NB, rot);
  double bytes = double(n) * 4 * (mode == 2 ? 2 : 1);
  if (mode == 0) bytes += double(N) * 8;                 // read x, write out
  if (mode == 1) bytes += double(N) * 12 + double(NB) * 36;  // read x, y; write x, q
  if (mode == 2) bytes += double(N) * 12 + double(NB) * 36;
  timed(st, bytes, T, [&](int i) {
    RmsnormOp op;
    op.rows = T;
    op.n = n;
    op.x = x.at(i);
    op.w = w.at(0);
    if (mode == 0) op.out = out.at(i);
    if (mode >= 1) {
      op.y = y.at(i);
      op.out_q = q.at(i);
    }
    if (mode == 2) {
      op.norm_y = true;
      op.w_y = wy.at(0);
      op.scale = 0.5f;
    }
    rmsnorm(op, bench::stream());
  });
}
BENCHMARK(BM_rmsnorm)
    ->ArgNames({"n", "T", "mode"})
    ->Args({2560, 1, 0})->Args({2560, 512, 0})->Args({4096, 1, 0})->Args({4096, 512, 0})
    ->Args({4096, 1, 1})->Args({4096, 512, 1})
    ->Args({2560, 1, 2})->Args({2560, 512, 2})
    ->UseManualTime();

void BM_empty_kernel(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const double sec = bench::run(st, [&](int) { empty_kernel(bench::stream()); });
  st.counters["us"] = sec * 1e6;
}
BENCHMARK(BM_empty_kernel)->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
