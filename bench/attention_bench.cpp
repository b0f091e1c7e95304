// Attention benchmarks (DESIGN.md §6). Decode: KV bytes read per launch (attended positions x
// kv heads x head_dim x 2 bytes x K and V, plus q and out), GB/s and % of the measured copy
// bandwidth, caches rotated so the working set exceeds L2. Prefill: TFLOP/s counting only the
// causal (and window) half -- 4 * n_head * hd flops per attended (query, key) pair -- and % of
// the cuBLAS BF16 rate measured at 8192^3 in the same process.
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "kernels/attention.cuh"
#include "kernels/common/device.cuh"

namespace kiln {
namespace {

struct Shape {
  const char* name;
  int n_head, n_head_kv, hd, window;
};
const Shape kShapes[] = {
    {"qwen3_hd128", 32, 8, 128, 0},
    {"gemma4_global_hd512", 8, 2, 512, 0},
    {"gemma4_sliding_hd256", 8, 2, 256, 512},
    // Layout probe: Qwen3's group (4 query heads per kv head) with a single kv head, so a cache row
    // is one head's 256 bytes and each split reads one contiguous span; at 8x the context it moves
    // the same KV bytes as qwen3_hd128 (which reads 256 of every 2 KB row per CTA).
    {"probe_qwen3_1kv_hd128", 4, 1, 128, 0},
};

// Decode rows' last argument: the split kernel's path.
const DecodePath kPaths[] = {DecodePath::Registers, DecodePath::SharedRing, DecodePath::TensorCores};
const char* const kPathNames[] = {" registers", " ring", " tensor cores"};

// Random FP16 data in (-1, 1) without host round trips: fill from a float pattern.
void fill_f16(uint16_t* p, size_t n) {
  std::vector<uint16_t> h(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    h[i] = uint16_t(0x3000 | ((x >> 16) & 0x0bff) | ((x >> 1) & 0x8000));  // |v| in [2^-3, 1)
  }
  KILN_CUDA_CHECK(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice));
}
void fill_f32(float* p, size_t n, float scale) {
  std::vector<float> h(n);
  uint32_t x = 777;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    h[i] = (float(x >> 8) / float(1 << 24) - 0.5f) * 2.f * scale;
  }
  KILN_CUDA_CHECK(cudaMemcpy(p, h.data(), n * 4, cudaMemcpyHostToDevice));
}

void BM_decode(benchmark::State& state) {
  if (!bench::gpu_or_skip(state)) return;
  const Shape& sh = kShapes[state.range(0)];
  const int64_t ctx = state.range(1);
  int splits = int(state.range(2));
  const DecodePath loads = kPaths[state.range(3)];
  if (cuda_device_count() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int sms = device_props(0).sm_count;
  // 0: splits sized for this context; -1: sized for a 4096 context (what the runner captures
  // once for its whole run, then replays at shorter contexts)
  if (splits <= 0)
    splits = attention_decode_splits(sh.n_head, sh.n_head_kv, sh.hd, splits == 0 ? ctx : 4096, sms, loads);
  const int64_t attended = sh.window ? std::min<int64_t>(ctx, sh.window) : ctx;
  const int64_t cap = sh.window ? sh.window : ctx;  // sliding layer: ring of `window` rows
  const size_t row = size_t(sh.n_head_kv) * sh.hd;
  const double kv_bytes = double(attended) * double(row) * 2.0 * 2.0;
  const int rot = bench::rotation(size_t(kv_bytes));
  std::vector<DeviceBuffer<uint16_t>> kc, vc;
  for (int r = 0; r < rot; ++r) {
    kc.emplace_back(size_t(cap) * row);
    vc.emplace_back(size_t(cap) * row);
    fill_f16(kc.back().data(), size_t(cap) * row);
    fill_f16(vc.back().data(), size_t(cap) * row);
  }
  DeviceBuffer<float> q(size_t(sh.n_head) * sh.hd), out(size_t(sh.n_head) * sh.hd);
  DeviceBuffer<BlockQ8_1> out_q(size_t(sh.n_head) * sh.hd / QK8_1);
  fill_f32(q.data(), q.size(), 1.f);
  DeviceBuffer<int32_t> pos(1);
  const int32_t qp = int32_t(ctx - 1);
  KILN_CUDA_CHECK(cudaMemcpy(pos.data(), &qp, 4, cudaMemcpyHostToDevice));
  const size_t ws_bytes = attention_decode_workspace_bytes(sh.n_head, sh.hd, splits);
  DeviceBuffer<uint8_t> ws(ws_bytes);
  const float scale = sh.window ? 1.f : 1.f / std::sqrt(float(sh.hd));
  const double sec = bench::run(state, [&](int i) {
    const int r = i % rot;
    attention_decode(q.data(), 0, kc[size_t(r)].data(), vc[size_t(r)].data(), cap, sh.n_head,
                     sh.n_head_kv, sh.hd, scale, sh.window, pos.data(), splits, ws.data(), ws_bytes,
                     out.data(), out_q.data(), bench::stream(), loads,
                     /*kv_settled=*/true);  // nothing in the loop writes the caches or pos (as in the runner)
  });
  // q read, out written as float and Q8_1 (the runner's form: the o-proj input, fused)
  bench::report_bytes(state, kv_bytes + 2.0 * sh.n_head * sh.hd * 4 + sh.n_head * sh.hd / 32 * 36.0, sec);
  state.counters["splits"] = splits;
  state.SetLabel(std::string(sh.name) + kPathNames[state.range(3)]);
}

void BM_prefill(benchmark::State& state) {
  if (!bench::gpu_or_skip(state)) return;
  const Shape& sh = kShapes[state.range(0)];
  const int T = int(state.range(1));
  const int window = int(state.range(2));
  const PrefillPath path = state.range(3) == 0 ? PrefillPath::MmaSync : PrefillPath::Warpgroup;
  const PrefillPrecision precision = state.range(4) == 0 ? PrefillPrecision::Split : PrefillPrecision::Half;
  if (cuda_device_count() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  if (path == PrefillPath::Warpgroup && !attention_prefill_has_warpgroup(sh.hd)) {
    state.SkipWithError("no warpgroup (wgmma) kernel for this head_dim / build / device");
    return;
  }
  const size_t row = size_t(sh.n_head_kv) * sh.hd;
  DeviceBuffer<uint16_t> kc(size_t(T) * row), vc(size_t(T) * row);
  fill_f16(kc.data(), kc.size());
  fill_f16(vc.data(), vc.size());
  DeviceBuffer<float> q(size_t(T) * sh.n_head * sh.hd), out(size_t(T) * sh.n_head * sh.hd);
  fill_f32(q.data(), q.size(), 1.f);
  DeviceBuffer<int32_t> pos(1);
  const int32_t p0 = 0;
  KILN_CUDA_CHECK(cudaMemcpy(pos.data(), &p0, 4, cudaMemcpyHostToDevice));
  const float scale = 1.f / std::sqrt(float(sh.hd));
  const double sec = bench::run(state, [&](int) {
    attention_prefill(q.data(), 0, T, pos.data(), kc.data(), vc.data(), T, sh.n_head, sh.n_head_kv,
                      sh.hd, scale, window, out.data(), bench::stream(), path, precision);
  });
  double pairs = 0;  // attended (query, key) pairs
  for (int64_t t = 0; t < T; ++t) pairs += double(window ? std::min<int64_t>(t + 1, window) : t + 1);
  bench::report_flops(state, 4.0 * sh.n_head * sh.hd * pairs, sec, 8192, 8192, 8192);
  state.counters["splits"] = attention_prefill_splits(T, sh.n_head, sh.hd, window, precision, path);
  state.counters["persistent"] = attention_prefill_persistent(T, sh.n_head, sh.hd, window, precision, path);
  state.SetLabel(std::string(sh.name) + (path == PrefillPath::MmaSync ? " mma.sync" : " wgmma") +
                 (precision == PrefillPrecision::Half ? " half" : ""));
}

void decode_args(benchmark::internal::Benchmark* b) {
  for (int v = 0; v < 3; ++v)
    for (int s = 0; s < 3; ++s)
      for (int64_t ctx : {512, 4096, 32768}) b->Args({s, ctx, 0, v});
  // the runner's decode after a 512-token prompt: splits sized for this context and for 4096
  for (int v = 0; v < 3; ++v)
    for (int s = 0; s < 3; ++s) b->Args({s, 576, 0, v}), b->Args({s, 576, -1, v});
  // split-count sweep at 32768 for the two global shapes
  for (int v = 0; v < 3; ++v) {
    for (int64_t sp : {33, 66, 99, 132, 198}) b->Args({0, 32768, sp, v});
    for (int64_t sp : {66, 132, 198, 264}) b->Args({1, 32768, sp, v});
    b->Args({3, 262144, 0, v});  // the layout probe: qwen3_hd128's bytes at 32768
  }
}
// Prefill rows' last arguments: the kernel (0 mma.sync, 1 wgmma where it exists) and the
// precision (0 Split, 1 Half).
void prefill_args(benchmark::internal::Benchmark* b) {
  for (int prec = 0; prec < 2; ++prec)
    for (int64_t T : {512, 2048, 8192})
      for (int path = 0; path < 2; ++path) {
        b->Args({0, T, 0, path, prec});    // hd 128, causal
        b->Args({1, T, 0, path, prec});    // hd 512 (Gemma 4 global), causal
        b->Args({2, T, 0, path, prec});    // hd 256 causal (the sliding layer's shape without its window)
        b->Args({2, T, 512, path, prec});  // hd 256, window 512 (Gemma 4 sliding)
      }
}

BENCHMARK(BM_decode)->Apply(decode_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_prefill)->Apply(prefill_args)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kiln
BENCHMARK_MAIN();
