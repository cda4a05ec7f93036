#include "support/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace steer::testing {

namespace {

// The request a test sends to the socket maker, and its answer (with the fd as SCM_RIGHTS).
struct SocketRequest {
  int family;
  int type;
};
struct SocketReply {
  int error;  // 0, or the errno of socket()
};

constexpr int kChannelFd = 3;

// The child's whole life: answer socket requests until the channel closes.
[[noreturn]] void serve_socket_requests() {
  while (true) {
    SocketRequest request{};
    ssize_t length = ::recv(kChannelFd, &request, sizeof(request), 0);
    if (length != sizeof(request)) ::_exit(length == 0 ? 0 : 1);
    int socket_fd = ::socket(request.family, request.type | SOCK_CLOEXEC, 0);
    SocketReply reply{socket_fd < 0 ? errno : 0};
    iovec data{&reply, sizeof(reply)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    if (socket_fd >= 0) {
      message.msg_control = control;
      message.msg_controllen = sizeof(control);
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(header), &socket_fd, sizeof(int));
    }
    ssize_t sent = ::sendmsg(kChannelFd, &message, MSG_NOSIGNAL);
    if (sent != sizeof(reply)) ::_exit(1);
    if (socket_fd >= 0) {
      // Only then may the test go on: it must hold the only reference (closing it in the test
      // must close the socket), and the message in flight holds one until it is received.
      ::close(socket_fd);
      char closed = 0;
      if (::send(kChannelFd, &closed, 1, MSG_NOSIGNAL) != 1) ::_exit(1);
    }
  }
}

}  // namespace

Result<SocketMakerInCgroup> SocketMakerInCgroup::start(const TestCgroup& cgroup) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
    return fail_errno("socketpair for the socket maker");
  Fd parent_end(ends[0]), child_end(ends[1]);
  pid_t pid = ::fork();
  if (pid < 0) return fail_errno("fork the socket maker");
  if (pid == 0) {
    // Keep stdio and the channel only: an inherited copy of a test socket would keep it open.
    if (::dup2(child_end.get(), kChannelFd) < 0) ::_exit(1);
    ::close_range(kChannelFd + 1, ~0U, 0);
    serve_socket_requests();
  }
  child_end.reset();
  SocketMakerInCgroup maker(pid, std::move(parent_end));
  // Requests come only after start() returns, so every socket is made inside the cgroup.
  if (auto moved = cgroup.add_process(pid); !moved) return std::unexpected(moved.error());
  return maker;
}

SocketMakerInCgroup::SocketMakerInCgroup(SocketMakerInCgroup&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), channel_(std::move(other.channel_)) {}

SocketMakerInCgroup::~SocketMakerInCgroup() {
  if (pid_ < 0) return;
  channel_.reset();  // the child sees EOF and exits
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

Result<Fd> SocketMakerInCgroup::make_socket(int family, int type) const {
  SocketRequest request{family, type};
  if (::send(channel_.get(), &request, sizeof(request), MSG_NOSIGNAL) != sizeof(request))
    return fail_errno("ask the socket maker for a socket");
  SocketReply reply{};
  iovec data{&reply, sizeof(reply)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t length = ::recvmsg(channel_.get(), &message, MSG_CMSG_CLOEXEC);
  if (length < 0) return fail_errno("receive a socket from the socket maker");
  if (length != sizeof(reply)) return fail(EPROTO, "the socket maker (pid {}) died", pid_);
  if (reply.error != 0) return fail_errno(reply.error, "socket() in the cgroup");
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  if (header == nullptr || header->cmsg_type != SCM_RIGHTS)
    return fail(EPROTO, "the socket maker sent no fd");
  int socket_fd = -1;
  std::memcpy(&socket_fd, CMSG_DATA(header), sizeof(int));
  Fd socket(socket_fd);
  char closed = 0;
  if (::recv(channel_.get(), &closed, 1, 0) != 1)
    return fail(EPROTO, "the socket maker (pid {}) did not confirm it closed its copy", pid_);
  return socket;
}

}  // namespace steer::testing
