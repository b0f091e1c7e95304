// Benchmarks for kernels/persistent_chain.cu: the same synthetic decode chain (per layer a norm,
// Wa with silu, Wb with the residual add; BF16 weights) as one launch per phase (mode 0, PDL, as
// the runner decodes) and as one persistent kernel with grid barriers (mode 1). Bytes = weight
// bytes (activations are a few KB); GB/s and % of the copy bandwidth measured in this process;
// per_layer_us and launches per call. Shapes: matrix sizes of the decode matvecs (8-67 MB).
#include <benchmark/benchmark.h>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/persistent_chain.cuh"

namespace kiln {
namespace {

void BM_persistent_chain(benchmark::State& st) {
  if (!bench::gpu_or_skip(st)) return;
  const ChainMode mode = st.range(0) ? ChainMode::Persistent : ChainMode::Launches;
  ChainOp op;
  op.d = int(st.range(1));
  op.f = int(st.range(2));
  op.layers = int(st.range(3));
  const double wbytes = persistent_chain_weight_bytes(op);
  const int rot = bench::rotation(size_t(wbytes));
  const size_t n = size_t(op.d) * size_t(op.f) * size_t(op.layers);
  bench::Rot<uint16_t> wa(n, rot), wb(n, rot);  // 0x3c3c: BF16 ~0.0115, finite through the chain
  bench::Rot<float> x(size_t(op.d), 1), xn(size_t(op.d), 1), h(size_t(op.f), 1);
  DeviceBuffer<unsigned> bar(kChainBarrierWords);
  KILN_CUDA_CHECK(cudaMemset(bar.data(), 0, bar.bytes()));
  op.x = x.at(0);
  op.xn = xn.at(0);
  op.h = h.at(0);
  op.barrier = bar.data();
  const double sec = bench::run(st, [&](int i) {
    op.wa = wa.at(i);
    op.wb = wb.at(i);
    persistent_chain(op, mode, bench::stream());
  });
  if (sec <= 0) return;
  bench::report_bytes(st, wbytes, sec);
  st.counters["per_layer_us"] = sec * 1e6 / op.layers;
  st.counters["launches"] = persistent_chain_launches(op, mode);
  st.counters["ctas"] = persistent_chain_ctas();
}
// {mode, d, f, layers}: matrices of 2 * d * f bytes (8.4, 16.8, 33.6, 67.1 MB), 134 MB of weights
// per call (above 2x L2; a graph replay holds 64 calls, ~3 s on an H100); and a chain of 16 KB
// matrices, whose per-layer time is three phase boundaries (launches or barriers) and latency.
BENCHMARK(BM_persistent_chain)
    ->ArgNames({"persistent", "d", "f", "layers"})
    ->ArgsProduct({{0, 1}, {64}, {64}, {64}})  // 16 KB matrices: the cost of a phase boundary alone
    ->ArgsProduct({{0, 1}, {1024}, {4096}, {8}})
    ->ArgsProduct({{0, 1}, {2048}, {4096}, {4}})
    ->ArgsProduct({{0, 1}, {4096}, {4096}, {2}})
    ->ArgsProduct({{0, 1}, {4096}, {8192}, {1}})
    ->UseManualTime();

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
