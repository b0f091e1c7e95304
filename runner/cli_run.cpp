// kiln run: prefill + greedy decode through the GPU runner, or through the CPU reference forward
// when there is no GPU (or --backend cpu), then the roofline report.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>

#include "kernels/common/device.cuh"
#include "models/config.h"
#include "models/synth.h"
#include "reference/forward.h"
#include "kernels/probe.cuh"
#include "runner/cli.h"
#include "runner/engine.h"
#include "runner/report.h"

namespace kiln {

namespace {

constexpr const char* kDefaultPreset = "gemma4-tiny";
constexpr uint64_t kCpuMaxWeightBytes = uint64_t(1) << 30;  // the CPU path is for small models

struct Options {
  std::string model, preset;
  int prompt_tokens = 512, gen = 128;
  std::string json, backend = "auto";
  bool no_graph = false;
  bool half_attention = false;  // --prefill-attention half
  uint64_t seed = 1;
};

// Deterministic prompt of n token ids in [0, vocab).
std::vector<int32_t> make_prompt(int n, int vocab, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = int32_t(g() % uint64_t(vocab));
  return t;
}

RunReport run_cpu(const Options& o, const GgufFile& f, const std::string& label) {
  const ModelConfig c = parse_config(f);
  const uint64_t wbytes = decode_weight_bytes(f, c);
  if (wbytes > kCpuMaxWeightBytes)
    fail(label, ": ", wbytes / 1000000, " MB of weights is too large for the CPU reference path (limit ",
         kCpuMaxWeightBytes / 1000000, " MB); run it on a GPU");
  if (o.prompt_tokens + o.gen > c.n_ctx)
    fail("prompt (", o.prompt_tokens, ") + generated (", o.gen, ") tokens exceed the model's context of ", c.n_ctx);
  RunReport r;
  r.backend = "cpu-reference";
  r.device = "host CPU";
  r.model = label;
  r.arch = arch_name(c.arch);
  r.prompt_tokens = o.prompt_tokens;
  r.weight_bytes_per_token = double(wbytes);
  r.copy_gbs = measure_host_copy_gbs();
  ref::Forward fw(f, ref::Activations::Q8_1, o.prompt_tokens + o.gen);
  const std::vector<int32_t> prompt = make_prompt(o.prompt_tokens, c.n_vocab, o.seed);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  std::vector<float> logits = fw.forward(prompt.data(), o.prompt_tokens);
  r.prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
  int32_t next = ref::argmax(&logits[size_t(o.prompt_tokens - 1) * size_t(c.n_vocab)], c.n_vocab);
  // KV bytes a decode step reads: every cache-owning layer's K and V over its visible positions.
  double kv = 0;
  t0 = clock::now();
  for (int i = 0; i < o.gen; ++i) {
    r.generated.push_back(next);
    const int pos = fw.n_past();
    for (int il = 0; il < c.n_layer; ++il) {
      const LayerConfig& l = c.layers[size_t(il)];
      const int visible = l.sliding ? std::min(pos + 1, c.sliding_window) : pos + 1;
      kv += 2.0 * visible * l.n_head_kv * l.head_dim * sizeof(float);
    }
    logits = fw.forward(&next, 1);
    next = ref::argmax(logits.data(), c.n_vocab);
  }
  r.decode_s = std::chrono::duration<double>(clock::now() - t0).count();
  r.gen_tokens = o.gen;
  r.kv_bytes_per_token = o.gen ? kv / o.gen : 0;
  r.host_us_per_token = o.gen ? r.decode_s * 1e6 / o.gen : 0;
  r.notes.emplace_back("cpu", "CPU reference forward (Q8_1 activations, FP16-rounded K/V held as float): a correctness path, not tuned");
  return r;
}

RunReport run_gpu(const Options& o, const GgufFile& f, const SynthModel* synth, const std::string& label) {
  const ModelConfig c = parse_config(f);
  if (o.prompt_tokens + o.gen > c.n_ctx)
    fail("prompt (", o.prompt_tokens, ") + generated (", o.gen, ") tokens exceed the model's context of ", c.n_ctx);
  const char* env = getenv("KILN_CUDA_GRAPH");
  const bool graph = !o.no_graph && !(env && std::string(env) == "0");
  RunReport r;
  r.backend = "gpu";
  r.model = label;
  r.arch = arch_name(c.arch);
  r.prompt_tokens = o.prompt_tokens;
  r.gen_tokens = o.gen;
  r.cuda_graph = graph;
  {
    Stream s;
    r.copy_gbs = measure_copy_gbs(size_t(1) << 30, 10, s);  // the ceiling, measured in this run
  }
  EngineOptions eo;
  eo.max_ctx = o.prompt_tokens + o.gen + 1;
  eo.max_chunk = std::min(o.prompt_tokens, 2048);
  eo.verbose = true;
  eo.prefill_attention = o.half_attention ? PrefillPrecision::Half : PrefillPrecision::Split;
  eo.x_interleave_rows = parse_x_interleave_rows(getenv("KILN_X_INTERLEAVE_ROWS"), eo.x_interleave_rows);
  Engine e(f, synth, eo);
  if (o.half_attention)
    r.notes.emplace_back("prefill attention", "half: Q and P rounded to FP16 once (kernels/attention.cuh's Half "
                                              "contract, ~1e-3 relative error), not the FP32-accurate default");
  r.device = e.props().name;
  if (e.options().x_interleave_rows != EngineOptions().x_interleave_rows)
    r.notes.emplace_back("decode activations",
                         e.options().x_interleave_rows == 0
                             ? std::string("Q8_1 in blocks for every matrix (KILN_X_INTERLEAVE_ROWS=0; same bits)")
                             : "Q8_1 interleaved only for K-quant matrices of <= " +
                                   std::to_string(e.options().x_interleave_rows) +
                                   " rows (KILN_X_INTERLEAVE_ROWS; same bits)");
  if (!e.skipped_ops().empty()) {
    std::string ops;
    for (const auto& n : e.skipped_ops()) ops += (ops.empty() ? "" : ",") + n;
    r.notes.emplace_back("skipped", "KILN_SKIP_OPS=" + ops + ": those launches were left out (timing study; the "
                                    "tokens and logits are not the model's)");
  }
  r.weight_bytes_per_token = double(e.weight_bytes_per_token());
  const std::vector<int32_t> prompt = make_prompt(o.prompt_tokens, c.n_vocab, o.seed);

  // Prefill: one untimed pass warms cuBLAS and the caches of the allocator, one gives the
  // per-kernel split (events around every launch), then the timed one.
  e.prefill(prompt.data(), o.prompt_tokens, nullptr);
  e.reset();
  r.prefill_kernels = e.profile_prefill(prompt.data(), o.prompt_tokens);
  e.reset();
  Event a, b;
  a.record(e.stream());
  int32_t next = e.prefill(prompt.data(), o.prompt_tokens, nullptr);
  b.record(e.stream());
  b.sync();
  r.prefill_s = double(b.ms_since(a)) * 1e-3;

  if (o.gen > 0) {
    // Per-kernel split and launch count from one direct-launch step, then the timed decode.
    const int n_kernels = e.decode_graph_kernels();
    r.kernels = e.profile_decode_step();
    r.generated.push_back(next);
    const int gen = o.gen - 1;  // the profiled step produced one token already
    std::vector<int32_t> toks(size_t(std::max(gen, 0)));
    double kv = e.kv_bytes_at(e.n_past() - 1);
    for (int i = 0; i < gen; ++i) kv += e.kv_bytes_at(e.n_past() + i);
    const auto t0 = std::chrono::steady_clock::now();
    const double issue = gen > 0 ? e.decode_many(gen, graph, toks.data()) : 0;
    r.decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.gen_tokens = gen;
    r.generated.insert(r.generated.end(), toks.begin(), toks.end());
    r.kv_bytes_per_token = kv / double(gen + 1);
    r.host_us_per_token = gen > 0 ? issue * 1e6 / gen : 0;
    r.graph_launches_per_token = graph ? 1.0 : 0.0;
    r.kernel_launches_per_token = n_kernels;
  }
  return r;
}

}  // namespace

int cli_run(int argc, char** argv) {
  Args args(argc, argv, 1);
  Options o;
  o.model = args.value("--model");
  o.preset = args.value("--preset");
  o.prompt_tokens = int(Args::to_int("--prompt-tokens", args.value("--prompt-tokens", "512"), 1, 1 << 20));
  o.gen = int(Args::to_int("--gen", args.value("--gen", "128"), 0, 1 << 20));
  o.json = args.value("--json");
  o.backend = args.value("--backend", "auto");
  o.no_graph = args.flag("--no-graph");
  const std::string pa = args.value("--prefill-attention", "split");
  if (pa != "split" && pa != "half") throw UsageError{"--prefill-attention must be split or half, got '" + pa + "'"};
  o.half_attention = pa == "half";
  o.seed = uint64_t(Args::to_int("--seed", args.value("--seed", "1"), 0, 1L << 62));
  args.finish();
  if (!o.model.empty() && !o.preset.empty()) throw UsageError{"give --model or --preset, not both"};
  if (o.backend != "auto" && o.backend != "cpu" && o.backend != "gpu")
    throw UsageError{"--backend must be auto, cpu or gpu"};
  if (o.model.empty() && o.preset.empty()) o.preset = kDefaultPreset;

  std::string path = o.model, label = o.model;
  std::unique_ptr<SynthModel> synth;  // presets: the GPU fills the weights itself
  if (!o.preset.empty()) {
    const SynthModel m = synth_model(o.preset, o.seed);  // validates the name
    path = std::string(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") + "/kiln-" + o.preset + "-" +
           std::to_string(o.seed) + "-" + std::to_string(getpid()) + ".gguf";
    synth_write(m, path, {}, /*with_data=*/m.total_bytes() < kCpuMaxWeightBytes);
    label = "preset " + o.preset;
    synth = std::make_unique<SynthModel>(m);
  }
  struct Cleanup {
    std::string p;
    ~Cleanup() {
      if (!p.empty()) std::remove(p.c_str());
    }
  } cleanup{o.preset.empty() ? "" : path};

  const GgufFile f = GgufFile::open(path);
  const bool gpu = o.backend == "gpu" || (o.backend == "auto" && cuda_device_count() > 0);
  if (o.backend == "gpu" && cuda_device_count() == 0) fail("--backend gpu: no CUDA device found");
  if (!gpu && o.backend == "auto") printf("no CUDA device found: running the CPU reference forward\n");
  const RunReport r = gpu ? run_gpu(o, f, synth.get(), label) : run_cpu(o, f, label);
  r.print();
  if (!o.json.empty()) {
    std::ofstream js(o.json);
    if (!js) fail(o.json, ": cannot write");
    js << r.json();
  }
  return kExitOk;
}

}  // namespace kiln
