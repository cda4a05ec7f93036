#include "support/listeners.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "support/kernel_test.h"

namespace steer::testing {

int Listeners::listen(const std::string& at, bool reuseport) {
  auto address = SocketAddress::parse(at);
  if (!address) throw std::runtime_error(address.error().message);
  auto fd = listen_tcp(*address, {.reuseport = reuseport, .backlog = 1024});
  if (!fd) throw std::runtime_error(fd.error().message);
  fds_.push_back(std::move(*fd));
  return fds_.back().get();
}

int Listeners::connect_once(const std::string& to, const std::string& source_ip,
                            uint16_t source_port) {
  auto address = *SocketAddress::parse(to);
  Fd client(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  linger reset{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  if (!source_ip.empty()) {
    int one = 1;
    ::setsockopt(client.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    auto source = *SocketAddress::parse(fmt::format("{}:{}", source_ip, source_port));
    if (::bind(client.get(), source.data(), source.size()) != 0) return kNoListener;
  }
  if (::connect(client.get(), address.data(), address.size()) != 0)
    return errno == ECONNREFUSED ? kRefused : kNoListener;
  std::vector<pollfd> ready;
  for (const auto& fd : fds_) ready.push_back({fd.get(), POLLIN, 0});
  if (::poll(ready.data(), ready.size(), 2000) <= 0) return kNoListener;
  for (size_t i = 0; i < ready.size(); ++i)
    if ((ready[i].revents & POLLIN) && accept_now(ready[i].fd).get() >= 0) return static_cast<int>(i);
  return kNoListener;
}

std::map<int, int> Listeners::spread(int count, const std::string& to) {
  std::map<int, int> taken;
  for (int i = 0; i < count; ++i) taken[connect_once(to)] += 1;
  return taken;
}

}  // namespace steer::testing
