// Benchmarks for kernels/embed.cu at model shapes, T = 1 and T = 512: bytes (minimal traffic: each
// input read once, each output written once), GB/s, % of the in-process copy bandwidth, and the
// time of a same-size device copy in the same harness (same_size_copy_us, pct_same_size_copy); at
// T = 1 also the empty-kernel launch floor (empty_floor_us).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/embed.cuh"
#include "kernels/rmsnorm.cuh"

namespace kiln {
namespace {

using bench::Rot;
using bench::timed;
#include "kernels/common/dtype.h"

// fused 1: Gemma 4 first layer (x0 = row * sqrt(d), x_q, attn_norm Q8_1). fused 0: plain gather.
void BM_embed(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
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
