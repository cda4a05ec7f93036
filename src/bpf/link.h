// RAII for BPF links and the attachments steer makes (sk_lookup, sk_msg, sockops, reuseport).
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <utility>

#include "base/error.h"

namespace steer::bpf {

class Link {
 public:
  Link() = default;
  explicit Link(bpf_link* link) : link_(link) {}
  Link(Link&& other) noexcept : link_(std::exchange(other.link_, nullptr)) {}
  Link& operator=(Link&& other) noexcept {
    if (this != &other) {
      reset();
      link_ = std::exchange(other.link_, nullptr);
    }
    return *this;
  }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  // Dropping the last reference detaches, unless the link is pinned.
  ~Link() { reset(); }

  static Result<Link> open_pinned(const std::string& path);
  Result<void> pin(const std::string& path);
  // Swaps the program behind the link; the attachment never goes away meanwhile.
  Result<void> update_program(const bpf_program* program);
  int fd() const { return link_ ? bpf_link__fd(link_) : -1; }
  bool valid() const { return link_ != nullptr; }

 private:
  void reset() {
    if (link_) bpf_link__destroy(std::exchange(link_, nullptr));
  }
  bpf_link* link_ = nullptr;
};

// sk_lookup programs attach to a network namespace through a link (never BPF_PROG_ATTACH).
Result<Link> attach_sk_lookup(const bpf_program* program, int netns_fd);
// sockops programs attach to a cgroup v2 directory fd.
Result<Link> attach_sockops(const bpf_program* program, int cgroup_fd);
// sk_msg / sk_skb programs attach to a socket map (BPF_PROG_ATTACH, no link).
Result<void> attach_to_sockmap(const bpf_program* program, int map_fd);
// sk_reuseport programs attach to a socket of a SO_REUSEPORT group (the whole group).
Result<void> attach_reuseport(const bpf_program* program, int socket_fd);

}  // namespace steer::bpf
