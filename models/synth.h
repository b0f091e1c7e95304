// Synthetic model presets: real llama.cpp metadata keys and tensor names with the shapes and
// types of the real models (gemma4-e4b Q8_0, qwen3-8b Q4_K_M) and tiny variants for tests.
// Weights come from kernels/common/synth.h, one block at a time, so the same preset can be
// written to a GGUF file (CPU, streaming) or filled straight into device memory (runner).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/common/synth.h"
#include "models/config.h"
#include "models/gguf.h"

namespace kiln {

struct SynthTensor {
  std::string name;
  std::vector<int64_t> ne;  // GGML order: ne[0] contiguous
  SynthSpec spec;           // type, value kind, level/std, key (set from the seed)
  uint64_t nbytes() const;
  uint64_t nblocks() const;
};

struct SynthModel {
  std::string preset;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<SynthTensor> tensors;
  uint64_t total_bytes() const;
};

struct PresetInfo {
  const char* name;
  const char* description;
};
const std::vector<PresetInfo>& synth_presets();

// The preset's metadata and tensor list with per-tensor keys derived from `seed`. Unknown names
// throw kiln::Error listing the presets.
SynthModel synth_model(const std::string& preset, uint64_t seed);

// Fills blocks [b0, b0 + n) of tensor t into dst on the CPU.
void synth_fill(const SynthTensor& t, uint64_t b0, uint64_t n, uint8_t* dst);

// Writes the model as GGUF (streaming; bounded memory). With `with_data` false the weights are a
// sparse hole (see GgufWriter::write): the runner fills them on the device instead.
void synth_write(const SynthModel& m, const std::string& path,
                 const std::function<void(uint64_t, uint64_t)>& progress = {}, bool with_data = true);

}  // namespace kiln
