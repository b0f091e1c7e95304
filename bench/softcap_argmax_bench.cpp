// Benchmarks for kernels/softcap_argmax.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/softcap_argmax.cuh"
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

void BM_softcap_argmax(benchmark::State& st) {
  const int64_t n = st.range(0), rows = st.range(1);
  const bool capped = st.range(2) != 0;
  const size_t N = size_t(rows * n);
  const int rot = bench::rotation(N * (capped ? 8 : 4));
  Rot<float> x(N, rot), z(capped ? N : 1, capped ? rot : 1);
  Rot<int32_t> idx(size_t(rows), rot);
  DeviceBuffer<uint8_t> ws(softcap_argmax_workspace_bytes(rows) * size_t(rot));
  KILN_CUDA_CHECK(cudaMemset(ws.data(), 0, ws.bytes()));
  const double bytes = double(N) * (capped ? 8 : 4) + double(rows) * 4;
  timed(st, bytes, rows, [&](int i) {
    SoftcapArgmaxOp op;
    op.logits = x.at(i);
    op.rows = rows;
    op.n = n;
    op.cap = 30.f;
    op.capped = capped ? z.at(i) : nullptr;
    op.idx = idx.at(i);
    op.workspace = ws.data() + softcap_argmax_workspace_bytes(rows) * size_t(i % rot);
    softcap_argmax(op, bench::stream());
  });
}
BENCHMARK(BM_softcap_argmax)
    ->ArgNames({"n", "rows", "capped"})
    ->Args({262144, 1, 0})->Args({262144, 1, 1})->Args({262144, 512, 0})->Args({151936, 1, 0})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
