// An echo server that registers its listening sockets with steerd through the client
// library: the sockets systemd passed (LISTEN_FDS, socket activation), or those it binds
// itself (--listen). Connections steer sends it are echoed back.
//
//   steer-echo-server --label echo --listen 127.0.0.1:0
//   systemd-socket-activate -l 127.0.0.1:7000 steer-echo-server --label echo
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "steer/client.h"

namespace {

int listen_on(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &where.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof(where)) != 0 ||
      listen(fd, 128) != 0)
    return -1;
  return fd;
}

// The sockets systemd passed (LISTEN_FDS), if they are for this process.
std::vector<int> inherited_sockets() {
  std::vector<int> fds;
  int count = sd_listen_fds(/*unset_environment=*/1);
  for (int i = 0; i < count; ++i) fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
}

int usage() {
  std::fprintf(stderr, "usage: steer-echo-server --label LABEL [--socket PATH] "
                       "[--listen IPV4:PORT]...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string label, socket_path = steer::kDefaultControlSocket;
  std::vector<int> listeners = inherited_sockets();
  for (int i = 1; i < argc; ++i) {
    std::string option = argv[i];
    if (i + 1 >= argc) return usage();
    std::string value = argv[++i];
    if (option == "--label") label = value;
    else if (option == "--socket") socket_path = value;
    else if (option == "--listen") {
      int fd = listen_on(value);
      if (fd < 0) {
        std::fprintf(stderr, "steer-echo-server: cannot listen on %s: %s\n", value.c_str(),
                     std::strerror(errno));
        return 1;
      }
      listeners.push_back(fd);
    } else return usage();
  }
  if (label.empty() || listeners.empty()) return usage();
  signal(SIGPIPE, SIG_IGN);
  auto client = steer::Client::connect(socket_path);
  if (!client) {
    std::fprintf(stderr, "steer-echo-server: %s\n", client.error().message.c_str());
    return 1;
  }
  auto registered = client->register_sockets(label, listeners);
  if (!registered) {
    std::fprintf(stderr, "steer-echo-server: %s\n", registered.error().message.c_str());
    return 1;
  }
  std::printf("registered %zu sockets for '%s' as generation %u\n", listeners.size(),
              label.c_str(), registered->generation);
  std::fflush(stdout);
  std::vector<pollfd> polled;
  for (int fd : listeners) polled.push_back({fd, POLLIN, 0});
  const size_t listening = polled.size();
  for (;;) {
    if (poll(polled.data(), polled.size(), -1) < 0 && errno != EINTR) return 1;
    for (size_t i = 0; i < polled.size(); ++i) {
      if (!(polled[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (i < listening) {
        int connection = accept4(polled[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection >= 0) polled.push_back({connection, POLLIN, 0});
        continue;
      }
      char buffer[4096];
      ssize_t got = read(polled[i].fd, buffer, sizeof(buffer));
      if (got <= 0 || write(polled[i].fd, buffer, static_cast<size_t>(got)) != got) {
        close(polled[i].fd);
        polled[i].fd = -1;
      }
    }
    std::erase_if(polled, [](const pollfd& entry) { return entry.fd < 0; });
  }
}
