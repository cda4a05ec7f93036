#include "base/error.h"

#include <cstring>

namespace steer {

std::string errno_name(int code) {
  // strerrorname_np is glibc 2.32+; Debian 12 ships 2.36.
  if (const char* name = strerrorname_np(code)) return name;
  return fmt::format("E{}", code);
}

std::string Error::code_name() const { return errno_name(code); }

std::unexpected<Error> fail_errno(int code, const std::string& what) {
  return std::unexpected(
      Error{code, fmt::format("{}: {} ({})", what, std::strerror(code), errno_name(code))});
}

std::unexpected<Error> fail_errno(const std::string& what) { return fail_errno(errno, what); }

Result<int> from_libbpf(int ret, const std::string& what) {
  if (ret >= 0) return ret;
  return fail_errno(-ret, what);
}

}  // namespace steer
