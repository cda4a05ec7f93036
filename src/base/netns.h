// Network namespaces: open, create, enter and leave, as RAII objects.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>

#include "base/error.h"
#include "base/fd.h"

namespace steer {

class NetNamespace {
 public:
  // The calling thread's namespace.
  static Result<NetNamespace> current();
  // A namespace file such as /proc/<pid>/ns/net or /run/netns/<name>.
  static Result<NetNamespace> open(const std::string& path);
  // A new, empty namespace (only `lo`, down). The calling thread stays where it was.
  static Result<NetNamespace> create();

  int fd() const { return fd_.get(); }
  ino_t inode() const { return inode_; }

  // Moves the calling thread into this namespace. Prefer ScopedNetns.
  Result<void> enter() const;

 private:
  NetNamespace(Fd fd, ino_t inode) : fd_(std::move(fd)), inode_(inode) {}
  Fd fd_;
  ino_t inode_ = 0;
};

// Enters a namespace for the lifetime of the object and returns to the previous one after.
class ScopedNetns {
 public:
  static Result<ScopedNetns> enter(const NetNamespace& target);
  ScopedNetns(ScopedNetns&& other) noexcept
      : previous_(std::move(other.previous_)), active_(std::exchange(other.active_, false)) {}
  ScopedNetns& operator=(ScopedNetns&&) = delete;
  ~ScopedNetns();

 private:
  explicit ScopedNetns(NetNamespace previous) : previous_(std::move(previous)) {}
  NetNamespace previous_;
  bool active_ = true;
};

// Brings the loopback interface of the calling thread's namespace up.
Result<void> bring_up_loopback();

// The inode of the calling thread's network namespace.
Result<ino_t> current_netns_inode();

}  // namespace steer
