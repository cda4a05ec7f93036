#include "base/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include <linux/nsfs.h>

namespace steer {

namespace {

Result<ino_t> inode_of(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("stat " + what);
  return st.st_ino;
}

}  // namespace

Result<NetNamespace> NetNamespace::open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open network namespace " + path);
  auto inode = STEER_TRY(inode_of(fd.get(), path));
  // Refuse other files and other namespace kinds now, with a clear error.
  int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type < 0)
    return fail(EINVAL, "{} is not a namespace file: pass /proc/<pid>/ns/net or /run/netns/<name>", path);
  if (type != CLONE_NEWNET)
    return fail(EINVAL, "{} is a namespace but not a network namespace: pass .../ns/net", path);
  return NetNamespace(std::move(fd), inode);
}

Result<NetNamespace> NetNamespace::current() { return open("/proc/thread-self/ns/net"); }

Result<NetNamespace> NetNamespace::create() {
  auto previous = STEER_TRY(current());
  if (::unshare(CLONE_NEWNET) != 0)
    return fail_errno("create a network namespace (unshare CLONE_NEWNET; needs CAP_SYS_ADMIN)");
  auto created = current();
  if (::setns(previous.fd(), CLONE_NEWNET) != 0) {
    // Staying in the wrong namespace would be worse than dying.
    throw FatalError(fmt::format("cannot return to the original network namespace: {}",
                                 std::strerror(errno)));
  }
  return created;
}

Result<void> NetNamespace::enter() const {
  if (::setns(fd_.get(), CLONE_NEWNET) != 0)
    return fail_errno(fmt::format("enter network namespace {} (setns)", inode_));
  return {};
}

Result<ScopedNetns> ScopedNetns::enter(const NetNamespace& target) {
  auto previous = STEER_TRY(NetNamespace::current());
  // Already there: no setns (which needs CAP_SYS_ADMIN), and nothing to undo.
  if (previous.inode() == target.inode()) {
    ScopedNetns same(std::move(previous));
    same.active_ = false;
    return same;
  }
  STEER_TRY(target.enter());
  return ScopedNetns(std::move(previous));
}

ScopedNetns::~ScopedNetns() {
  if (!active_) return;
  if (::setns(previous_.fd(), CLONE_NEWNET) != 0) std::abort();  // never continue in the wrong netns
}

Result<void> bring_up_loopback() {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("socket for interface ioctl");
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return fail_errno("read flags of lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return fail_errno("bring lo up");
  return {};
}

Result<ino_t> current_netns_inode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return fail_errno("stat own network namespace");
  return st.st_ino;
}

}  // namespace steer
