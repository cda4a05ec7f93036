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

// A result that cannot be dropped by accident: the compiler warns when one is ignored. Use
// STEER_TRY to pass an error up, and ignore_result(r, "why") where dropping it is right.
template <class T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(std::expected<T, Error> other) : std::expected<T, Error>(std::move(other)) {}
};

// Drops a result on purpose; `why` says why it is safe (read by people, not by code).
template <class T>
inline void ignore_result(Result<T>&&, const char* /*why*/) {}
template <class T>
inline void ignore_result(Result<T>&, const char* /*why*/) {}

// Evaluates a Result expression; on error returns it from the enclosing function, else
// yields the value (nothing for Result<void>). A GNU statement expression (g++ and clang).
#define STEER_TRY(expression)                                              \
  ({                                                                       \
    auto&& steer_try_result_ = (expression);                               \
    if (!steer_try_result_)                                                \
      return std::unexpected(std::move(steer_try_result_).error());        \
    std::move(steer_try_result_).value();                                  \
  })

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
