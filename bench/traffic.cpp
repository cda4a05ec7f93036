#include "traffic.h"

#include <bpf/bpf.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common.h"

namespace steer::bench {

AcceptLoop::AcceptLoop(int listener_fd) {
  thread_ = std::thread([this, listener_fd] {
    while (!stop_.load(std::memory_order_relaxed)) {
      pollfd entry{listener_fd, POLLIN, 0};
      if (::poll(&entry, 1, 20) <= 0) continue;
      while (true) {
        int fd = ::accept4(listener_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        ::close(fd);
        accepted_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
}

AcceptLoop::~AcceptLoop() {
  stop_ = true;
  thread_.join();
}

Fd listen_for_bench(const SocketAddress& address) {
  auto fd = check(listen_tcp(address, SocketOptions{.backlog = 4096}), "listen on " + address.to_string());
  int flags = 1;
  ::ioctl(fd.get(), FIONBIO, &flags);
  return fd;
}

double connect_loop(size_t count, const std::function<SocketAddress(size_t)>& target) {
  require_private_netns();
  linger reset{1, 0};
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < count; ++i) {
    SocketAddress address = target(i);
    int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die(fmt::format("socket: {}", std::strerror(errno)));
    if (::connect(fd, address.data(), address.size()) != 0)
      die(fmt::format("connect #{} to {}: {}", i, address.to_string(), std::strerror(errno)));
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::close(fd);
  }
  return seconds_since(start);
}

double connect_in(const NetNamespace& netns, size_t count,
                  const std::function<SocketAddress(size_t)>& target) {
  double seconds = 0;
  std::thread client([&] {
    check(netns.enter(), "enter the benchmark namespace");
    seconds = connect_loop(count, target);
  });
  client.join();
  return seconds;
}

RunStats read_stats(int program_fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(program_fd, &info, &length) != 0) die("read the program's info");
  return {info.run_time_ns, info.run_cnt};
}

}  // namespace steer::bench
