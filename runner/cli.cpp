#include "runner/cli.h"

#include <cstdio>
#include <cstring>
#include <exception>

#include "kernels/common/error.h"

namespace kiln {

namespace {
void usage(FILE* f) {
  fprintf(f,
          "usage: kiln <command> [options]\n"
          "commands:\n"
          "  run [--model FILE.gguf | --preset NAME] [--prompt-tokens N] [--gen N] [--json OUT] [--no-graph]\n"
          "      [--prefill-attention split|half]\n"
          "                          run prefill + decode and print the roofline report (GPU, else CPU reference)\n"
          "  logits --model FILE.gguf --tokens 1,2,3 [--backend cpu|gpu] [--out logits.f32] [--exact]\n"
          "                          logits of every prompt position (raw float32 [tokens x vocab])\n"
          "  inspect FILE.gguf       validate a model file; print config, tensors, bytes read per decode token\n"
          "  synth --preset NAME --out FILE.gguf [--seed S] | synth --list\n"
          "                          write a synthetic model (llama.cpp loads it too)\n"
          "  probe [--mib N] [--no-gemm]  GPU name, SMs, L2, measured copy/read bandwidth, cuBLAS BF16 rate\n");
}

struct Command {
  const char* name;
  int (*fn)(int, char**);
};
constexpr Command kCommands[] = {
    {"run", cli_run}, {"logits", cli_logits}, {"inspect", cli_inspect}, {"synth", cli_synth},
    {"probe", cli_probe}};
}  // namespace

int cli_main(int argc, char** argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : kExitOk;
  }
  for (const Command& c : kCommands) {
    if (strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.fn(argc - 1, argv + 1);
    } catch (const UsageError& e) {
      fprintf(stderr, "kiln %s: %s (see kiln --help)\n", c.name, e.msg.c_str());
      return kExitUsage;
    } catch (const std::bad_alloc&) {
      fprintf(stderr, "kiln %s: error: out of host memory\n", c.name);
      return kExitError;
    } catch (const std::exception& e) {
      fprintf(stderr, "kiln %s: error: %s\n", c.name, e.what());
      return kExitError;
    }
  }
  fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return kExitUsage;
}

}  // namespace kiln
