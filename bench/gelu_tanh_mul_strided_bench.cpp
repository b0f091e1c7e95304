// Benchmarks for kernels/gelu_tanh_mul_strided.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/gelu_tanh_mul_strided.cuh"
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

// form 0: Gemma 4 PLE gate (n = 256, b strided in [T][42][256]) -> Q8_1
// form 1: Gemma 4 GeGLU (n = 10240) -> Q8_1;  form 2: Qwen3 SwiGLU (n = 12288) -> Q8_1
void BM_gated(benchmark::State& st) {
  const int form = int(st.range(0));
  const int64_t T = st.range(1);
  const int64_t n = form == 0 ? 256 : form == 1 ? 10240 : 12288;
  const int64_t bstride = form == 0 ? 42 * 256 : n;
  const size_t NB = size_t(T * (n / 32));
  const double per_set = double(T * n) * 4 + double(T * bstride) * 4 + double(NB) * 36;
  const int rot = bench::rotation(size_t(per_set));
  Rot<float> g(size_t(T * n), rot), b(size_t(T * bstride), rot);
  Rot<BlockQ8_1> q(NB, rot);
  const double bytes = double(T * n) * 8 + double(NB) * 36;  // gate + the b slice read, Q8_1 written
  timed(st, bytes, T, [&](int i) {
    GatedMulOp op;
    op.act = form == 2 ? GatedAct::Silu : GatedAct::GeluTanh;
    op.gate = g.at(i);
    op.gate_stride = n;
    op.b = b.at(i) + (form == 0 ? 17 * 256 : 0);
    op.b_stride = bstride;
    op.n_tokens = T;
    op.n = n;
    op.out_q = q.at(i);
    gelu_tanh_mul_strided(op, bench::stream());
  });
}
BENCHMARK(BM_gated)
    ->ArgNames({"form", "T"})
    ->Args({0, 1})->Args({0, 512})->Args({1, 1})->Args({1, 512})->Args({2, 1})->Args({2, 512})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
