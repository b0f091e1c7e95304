// Benchmarks for kernels/rmsnorm.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

// ---- helpers local to this benchmark --------------------------------------------------------
// T=1 runs one launch per iteration (latency, reported next to the empty-kernel floor); T=512
// runs kBatch launches per iteration on rotated buffers and reports the per-launch time.
constexpr int kBatch = 20;

double empty_floor_us() {
  static double us = -1;
  if (us >= 0) return us;
  cudaStream_t s = bench::stream();
  for (int i = 0; i < 20; ++i) empty_kernel(s);
  KILN_CUDA_CHECK(cudaStreamSynchronize(s));
  Event a, b;
  double tot = 0;
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    a.record(s);
    empty_kernel(s);
    b.record(s);
    b.sync();
    tot += double(b.ms_since(a)) * 1e3;
  }
  us = tot / n;
  return us;
}

void timed(benchmark::State& st, double bytes, int64_t T, const std::function<void(int)>& one) {
  const int per = T == 1 ? 1 : kBatch;
  const double sec = bench::run(st, [&](int i) {
    for (int r = 0; r < per; ++r) one(i * per + r);
  });
  bench::report_bytes(st, bytes, sec / per);
  if (T == 1 && sec > 0) st.counters["empty_floor_us"] = empty_floor_us();
}

// A device buffer holding `copies` rotated copies of `count` elements, filled with small values.
template <class T>
struct Rot {
  DeviceBuffer<T> buf;
  size_t count = 0;
  int copies = 1;
  Rot(size_t n, int c) : buf(n * size_t(c)), count(n), copies(c) {
    KILN_CUDA_CHECK(cudaMemset(buf.data(), 0x3c, buf.bytes()));  // 0x3c3c3c3c ~ 0.0115f; Q8 bytes valid
  }
  T* at(int i) const { return buf.data() + size_t(i % copies) * count; }
};
// -----------------------------------------------------------------------------------------------

// mode 0: plain -> f32 out; 1: Qwen3 add + norm -> Q8_1; 2: Gemma post-norm add * scale + norm -> Q8_1
void BM_rmsnorm(benchmark::State& st) {
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
  const double sec = bench::run(st, [&](int) { empty_kernel(bench::stream()); });
  st.counters["us"] = sec * 1e6;
}
BENCHMARK(BM_empty_kernel)->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
