// kiln synth --preset NAME --out FILE.gguf [--seed S] | --list
#include <chrono>
#include <unistd.h>

#include <cstdio>

#include "models/synth.h"
#include "runner/cli.h"

namespace kiln {

int cli_synth(int argc, char** argv) {
  Args args(argc, argv, 1);
  if (args.flag("--list")) {
    args.finish();
    for (const PresetInfo& p : synth_presets()) printf("%-12s %s\n", p.name, p.description);
    return kExitOk;
  }
  const std::string preset = args.value("--preset");
  const std::string out = args.value("--out");
  const uint64_t seed = uint64_t(Args::to_int("--seed", args.value("--seed", "1"), 0, 1L << 62));
  args.finish();
  if (preset.empty() || out.empty()) throw UsageError{"--preset NAME and --out FILE.gguf are required"};

  const SynthModel m = synth_model(preset, seed);
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(fileno(stderr));
  int last_pct = -1;
  synth_write(m, out, [&](uint64_t done, uint64_t total) {
    const int pct = total ? int(done * 100 / total) : 100;
    if (pct != last_pct && (tty || pct % 10 == 0)) {
      fprintf(stderr, tty ? "\rwriting %s: %3d%%" : "writing %s: %3d%%\n", out.c_str(), pct);
      last_pct = pct;
    }
  });
  if (tty) fprintf(stderr, "\n");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("wrote %s: preset %s, seed %llu, %zu tensors, %.3f GB in %.1f s\n", out.c_str(), preset.c_str(),
         (unsigned long long)seed, m.tensors.size(), double(m.total_bytes()) / 1e9, s);
  return kExitOk;
}

}  // namespace kiln
