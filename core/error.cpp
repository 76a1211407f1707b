#include "core/error.h"

#include <cstring>

namespace glimpse::detail {

[[noreturn]] void fail(const char* file, int line, const char* cond, const std::string& msg) {
  // Only the file name, not the build machine's path.
  const char* slash = std::strrchr(file, '/');
  std::ostringstream os;
  os << msg << "  [" << (slash ? slash + 1 : file) << ":" << line;
  if (cond) os << ", check failed: " << cond;
  os << "]";
  throw Error(os.str());
}

}  // namespace glimpse::detail
