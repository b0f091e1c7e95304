// Benchmarks for kernels/softcap_argmax.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/softcap_argmax.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

void BM_softcap_argmax(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
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
