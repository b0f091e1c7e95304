#include "runner/cli.h"

#include <cstdio>
#include <cstring>

#include "kernels/common/error.h"

namespace kiln {

namespace {
void usage(FILE* f) {
  fprintf(f,
          "usage: kiln <command> [options]\n"
          "commands:\n"
          "  inspect FILE.gguf                       validate a model file, print config, tensors, bytes/token\n"
          "  synth --preset NAME --out FILE [--seed S] | --list   write a synthetic model\n");
}
}  // namespace

int cli_main(int argc, char** argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? kExitUsage : kExitOk;
  }
  fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return kExitUsage;
}

}  // namespace kiln
