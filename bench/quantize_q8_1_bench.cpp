// quantize_q8_1: float activations -> Q8_1 (bytes = floats read + blocks written), rotated inputs;
// GB/s, % of copy bandwidth, the same-size copy (bench::timed) and, at one row, the launch floor.
#include <benchmark/benchmark.h>

#include <string>

#include "bench/bench_common.h"
#include "kernels/common/device.cuh"
#include "kernels/quantize_q8_1.cuh"

namespace kiln {
namespace {

void BM_quantize(benchmark::State& state, int64_t rows, int64_t k) {
  if (!bench::gpu_or_skip(state)) return;
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA device");
  const size_t n = size_t(rows * k);
  const int copies = bench::rotation(n * 4);
  DeviceBuffer<float> x(n * size_t(copies));
  KILN_CUDA_CHECK(cudaMemset(x.data(), 0x3f, x.bytes()));
  DeviceBuffer<BlockQ8_1> q(n / 32 * size_t(copies));
  bench::timed(state, double(n) * 4 + double(n / 32) * sizeof(BlockQ8_1), rows, [&](int i) {
    const size_t c = size_t(i % copies);
    quantize_q8_1(x.data() + c * n, rows, k, q.data() + c * (n / 32), bench::stream());
  });
}

int register_all() {
  for (int64_t rows : {1, 8, 512, 2048})
    for (int64_t k : {2560, 4096, 12288}) {
      const std::string name = "quantize_q8_1/rows:" + std::to_string(rows) + "/K:" + std::to_string(k);
      benchmark::RegisterBenchmark(name.c_str(), BM_quantize, rows, k)->UseManualTime()->Unit(benchmark::kMicrosecond);
    }
  return 0;
}
const int g_registered = register_all();

}  // namespace
}  // namespace kiln

BENCHMARK_MAIN();
