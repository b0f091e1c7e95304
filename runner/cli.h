// The `kiln` command line: one entry point, one function per subcommand (runner/cli_*.cpp).
#pragma once

#include <string>
#include <vector>

namespace kiln {

int cli_main(int argc, char** argv);

// Exit codes: 0 success, 1 bad input or runtime failure (one error line on stderr), 2 usage.
constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

}  // namespace kiln
