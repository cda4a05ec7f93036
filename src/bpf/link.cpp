#include "bpf/link.h"

#include <bpf/bpf.h>
#include <sys/socket.h>

#include <cerrno>

namespace steer::bpf {

Result<Link> Link::open_pinned(const std::string& path) {
  bpf_link* link = bpf_link__open(path.c_str());
  if (link == nullptr) return fail_errno("open pinned link " + path);
  return Link(link);
}

Result<void> Link::pin(const std::string& path) {
  int ret = bpf_link__pin(link_, path.c_str());
  if (ret < 0) return fail_errno(-ret, "pin link at " + path);
  return {};
}

Result<void> Link::update_program(const bpf_program* program) {
  int ret = bpf_link__update_program(link_, const_cast<bpf_program*>(program));
  if (ret < 0) return fail_errno(-ret, "replace the program of a link");
  return {};
}

namespace {

Result<Link> link_or_error(bpf_link* link, const std::string& what) {
  if (link == nullptr) return fail_errno(what);
  return Link(link);
}

}  // namespace

Result<Link> attach_sk_lookup(const bpf_program* program, int netns_fd) {
  return link_or_error(bpf_program__attach_netns(program, netns_fd),
                       "attach sk_lookup program to the network namespace");
}

Result<Link> attach_sockops(const bpf_program* program, int cgroup_fd) {
  return link_or_error(bpf_program__attach_cgroup(program, cgroup_fd),
                       "attach sockops program to the cgroup");
}

Result<void> attach_to_sockmap(const bpf_program* program, int map_fd) {
  int ret = bpf_prog_attach(bpf_program__fd(program), map_fd,
                            bpf_program__expected_attach_type(program), 0);
  if (ret < 0) return fail_errno(-ret, "attach program to the socket map");
  return {};
}

Result<void> attach_reuseport(const bpf_program* program, int socket_fd) {
  int prog_fd = bpf_program__fd(program);
  if (::setsockopt(socket_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof(prog_fd)) != 0)
    return fail_errno("attach sk_reuseport program to the socket's group (SO_ATTACH_REUSEPORT_EBPF)");
  return {};
}

}  // namespace steer::bpf
