// What every benchmark shares: running in private namespaces, failing loudly, timing,
// generating binding sets, and printing Markdown tables.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/core.h>

#include "base/bpffs.h"
#include "base/error.h"
#include "base/socket.h"
#include "core/binding.h"

namespace steer::bench {

// A benchmark that cannot measure what it claims stops the whole run with the reason.
[[noreturn]] void die(std::string_view what);

template <class T>
T check(Result<T> result, std::string_view what) {
  if (!result) die(fmt::format("{}: {}", what, result.error().message));
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

// Progress for the person waiting, on stderr (stdout is the report).
template <class... Args>
void progress(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "bench: {}\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

// ---- namespaces -----------------------------------------------------------------------------

// Once, at start: a private mount namespace (bpffs mounts vanish with the process) and the
// inode of the namespace the process started in, which nothing may ever touch.
void enter_private_mounts();
// Moves the calling thread into a fresh network namespace with lo up, after checking it is not
// the host's, and mounts a private bpffs. Threads started afterwards inherit the namespace.
BpffsMount enter_fresh_netns();
// Dies unless the calling thread is in a namespace this process created.
void require_private_netns();

// ---- time and statistics ----------------------------------------------------------------------

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
double median(std::vector<double> values);

// ---- binding sets -----------------------------------------------------------------------------

// The prefix lengths a benchmark with `count` distinct lengths uses, longest first:
// IPv4 1: /32; 4: /32 /24 /16 /8; 32: /32../1. IPv6 1: /128; 4: /128 /64 /48 /32; 32: /128../4.
std::vector<int> prefix_lengths(int family, int count);

// `total` TCP bindings to `label` over `length_count` prefix lengths, the same number at each.
// One of them, at the shortest length, covers `target` (its address and port), so a lookup of
// `target` probes every length before it matches; the others use ports from 1024 up, so
// `target` never matches them and a lookup of port 9 matches nothing.
struct BindingSet {
  std::vector<core::Binding> bindings;
  SocketAddress hit;   // = target: matched by one binding, at the shortest length
  SocketAddress miss;  // the target's address, port 9: matched by none
};
BindingSet make_binding_set(int family, size_t total, int length_count, const std::string& label,
                            const SocketAddress& target);

// `count` distinct /32 TCP bindings of port `port` at addresses spread over 127.0.0.0/8 (not
// 127.0.0.0 or 127.255.255.255), for real traffic on loopback.
std::vector<core::Binding> loopback_host_bindings(size_t count, uint16_t port,
                                                  const std::string& label);

core::Prefix make_prefix(int family, const uint8_t* bytes, int length);

// ---- report -----------------------------------------------------------------------------------

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string markdown() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

std::string count_label(size_t count);  // 1, 1k, 100k, 1M
std::string family_label(int family);    // IPv4, IPv6

}  // namespace steer::bench
