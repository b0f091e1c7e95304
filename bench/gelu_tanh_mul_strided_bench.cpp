// Benchmarks for kernels/gelu_tanh_mul_strided.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/gelu_tanh_mul_strided.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

// form 0: Gemma 4 PLE gate (n = 256, b strided in [T][42][256]) -> Q8_1
// form 1: Gemma 4 GeGLU (n = 10240) -> Q8_1;  form 2: Qwen3 SwiGLU (n = 12288) -> Q8_1
void BM_gated(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
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
