// Real TCP connections on loopback for the benchmarks: a server thread that accepts and closes,
// and a client loop that connects and resets (no TIME_WAIT, so ports never run out).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "base/netns.h"
#include "base/socket.h"

namespace steer::bench {

// Accepts and closes every connection on a listener until destroyed.
class AcceptLoop {
 public:
  explicit AcceptLoop(int listener_fd);
  ~AcceptLoop();
  AcceptLoop(const AcceptLoop&) = delete;
  AcceptLoop& operator=(const AcceptLoop&) = delete;
  uint64_t accepted() const { return accepted_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0};
  std::thread thread_;
};

// A listening socket with a deep backlog, so a slow accept never drops a SYN.
Fd listen_for_bench(const SocketAddress& address);

// Connects to target(i) for i in [0, count), closing each with a reset. Dies on the first
// failed connect (a benchmark that drops connections measures nothing). Returns seconds.
double connect_loop(size_t count, const std::function<SocketAddress(size_t)>& target);
// The same loop on a thread inside `netns` (setns moves only that thread). Returns seconds.
double connect_in(const NetNamespace& netns, size_t count,
                  const std::function<SocketAddress(size_t)>& target);

// A program's run time and run count so far (BPF_ENABLE_STATS must be on while it runs).
struct RunStats {
  uint64_t run_time_ns = 0;
  uint64_t run_count = 0;
};
RunStats read_stats(int program_fd);

}  // namespace steer::bench
