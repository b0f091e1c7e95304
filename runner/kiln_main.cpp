// The `kiln` command-line tool. Subcommands are filled in by runner/cli_*.cpp.
#include "runner/cli.h"

int main(int argc, char** argv) { return kiln::cli_main(argc, argv); }
