// The `kiln` command line: one entry point, one function per subcommand (runner/cli_*.cpp).
#pragma once

#include <string>
#include <vector>

namespace kiln {

int cli_main(int argc, char** argv);

// Subcommands, one file each (runner/cli_<name>.cpp). argv[0] is the subcommand name.
int cli_inspect(int argc, char** argv);
int cli_synth(int argc, char** argv);
int cli_logits(int argc, char** argv);
int cli_run(int argc, char** argv);
int cli_probe(int argc, char** argv);

// Small argument helpers shared by the subcommands: "--flag value" lookups that report usage
// errors by throwing UsageError (cli_main turns it into exit code 2).
struct UsageError {
  std::string msg;
};
class Args {
 public:
  Args(int argc, char** argv, int first);
  bool flag(const std::string& name);                        // --name present (consumed)
  std::string value(const std::string& name, const std::string& fallback = "");  // --name V
  bool has(const std::string& name) const;
  std::vector<std::string> positional();  // remaining non-flag arguments
  void finish();                          // throws UsageError on any unconsumed --flag
  static long to_int(const std::string& name, const std::string& v, long lo, long hi);

 private:
  std::vector<std::string> a_;
  std::vector<bool> used_;
};

// Exit codes: 0 success, 1 bad input or runtime failure (one error line on stderr), 2 usage.
constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

}  // namespace kiln
