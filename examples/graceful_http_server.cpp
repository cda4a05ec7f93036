// A tiny HTTP server that restarts without losing a connection, through steerd:
//
//   steer-graceful-http --label web [--socket PATH] [--pid-file FILE]
//
// It listens on a fresh loopback port (steer's binding brings the traffic), registers the
// listener as the label's next generation and promotes it (Client::take_over): from then on
// every new connection comes here and the previous generation drains. On SIGHUP it starts a
// new copy of itself, which does the same; this process then waits until its generation is
// drained and empty (Client::wait_until_drained), serves what is left, and exits.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "steer/client.h"

namespace {

std::atomic<bool> restart_requested{false};
void on_sighup(int) { restart_requested = true; }

int listen_on_loopback() {
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof(where)) != 0 ||
      listen(fd, 1024) != 0)
    return -1;
  return fd;
}

// Reads the request head, answers, closes.
void serve(int connection, const std::string& body) {
  std::string request;
  char buffer[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
    ssize_t got = read(connection, buffer, sizeof(buffer));
    if (got <= 0) break;
    request.append(buffer, static_cast<size_t>(got));
  }
  std::string response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  (void)!write(connection, response.data(), response.size());
  close(connection);
}

}  // namespace

int main(int argc, char** argv) {
  std::string label, socket_path = steer::kDefaultControlSocket, pid_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string option = argv[i], value = argv[i + 1];
    if (option == "--label") label = value;
    else if (option == "--socket") socket_path = value;
    else if (option == "--pid-file") pid_file = value;
  }
  if (label.empty()) {
    std::fprintf(stderr, "usage: steer-graceful-http --label LABEL [--socket PATH] "
                         "[--pid-file FILE]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, on_sighup);
  int listener = listen_on_loopback();
  if (listener < 0) {
    std::perror("steer-graceful-http: listen");
    return 1;
  }
  auto client = steer::Client::connect(socket_path);
  if (!client) {
    std::fprintf(stderr, "steer-graceful-http: %s\n", client.error().message.c_str());
    return 1;
  }
  int fds[] = {listener};
  auto generation = client->take_over(label, fds);
  if (!generation) {
    std::fprintf(stderr, "steer-graceful-http: %s\n", generation.error().message.c_str());
    return 1;
  }
  std::string body = "generation " + std::to_string(*generation) + " pid " +
                     std::to_string(getpid()) + "\n";
  if (!pid_file.empty()) {
    // Written aside and renamed: a reader sees the old pid or the new one, whole.
    std::string aside = pid_file + ".new";
    if (FILE* file = std::fopen(aside.c_str(), "w")) {
      std::fprintf(file, "%d\n", getpid());
      std::fclose(file);
      std::rename(aside.c_str(), pid_file.c_str());
    }
  }
  std::printf("steer-graceful-http: %s", body.c_str());
  std::fflush(stdout);
  // Serve until asked to restart.
  while (!restart_requested) {
    pollfd polled{listener, POLLIN, 0};
    if (poll(&polled, 1, -1) <= 0) continue;  // EINTR: SIGHUP
    int connection = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection >= 0) serve(connection, body);
  }
  // The next generation takes over; this one drains.
  pid_t next = fork();
  if (next == 0) {
    execv("/proc/self/exe", argv);
    std::perror("steer-graceful-http: exec");
    _exit(127);
  }
  std::atomic<bool> drained{false};
  std::string failure;
  std::thread waiter([&] {
    // A client of its own: the main thread's is not shared across threads.
    auto watcher = steer::Client::connect(socket_path);
    auto done = watcher ? watcher->wait_until_drained(label, *generation, 60000)
                        : steer::ClientResult<void>(std::unexpected(watcher.error()));
    if (!done) failure = done.error().message;
    drained = true;
  });
  fcntl(listener, F_SETFL, O_NONBLOCK);
  // Keep serving while draining; once drained and empty, take what is left and go.
  int quiet_rounds = 0;
  while (!drained || quiet_rounds < 5) {
    pollfd polled{listener, POLLIN, 0};
    int ready = poll(&polled, 1, 20);
    int connection = ready > 0 ? accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    if (connection >= 0) {
      serve(connection, body);
      quiet_rounds = 0;
    } else if (drained) {
      ++quiet_rounds;
    }
  }
  waiter.join();
  if (!failure.empty()) std::fprintf(stderr, "steer-graceful-http: %s\n", failure.c_str());
  close(listener);
  return failure.empty() ? 0 : 1;
}
