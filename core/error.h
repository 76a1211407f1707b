// Errors: every failure in glimpse is a glimpse::Error whose message says where (file:line), what
// was checked, the values at fault and, where we can, a hint for the user.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace glimpse {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void fail(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

}  // namespace glimpse

// GLIMPSE_CHECK(cond, "message", value, ...): throws glimpse::Error naming file, line and the message.
#define GLIMPSE_CHECK(cond, ...)                                                                             \
  do {                                                                                                       \
    if (!(cond)) ::glimpse::detail::fail(__FILE__, __LINE__, #cond, ::glimpse::detail::concat(__VA_ARGS__)); \
  } while (0)

#define GLIMPSE_FAIL(...) ::glimpse::detail::fail(__FILE__, __LINE__, nullptr, ::glimpse::detail::concat(__VA_ARGS__))
