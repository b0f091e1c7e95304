// `kiln logits`: run a prompt through a model and dump the logits of every position, so kiln can
// be compared with other engines (llama.cpp's logits, a GPU run, another kiln build).
//
//   kiln logits --model FILE.gguf --tokens 2,17,99 [--backend cpu|gpu] [--out logits.f32] [--exact]
//
// Output file: raw little-endian float32, row-major [n_tokens x vocab] (the layout of llama.cpp's
// batch logits). stdout: one line per position with the token, the argmax and its logit.
// --backend cpu (default) is the reference forward pass (reference/forward.h) with activations
// quantized to Q8_1 before each quantized matmul, like the GPU; --exact keeps them float.
// --backend gpu is the GPU runner (runner/engine.h): one batched prefill keeping all logits.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common/error.h"
#include "models/gguf.h"
#include "reference/forward.h"
#include "runner/cli.h"
#include "runner/engine.h"

namespace kiln {

namespace {

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    const size_t j = s.find(',', i);
    const std::string item = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    out.push_back(int32_t(Args::to_int("--tokens", item, 0, INT32_MAX)));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

bool little_endian_host() {
  const uint32_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 1;
}

void write_f32(const std::string& path, const std::vector<float>& v) {
  if (!little_endian_host()) fail("--out: writing little-endian float32 needs a little-endian host");
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) fail("cannot open '", path, "' for writing: ", strerror(errno));
  const size_t wrote = fwrite(v.data(), sizeof(float), v.size(), f);
  const bool ok = wrote == v.size() && fclose(f) == 0;
  if (!ok) fail("writing '", path, "' failed: ", strerror(errno));
}

}  // namespace

int cli_logits(int argc, char** argv) {
  Args a(argc, argv, 1);
  const std::string model = a.value("--model");
  const std::string tokens_arg = a.value("--tokens");
  const std::string backend = a.value("--backend", "cpu");
  const std::string out = a.value("--out");
  const bool exact = a.flag("--exact");
  a.finish();
  if (model.empty()) throw UsageError{"--model FILE.gguf is required"};
  if (tokens_arg.empty()) throw UsageError{"--tokens is required (comma-separated token ids, e.g. 2,17,99)"};
  const std::vector<int32_t> tokens = parse_tokens(tokens_arg);
  if (backend != "cpu" && backend != "gpu") throw UsageError{"--backend must be cpu or gpu, got '" + backend + "'"};
  if (backend == "gpu" && exact) throw UsageError{"--exact applies to the cpu backend (the GPU quantizes activations)"};

  const GgufFile file = GgufFile::open(model);
  const ref::Activations mode = exact ? ref::Activations::Exact : ref::Activations::Q8_1;
  std::vector<float> logits;
  ModelConfig cfg;
  std::string how;
  const ModelConfig file_cfg = parse_config(file);
  if (int64_t(tokens.size()) > file_cfg.n_ctx)
    fail(tokens.size(), " tokens exceed the model's context_length of ", file_cfg.n_ctx);
  if (backend == "cpu") {
    ref::Forward fw(file, mode, int(tokens.size()));
    cfg = fw.config();
    logits = fw.forward(tokens.data(), int(tokens.size()));
    how = std::string("backend cpu (reference, activations ") + ref::activations_name(mode) + ")";
  } else {
    // The GPU runner: one batched prefill that keeps every position's logits.
    EngineOptions o;
    o.max_ctx = int(tokens.size());
    o.max_chunk = int(std::min<size_t>(tokens.size(), 2048));
    o.all_logits = true;
    Engine e(file, nullptr, o);
    cfg = e.config();
    logits.resize(tokens.size() * size_t(cfg.n_vocab));
    e.prefill(tokens.data(), int(tokens.size()), logits.data());
    how = "backend gpu (" + e.props().name + ")";
  }
  const int vocab = cfg.n_vocab;

  if (!out.empty()) write_f32(out, logits);
  printf("# %s, %s, %s, %zu tokens x %d vocab%s%s\n", arch_name(cfg.arch), model.c_str(), how.c_str(),
         tokens.size(), vocab, out.empty() ? "" : " -> ", out.c_str());
  printf("# pos  token  argmax  logit\n");
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* row = logits.data() + t * size_t(vocab);
    const int best = ref::argmax(row, vocab);
    printf("%5zu  %5d  %6d  %.6g\n", t, tokens[t], best, double(row[best]));
  }
  return kExitOk;
}

}  // namespace kiln
