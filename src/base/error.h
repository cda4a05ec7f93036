// Recoverable errors: an errno-like code plus a sentence that names the object and the fix.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

#include <fmt/core.h>

namespace steer {

struct Error {
  int code = 0;         // a positive errno value (EINVAL, ENOENT, ...)
  std::string message;  // what failed, on which object, and what to do about it

  // "EINVAL", "ENOENT", ... for messages and tests; "E<n>" for codes without a name.
  std::string code_name() const;
};

template <class T>
using Result = std::expected<T, Error>;

// The usual `return fail(EINVAL, "...")` in a function returning Result<T>.
template <class... Args>
std::unexpected<Error> fail(int code, fmt::format_string<Args...> format, Args&&... args) {
  return std::unexpected(Error{code, fmt::format(format, std::forward<Args>(args)...)});
}

// Builds an error from errno (read at the call) with "<what>: <strerror> (ENAME)".
std::unexpected<Error> fail_errno(const std::string& what);
std::unexpected<Error> fail_errno(int code, const std::string& what);

// Converts libbpf's convention (negative errno on failure, >= 0 on success) at the boundary.
Result<int> from_libbpf(int ret, const std::string& what);

// The symbolic name of an errno value: errno_name(EINVAL) == "EINVAL".
std::string errno_name(int code);

// Adds context in front of an error's message, keeping its code.
inline Error with_context(Error error, const std::string& context) {
  error.message = context + ": " + error.message;
  return error;
}

// Fatal start-up failures only; caught in main and printed.
struct FatalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace steer
