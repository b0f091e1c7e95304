// Benchmarks for kernels/rope.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/rope.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

// shape 0: Qwen3 (32 + 8 heads x 128); 1: Gemma 4 sliding (8 + 2 x 256); 2: Gemma 4 full (8 + 2 x 512)
void BM_rope(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const int shape = int(st.range(0));
  const int64_t T = st.range(1);
  const int nq = shape == 0 ? 32 : 8, nkv = shape == 0 ? 8 : 2, hd = shape == 0 ? 128 : shape == 1 ? 256 : 512;
  const int64_t n_pos = 8192;
  const size_t N = size_t(T * (nq + nkv) * hd);
  const int rot = bench::rotation(N * 8);
  Rot<float> qk(N, rot), table(size_t(n_pos * hd), 1);
  Rot<int32_t> pos(size_t(T), 1);
  KILN_CUDA_CHECK(cudaMemset(pos.buf.data(), 0, pos.buf.bytes()));
  const double bytes = double(N) * 8 + double(T) * (hd / 2) * 8 + double(T) * 4;
  timed(st, bytes, T, [&](int i) {
    RopeOp op;
    op.q = qk.at(i);
    op.q_stride = int64_t(nq) * hd;
    op.n_q_heads = nq;
    op.k = qk.at(i) + T * nq * hd;
    op.k_stride = int64_t(nkv) * hd;
    op.n_kv_heads = nkv;
    op.head_dim = hd;
    op.n_rot = hd;
    op.n_tokens = T;
    op.pos = pos.at(0);
    op.table = reinterpret_cast<const float2*>(table.at(0));
    op.n_pos = n_pos;
    rope(op, bench::stream());
  });
}
BENCHMARK(BM_rope)
    ->ArgNames({"shape", "T"})
    ->Args({0, 1})->Args({0, 512})->Args({1, 1})->Args({1, 512})->Args({2, 1})->Args({2, 512})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
