// Benchmarks for kernels/embed.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/embed.cuh"
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

// fused 1: Gemma 4 first layer (x0 = row * sqrt(d), x_q, attn_norm Q8_1). fused 0: plain gather.
void BM_embed(benchmark::State& st) {
  const DType t = DType(st.range(0));
  const int64_t n = st.range(1), T = st.range(2);
  const bool fused = st.range(3) != 0;
  const int64_t vocab = 262144;
  const size_t rb = row_bytes(t, n);
  DeviceBuffer<uint8_t> table(rb * size_t(vocab));
  KILN_CUDA_CHECK(cudaMemset(table.data(), 0x3c, table.bytes()));
  const size_t N = size_t(T * n), NB = size_t(T * (n / 32));
  const double per_set = double(N) * 4 + double(rb) * double(T) + (fused ? 2.0 * double(NB) * 36 : 0.0);
  const int rot = bench::rotation(size_t(per_set));
  Rot<int32_t> ids(size_t(T), rot);
  {
    std::vector<int32_t> h(size_t(T) * size_t(rot));
    for (size_t i = 0; i < h.size(); ++i) h[i] = int32_t((i * 2654435761u) % uint64_t(vocab));
    KILN_CUDA_CHECK(cudaMemcpy(ids.buf.data(), h.data(), h.size() * 4, cudaMemcpyHostToDevice));
  }
  Rot<float> out(N, rot), w(size_t(n), 1);
  Rot<BlockQ8_1> nq(NB, rot), xq(NB, rot);
  const double bytes = double(rb) * double(T) + double(N) * 4 + double(T) * 4 +
                       (fused ? double(n) * 4 + 2.0 * double(NB) * 36 : 0.0);
  timed(st, bytes, T, [&](int i) {
    EmbedOp op;
    op.type = t;
    op.table = table.data();
    op.n_vocab = vocab;
    op.n = n;
    op.ids = ids.at(i);
    op.n_tokens = T;
    op.scale = std::sqrt(float(n));
    op.out = out.at(i);
    if (fused) {
      op.w = w.at(0);
      op.norm_q = nq.at(i);
      op.x_q = xq.at(i);
    }
    embed(op, bench::stream());
  });
  st.SetLabel(dtype_name(t));
}
BENCHMARK(BM_embed)
    ->ArgNames({"type", "n", "T", "fused"})
    ->Args({int(DType::Q8_0), 2560, 1, 1})->Args({int(DType::Q8_0), 2560, 512, 1})
    ->Args({int(DType::Q6_K), 4096, 1, 0})->Args({int(DType::Q6_K), 4096, 512, 0})
    ->Args({int(DType::Q4_K), 4096, 512, 0})->Args({int(DType::F16), 4096, 512, 0})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
