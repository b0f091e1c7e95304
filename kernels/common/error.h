// kiln::Error: the one exception type kiln throws. Messages name what is wrong and where
// (file, tensor, key, byte offset), so a user can act on one line of output.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws kiln::Error built from the streamed arguments.
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace kiln

// Precondition check for host code: throws kiln::Error with the condition text and a message.
#define KILN_REQUIRE(cond, ...)                                             \
  do {                                                                      \
    if (!(cond)) ::kiln::fail(__VA_ARGS__);                                 \
  } while (0)
