// Benchmarks for kernels/ple_proj_norm.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/ple_proj_norm.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;
#include "kernels/common/dtype.h"

void BM_ple_proj_norm(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const int64_t T = st.range(0);
  const int L = 42, P = 256;
  const DType t = DType::Q8_0;
  const int64_t vocab = 262144, W = int64_t(L) * P;
  const size_t rb = row_bytes(t, W);
  DeviceBuffer<uint8_t> table(rb * size_t(vocab));  // 3 GB: the real Gemma 4 PLE table size
  KILN_CUDA_CHECK(cudaMemset(table.data(), 0x3c, table.bytes()));
  const size_t N = size_t(T * W);
  const double per_set = double(N) * 8 + double(rb) * double(T);
  const int rot = bench::rotation(size_t(per_set));
  Rot<float> proj(N, rot), out(N, rot), w(size_t(P), 1);
  Rot<int32_t> ids(size_t(T), rot);
  {
    std::vector<int32_t> h(size_t(T) * size_t(rot));
    for (size_t i = 0; i < h.size(); ++i) h[i] = int32_t((i * 2654435761u) % uint64_t(vocab));
    KILN_CUDA_CHECK(cudaMemcpy(ids.buf.data(), h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  }
  const double bytes = double(N) * 8 + double(rb) * double(T) + double(P) * 4 + double(T) * 4;
  timed(st, bytes, T, [&](int i) {
    PleProjNormOp op;
    op.proj = proj.at(i);
    op.n_tokens = T;
    op.n_layers = L;
    op.P = P;
    op.proj_scale = 1.f / std::sqrt(2560.f);
    op.w = w.at(0);
    op.row_type = t;
    op.rows = table.data();
    op.row_stride = rb;
    op.ids = ids.at(i);
    op.n_rows = vocab;
    op.row_scale = 16.f;
    op.out_scale = 1.f / std::sqrt(2.f);
    op.out = out.at(i);
    ple_proj_norm(op, bench::stream());
  });
}
BENCHMARK(BM_ple_proj_norm)->ArgNames({"T"})->Arg(1)->Arg(512)->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
