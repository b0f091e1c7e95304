// The roofline report `kiln run` prints and writes as JSON: one struct for the GPU runner and
// the CPU reference path, so both are read the same way.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

struct KernelTime {
  std::string name;
  int launches = 0;
  double us = 0;  // total over the profiled step (one decode step, or the whole prefill)
};

struct RunReport {
  std::string backend;     // "gpu" or "cpu-reference"
  std::string device;      // GPU name or "host CPU"
  std::string model;       // file or preset
  std::string arch;
  int prompt_tokens = 0, gen_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  double weight_bytes_per_token = 0;  // weights a decode step reads
  double kv_bytes_per_token = 0;      // K/V a decode step reads (mean over the decode steps)
  double copy_gbs = 0;                // bandwidth ceiling measured at start (device or host copy)
  double graph_launches_per_token = 0, kernel_launches_per_token = 0;
  double host_us_per_token = 0;
  bool cuda_graph = false;
  std::vector<int32_t> generated;
  std::vector<KernelTime> kernels;          // per-kernel split of one decode step (direct launches)
  std::vector<KernelTime> prefill_kernels;  // per-kernel split of the prompt's prefill (all chunks)
  std::vector<std::pair<std::string, std::string>> notes;

  double prefill_tps() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0; }
  double decode_tps() const { return decode_s > 0 ? gen_tokens / decode_s : 0; }
  double achieved_gbs() const { return (weight_bytes_per_token + kv_bytes_per_token) * decode_tps() / 1e9; }
  double pct_of_copy() const { return copy_gbs > 0 ? 100.0 * achieved_gbs() / copy_gbs : 0; }

  void print() const;
  std::string json() const;
};

// Host memory copy bandwidth (bytes read + written per second), best of a few 256 MiB copies:
// the CPU path's ceiling, measured the same way as the GPU's.
double measure_host_copy_gbs();

}  // namespace kiln
