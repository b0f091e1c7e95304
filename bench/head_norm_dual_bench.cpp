// Benchmarks for kernels/head_norm_dual.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>
#include <vector>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/head_norm_dual.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;

// The runner's form, with the fused cache append: shape 0: Qwen3 (32 q + 8 k heads x 128, RoPE,
// 8 V heads only appended); 1: Gemma 4 sliding (8 + 2 + 2 V x 256, RoPE, V normed);
// 2: Gemma 4 full (8 + 2 + 2 V x 512, RoPE, V normed). Positions 0..T-1 into a cache of T rows.
void BM_head_norm_dual(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const int shape = int(st.range(0));
  const int64_t T = st.range(1);
  const int nq = shape == 0 ? 32 : 8, nkv = shape == 0 ? 8 : 2, hd = shape == 0 ? 128 : shape == 1 ? 256 : 512;
  const bool norm_v = shape != 0;
  const int64_t stride = int64_t(nq + 2 * nkv) * hd, kvn = int64_t(nkv) * hd;
  const int64_t n_pos = 8192;
  const size_t N = size_t(T * stride);
  // floats read and written back (Q, K; V when normed), V read only (Qwen3), cache halves written
  const int64_t rw = int64_t(nq + nkv + (norm_v ? nkv : 0)) * hd, ro = norm_v ? 0 : kvn;
  const int rot = bench::rotation(size_t(T * (rw * 8 + ro * 4 + 2 * kvn * 2)));
  Rot<float> qkv(N, rot), table(size_t(n_pos * hd), 1), wq(size_t(hd), 1), wk(size_t(hd), 1);
  Rot<uint16_t> kc(size_t(T * kvn), rot), vc(size_t(T * kvn), rot);
  Rot<int32_t> pos(size_t(T), 1);
  std::vector<int32_t> hp(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) hp[size_t(t)] = int32_t(t);
  KILN_CUDA_CHECK(cudaMemcpy(pos.buf.data(), hp.data(), hp.size() * 4, cudaMemcpyHostToDevice));
  const double bytes = double(T) * double(rw * 8 + ro * 4 + 2 * kvn * 2) + double(T) * (hd / 2) * 8 +
                       double(hd) * 8 + double(T) * 4;
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
    op.v = qkv.at(i) + int64_t(nq + nkv) * hd;
    op.v_stride = stride;
    op.norm_v = norm_v;
    op.k_cache = kc.at(i);
    op.v_cache = vc.at(i);
    op.cache_cap = T;
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
