// Benchmarks for kernels/ple_proj_norm.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/ple_proj_norm.cuh"
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
#include "kernels/common/dtype.h"

void BM_ple_proj_norm(benchmark::State& st) {
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
