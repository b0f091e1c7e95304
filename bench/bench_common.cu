#include "bench/bench_common.h"

#include <cstdio>
#include <map>
#include <tuple>

#include "kernels/common/device.cuh"
#include "kernels/rmsnorm.cuh"  // empty_kernel

namespace kiln::bench {

namespace {
bool have_gpu() {
  static const bool ok = cuda_device_count() > 0;
  return ok;
}
}  // namespace

bool gpu_or_skip(benchmark::State& state) {
  if (have_gpu()) return true;
  state.SkipWithError("no CUDA device");
  return false;
}

cudaStream_t stream() {
  static Stream* s = new Stream();  // lives for the process
  return s->get();
}

const Ceilings& ceilings() {
  static const Ceilings c = [] {
    const DeviceProps p = device_props(0);
    Ceilings r = measure_ceilings(size_t(1) << 30, stream(), /*with_gemm=*/false);
    fprintf(stderr, "[kiln] %s: %d SMs, L2 %.0f MB; copy %.0f GB/s, read %.0f GB/s (1 GiB buffers)\n",
            p.name.c_str(), p.sm_count, p.l2_bytes / 1e6, r.copy_gbs, r.read_gbs);
    return r;
  }();
  return c;
}

double bf16_gemm_tflops(int m, int n, int k) {
  static std::map<std::tuple<int, int, int>, double> cache;
  auto key = std::make_tuple(m, n, k);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const double t = measure_bf16_gemm_tflops(m, n, k, 10, stream());
  cache[key] = t;
  return t;
}

int rotation(size_t bytes) {
  static const size_t l2 = have_gpu() ? device_props(0).l2_bytes : (size_t(50) << 20);
  if (bytes == 0) return 1;
  const size_t want = 2 * l2 / bytes + 1;
  return int(std::min<size_t>(kBatch, std::max<size_t>(1, want)));
}

namespace {
// kBatch calls of launch(0..kBatch-1) captured on stream() into one executable graph. The calls
// run once directly first (warm-up: module load, attributes, handles, occupancy queries are
// cached outside the capture); a failure inside the capture ends it before rethrowing.
class Batch {
 public:
  explicit Batch(const std::function<void(int)>& launch) {
    cudaStream_t s = stream();
    for (int r = 0; r < 3; ++r) launch(r);
    KILN_CUDA_CHECK(cudaStreamSynchronize(s));
    KILN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    try {
      for (int r = 0; r < kBatch; ++r) launch(r);
    } catch (...) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(s, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    cudaGraph_t g = nullptr;
    KILN_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    const cudaError_t e = cudaGraphInstantiate(&exec_, g, 0);
    cudaGraphDestroy(g);
    KILN_CUDA_CHECK(e);
    replay();  // first replay: uploads the graph
    KILN_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  ~Batch() {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  void replay() { KILN_CUDA_CHECK(cudaGraphLaunch(exec_, stream())); }
  // Seconds of one replay, CUDA events around it.
  double timed_replay() {
    a_.record(stream());
    replay();
    b_.record(stream());
    b_.sync();
    return double(b_.ms_since(a_)) * 1e-3;
  }

 private:
  cudaGraphExec_t exec_ = nullptr;
  Event a_, b_;
};
}  // namespace

double run(benchmark::State& state, const std::function<void(int)>& launch) {
  if (!have_gpu()) {
    state.SkipWithError("no CUDA device");
    return 0;
  }
  ceilings();  // measure before timing anything
  Batch batch(launch);
  double total = 0;
  int64_t n = 0;
  for (auto _ : state) {
    const double batch_sec = batch.timed_replay();
    state.SetIterationTime(batch_sec);  // the iteration's real length (min_time is honoured)
    total += batch_sec / kBatch;
    ++n;
  }
  return n ? total / double(n) : 0;
}

void report_bytes(benchmark::State& state, double bytes_per_launch, double seconds) {
  if (!have_gpu() || seconds <= 0) return;
  const double copy = ceilings().copy_gbs;
  const double gbs = bytes_per_launch / seconds * 1e-9;
  state.counters["bytes"] = bytes_per_launch;
  state.counters["us"] = seconds * 1e6;
  state.counters["GB/s"] = gbs;
  state.counters["copy_GB/s"] = copy;
  state.counters["pct_copy"] = gbs / copy * 100.0;
}

void report_flops(benchmark::State& state, double flops_per_launch, double seconds, int m, int n, int k) {
  if (!have_gpu() || seconds <= 0) return;
  const double peak = bf16_gemm_tflops(m, n, k);
  const double tf = flops_per_launch / seconds * 1e-12;
  state.counters["us"] = seconds * 1e6;
  state.counters["TFLOP/s"] = tf;
  state.counters["cublas_bf16_TFLOP/s"] = peak;
  state.counters["pct_cublas"] = tf / peak * 100.0;
}

namespace {
// Mean per-launch microseconds of launch(0..kBatch-1) captured as one graph, over `replays`
// event-timed replays (the floor and same-size copy references; run() is the benchmark loop).
double mean_launch_us(const std::function<void(int)>& launch, int replays) {
  Batch batch(launch);
  double tot = 0;
  for (int i = 0; i < replays; ++i) tot += batch.timed_replay() * 1e6 / kBatch;
  return tot / replays;
}
}  // namespace

double empty_floor_us() {
  static const double us = mean_launch_us([](int) { empty_kernel(stream()); }, 100);
  return us;
}

double same_size_copy_us(double bytes) {
  static std::map<size_t, double> cache;
  const size_t half = (size_t(bytes / 2) + 255) / 256 * 256;  // read half, write half
  auto it = cache.find(half);
  if (it != cache.end()) return it->second;
  const int copies = rotation(2 * half);
  DeviceBuffer<uint8_t> src(half * size_t(copies)), dst(half * size_t(copies));
  KILN_CUDA_CHECK(cudaMemset(src.data(), 0x3c, src.bytes()));
  const double us = mean_launch_us(
      [&](int i) {
        const size_t o = size_t(i % copies) * half;
        KILN_CUDA_CHECK(cudaMemcpyAsync(dst.data() + o, src.data() + o, half, cudaMemcpyDeviceToDevice, stream()));
      },
      50);
  cache[half] = us;
  return us;
}

void timed(benchmark::State& st, double bytes, int64_t T, const std::function<void(int)>& one) {
  const double sec = run(st, one);
  report_bytes(st, bytes, sec);
  if (T == 1 && sec > 0) st.counters["empty_floor_us"] = empty_floor_us();
  if (sec > 0) {  // the same bytes moved by a device-to-device copy in the same harness
    const double cu = same_size_copy_us(bytes);
    st.counters["same_size_copy_us"] = cu;
    st.counters["pct_same_size_copy"] = cu / (sec * 1e6) * 100.0;
  }
}

}  // namespace kiln::bench
