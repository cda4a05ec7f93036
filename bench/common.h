// What every benchmark shares: running in private namespaces, failing loudly, timing,
// generating binding sets, and printing Markdown tables.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/core.h>

#include "base/bpffs.h"
#include "base/error.h"
#include "base/socket.h"
#include "core/binding.h"
#include "core/dispatcher.h"

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

// Bindings as deployments nest them, for the side-by-side with the tubular-like program
// (peer_bench.cpp). `lengths` is the mix, longest first (the longest must be the full /32 or
// /128). All but one binding form chains: a prefix at the shortest length with one binding of
// each longer length nested inside it (each child at a pseudo-random place in its parent), all
// on one port. A port carries as many chains as the shortest length allows, at most 65536, on
// every other shortest-length prefix (the ones between stay unbound, for near misses): IPv4
// over 0/0, IPv6 over 2000::/3, busy ports from 1024 up. The remaining binding, at the longest
// length, is alone on its port. TCP, label `label`; exactly `total` bindings.
struct NestedBindingSet {
  std::vector<core::Binding> bindings;
  size_t chains = 0;  // full ones
  size_t busy_ports = 0;
  size_t chains_per_port = 0;  // at most
  // Where the comparison looks. No typical hit when `total` is 1, no shortest-length hit for
  // a single-length mix.
  std::optional<SocketAddress> longest_hit;   // a chain's longest binding, mid-port
  std::optional<SocketAddress> shortest_hit;  // inside that chain's shortest binding only
  SocketAddress lone_hit;           // the binding alone on its port (same address as longest_hit)
  SocketAddress unbound_port_miss;  // longest_hit's address on a port nothing binds
  SocketAddress bound_port_miss;    // a busy port, next to its chains but covered by none
};
NestedBindingSet make_nested_binding_set(int family, size_t total, const std::vector<int>& lengths,
                                         const std::string& label);

// `count` distinct /32 TCP bindings of port `port` at addresses spread over 127.0.0.0/8 (not
// 127.0.0.0 or 127.255.255.255), for real traffic on loopback.
std::vector<core::Binding> loopback_host_bindings(size_t count, uint16_t port,
                                                  const std::string& label);

core::Prefix make_prefix(int family, const uint8_t* bytes, int length);

// ---- steer under test -------------------------------------------------------------------------

// steer loaded into the calling thread's (fresh) namespace, with one listener per family
// registered under `label`: a hit of either family must select that family's listener.
struct SteerWithListeners {
  core::Dispatcher dispatcher;
  Fd program;        // the attached dispatcher program
  Fd listeners[2];   // 127.0.0.1 and [::1], port chosen by the kernel
  uint64_t cookies[2];
};
SteerWithListeners load_steer_with_listeners(const std::string& bpffs, const std::string& label);

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
