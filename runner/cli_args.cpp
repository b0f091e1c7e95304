#include <cerrno>
#include <cstdlib>

#include "runner/cli.h"

namespace kiln {

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) a_.emplace_back(argv[i]);
  used_.assign(a_.size(), false);
}

bool Args::has(const std::string& name) const {
  for (size_t i = 0; i < a_.size(); ++i)
    if (a_[i] == name) return true;
  return false;
}

bool Args::flag(const std::string& name) {
  for (size_t i = 0; i < a_.size(); ++i)
    if (!used_[i] && a_[i] == name) {
      used_[i] = true;
      return true;
    }
  return false;
}

std::string Args::value(const std::string& name, const std::string& fallback) {
  for (size_t i = 0; i < a_.size(); ++i)
    if (!used_[i] && a_[i] == name) {
      if (i + 1 >= a_.size() || used_[i + 1]) throw UsageError{name + " needs a value"};
      used_[i] = used_[i + 1] = true;
      return a_[i + 1];
    }
  return fallback;
}

std::vector<std::string> Args::positional() {
  std::vector<std::string> out;
  for (size_t i = 0; i < a_.size(); ++i)
    if (!used_[i] && (a_[i].empty() || a_[i][0] != '-' || a_[i] == "-")) {
      used_[i] = true;
      out.push_back(a_[i]);
    }
  return out;
}

void Args::finish() {
  for (size_t i = 0; i < a_.size(); ++i)
    if (!used_[i]) throw UsageError{"unexpected argument '" + a_[i] + "'"};
}

long Args::to_int(const std::string& name, const std::string& v, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long x = strtol(v.c_str(), &end, 10);
  if (v.empty() || errno || *end || x < lo || x > hi)
    throw UsageError{name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], got '" + v + "'"};
  return x;
}

}  // namespace kiln
