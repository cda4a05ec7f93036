#include "support/kernel_test.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "base/netns.h"

namespace steer::testing {

namespace {

// The namespace the process started in: the machine's own when run by hand.
ino_t host_netns_inode() {
  static ino_t inode = [] {
    struct stat st {};
    ::stat("/proc/self/ns/net", &st);
    return st.st_ino;
  }();
  return inode;
}

bool g_private_mounts = false;

}  // namespace

void KernelTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "kernel tests need root (CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN)";
  host_netns_inode();
  if (!g_private_mounts) {
    // A private mount namespace: the bpffs mounts of this process vanish with it.
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS): " << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    g_private_mounts = true;
  }
  // A fresh network namespace for this test; the previous test's dies with its last socket.
  ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << std::strerror(errno);
  auto inode = current_netns_inode();
  ASSERT_TRUE(inode.has_value());
  ASSERT_NE(*inode, host_netns_inode()) << "refusing to run a kernel test in the host namespace";
  STEER_ASSERT_OK(bring_up_loopback());
  STEER_ASSERT_OK_AND_ASSIGN(auto mount, BpffsMount::create_temporary());
  bpffs_.emplace(std::move(mount));
}

void KernelTest::TearDown() { bpffs_.reset(); }

Result<ScratchNamespace> ScratchNamespace::enter() {
  if (!g_private_mounts)
    return fail(EPERM, "a scratch namespace needs the private mounts of a KernelTest");
  ScratchNamespace scratch;
  auto created = NetNamespace::create();
  if (!created) return std::unexpected(created.error());
  if (created->inode() == host_netns_inode())
    return fail(EPERM, "refusing to use the host namespace as a scratch namespace");
  scratch.netns_.emplace(std::move(*created));
  auto inside = ScopedNetns::enter(*scratch.netns_);
  if (!inside) return std::unexpected(inside.error());
  scratch.inside_.emplace(std::move(*inside));
  auto here = current_netns_inode();
  if (!here || *here != scratch.netns_->inode() || *here == host_netns_inode())
    return fail(EPERM, "the thread did not enter the scratch namespace");
  if (auto up = bring_up_loopback(); !up) return std::unexpected(up.error());
  auto mount = BpffsMount::create_temporary();
  if (!mount) return std::unexpected(mount.error());
  scratch.bpffs_.emplace(std::move(*mount));
  return scratch;
}

int tcp_connect_errno(const SocketAddress& address) {
  auto fd = connect_tcp(address);
  return fd ? 0 : fd.error().code;
}

Fd accept_now(int listener_fd) {
  // SOCK_NONBLOCK would only apply to the accepted socket: poll so a blocking listener with
  // an empty queue does not block.
  pollfd entry{.fd = listener_fd, .events = POLLIN, .revents = 0};
  if (::poll(&entry, 1, 0) <= 0) return Fd();
  return Fd(::accept4(listener_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int accept_all(int listener_fd) {
  int count = 0;
  while (accept_now(listener_fd)) ++count;
  return count;
}

Result<Fd> send_udp(const SocketAddress& address, const std::string& payload) {
  auto fd = make_socket(address.family(), SOCK_DGRAM);
  if (!fd) return fd;
  if (::sendto(fd->get(), payload.data(), payload.size(), 0, address.data(), address.size()) < 0)
    return fail_errno("sendto " + address.to_string());
  return fd;
}

std::optional<std::string> receive_udp_now(int socket_fd) {
  char buffer[2048];
  ssize_t length = ::recv(socket_fd, buffer, sizeof(buffer), MSG_DONTWAIT);
  if (length < 0) return std::nullopt;
  return std::string(buffer, static_cast<size_t>(length));
}

std::map<std::string, uint64_t> tcp_ext_counters() {
  std::ifstream netstat("/proc/thread-self/net/netstat");
  std::map<std::string, uint64_t> counters;
  std::string names, values;
  while (std::getline(netstat, names) && std::getline(netstat, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream name_words(names), value_words(values);
    std::string name, value;
    name_words >> name;  // "TcpExt:"
    value_words >> value;
    while (name_words >> name && value_words >> value) counters[name] = std::stoull(value);
  }
  return counters;
}

}  // namespace steer::testing
