// Benchmarks for kernels/head_norm_dual.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth; at T = 1
// also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/head_norm_dual.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

// shape 0: Qwen3 (32 q + 8 k heads x 128, RoPE); 1: Gemma 4 sliding (8 + 2 + 2 V x 256, RoPE);
// 2: Gemma 4 full (8 + 2 + 2 V x 512, RoPE)
void BM_head_norm_dual(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const int shape = int(st.range(0));
  const int64_t T = st.range(1);
  const int nq = shape == 0 ? 32 : 8, nkv = shape == 0 ? 8 : 2, hd = shape == 0 ? 128 : shape == 1 ? 256 : 512;
  const bool has_v = shape != 0;
  const int64_t stride = int64_t(nq + 2 * nkv) * hd;
  const int64_t n_pos = 8192;
  const size_t N = size_t(T * stride);
  const int64_t touched = int64_t(nq + nkv + (has_v ? nkv : 0)) * hd;
  const int rot = bench::rotation(size_t(T * touched) * 8);
  Rot<float> qkv(N, rot), table(size_t(n_pos * hd), 1), wq(size_t(hd), 1), wk(size_t(hd), 1);
  Rot<int32_t> pos(size_t(T), 1);
  KILN_CUDA_CHECK(cudaMemset(pos.buf.data(), 0, pos.buf.bytes()));
  const double bytes = double(T * touched) * 8 + double(T) * (hd / 2) * 8 + double(hd) * 8 + double(T) * 4;
  timed(st, bytes, T, [&](int i) {
    HeadNormOp op;
    op.n_tokens = T;
    op.n_q_heads = nq;
    op.n_kv_heads = nkv;
    op.head_dim = hd;
    op.q = qkv.at(i);
    op.q_stride = stride;
    op.wq = wq.at(0);
    op.k = qkv.at(i) + int64_t(nq) * hd;
    op.k_stride = stride;
    op.wk = wk.at(0);
    op.v = has_v ? qkv.at(i) + int64_t(nq + nkv) * hd : nullptr;
    op.v_stride = stride;
    op.pos = pos.at(0);
    op.table = reinterpret_cast<const float2*>(table.at(0));
    op.n_pos = n_pos;
    op.n_rot = hd;
    head_norm_dual(op, bench::stream());
  });
}
BENCHMARK(BM_head_norm_dual)
    ->ArgNames({"shape", "T"})
    ->Args({0, 1})->Args({0, 512})->Args({1, 1})->Args({1, 512})->Args({2, 1})->Args({2, 512})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
