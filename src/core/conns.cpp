// Established connections: the sockops program that counts each registered listener's
// children (`steer conns track|untrack`), the tags it reads, and `steer conns` listing.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "base/cgroup.h"
#include "conns.skel.h"
#include "core/dispatcher_internal.h"
#include "core/socket_source.h"

namespace steer::core {

namespace {

// The cgroup v2 directory with this id (its inode), found under the cgroup2 mount.
std::string cgroup_path_of(uint64_t id) {
  auto root = steer::find_cgroup2_mount();
  if (!root) return {};
  std::error_code error;
  struct stat st {};
  if (::stat(root->c_str(), &st) == 0 && st.st_ino == id) return *root;
  for (auto it = std::filesystem::recursive_directory_iterator(
           *root, std::filesystem::directory_options::skip_permission_denied, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_directory(error)) continue;
    if (::stat(it->path().c_str(), &st) == 0 && st.st_ino == id) return it->path().string();
  }
  return {};
}

double monotonic_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

}  // namespace

Result<void> Dispatcher::tag_listener(int socket_fd, uint64_t cookie) {
  steer_listener_tag tag{};
  tag.listener_cookie = cookie;
  // Every slot it holds, in every pool (a socket may sit in several).
  auto slots = STEER_TRY((read_all<uint32_t, steer_slot>(state_.slots())));
  for (const auto& [key, record] : slots)
    if (record.cookie == cookie && tag.count < STEER_TAG_KEYS) tag.keys[tag.count++] = key;
  std::sort(tag.keys, tag.keys + tag.count);
  if (bpf_map_update_elem(state_.listener_tags().fd(), &socket_fd, &tag, BPF_ANY) != 0)
    return fail_errno("tag the listener with cookie " + std::to_string(cookie) +
                      " for connection counting");
  return {};
}

Result<std::optional<ConnectionTracking>> Dispatcher::connection_tracking() const {
  Fd directory(::open(state_.path().c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!directory) return fail_errno("open " + state_.path());
  int link = bpf_obj_get((state_.path() + "/" + kConnsLinkPin).c_str());
  if (link < 0) {
    if (errno == ENOENT) return std::optional<ConnectionTracking>();
    return fail_errno("open the connection counter's link in " + state_.path());
  }
  Fd link_fd(link);
  bpf_link_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd.get(), &info, &length) != 0)
    return fail_errno("read the connection counter's link");
  ConnectionTracking tracking;
  tracking.program_id = info.prog_id;
  tracking.cgroup_id = info.cgroup.cgroup_id;
  tracking.cgroup = cgroup_path_of(tracking.cgroup_id);
  return std::optional(tracking);
}

Result<ConnectionTracking> Dispatcher::track_connections(const std::string& cgroup) {
  if (auto current = STEER_TRY(connection_tracking()))
    return fail(EEXIST, "connections are counted already (cgroup {}): `steer conns untrack` "
                        "first to move the counter", current->cgroup.empty()
                            ? std::to_string(current->cgroup_id) : current->cgroup);
  Fd directory(::open(cgroup.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  if (!directory)
    return fail_errno(fmt::format("open cgroup {} (a cgroup v2 directory holding the services, "
                                  "e.g. /sys/fs/cgroup/system.slice/web.service)", cgroup));
  auto skeleton = STEER_TRY(bpf::Skeleton<conns>::open("conns"));
  STEER_TRY(state_.reuse_maps(skeleton->obj));
  STEER_TRY(skeleton.load());
  auto link = bpf::attach_sockops(skeleton->progs.steer_count_connections, directory.get());
  if (!link)
    return fail(link.error().code, "{}: is {} a cgroup v2 directory?", link.error().message, cgroup);
  STEER_TRY(link->pin(state_.path() + "/" + kConnsLinkPin));
  // Listeners registered before now are tagged now, through their owners (pidfd_getfd);
  // their children from here on count. One whose owner has exited is tagged when it is
  // registered again.
  std::map<uint64_t, pid_t> listeners;
  for (const auto& destination : STEER_TRY(destinations()))
    if (destination.protocol == Protocol::Tcp)
      for (const auto& socket : STEER_TRY(sockets(destination.id)))
        listeners.emplace(socket.cookie, socket.owner.pid);
  for (auto& [cookie, fd] : take_sockets_by_cookie(listeners)) STEER_TRY(tag_listener(fd.get(), cookie));
  return STEER_TRY(connection_tracking()).value_or(ConnectionTracking{});
}

Result<void> Dispatcher::untrack_connections() {
  std::string pin = state_.path() + "/" + kConnsLinkPin;
  int link = bpf_obj_get(pin.c_str());
  if (link < 0) {
    if (errno == ENOENT) return fail(ENOENT, "connections are not counted: nothing to untrack");
    return fail_errno("open " + pin);
  }
  Fd link_fd(link);
  // Detached at once, whoever else holds the link; then the pin goes.
  if (bpf_link_detach(link_fd.get()) != 0 && errno != ENOLINK)
    return fail_errno("detach the connection counter");
  if (::unlink(pin.c_str()) != 0 && errno != ENOENT) return fail_errno("remove " + pin);
  return {};
}

Result<std::vector<Connection>> Dispatcher::connections(const std::string& label) const {
  // Which pool slot each listener holds, by cookie.
  std::map<uint64_t, std::pair<uint32_t, uint32_t>> listeners;
  std::map<uint32_t, std::string> labels;
  for (const auto& destination : STEER_TRY(destinations())) {
    labels[destination.id] = destination.label;
    for (const auto& socket : STEER_TRY(sockets(destination.id)))
      listeners.emplace(socket.cookie, std::pair{destination.id, socket.slot});
  }
  double now = monotonic_seconds();
  std::vector<Connection> result;
  auto all = STEER_TRY((read_all<uint64_t, steer_connection>(state_.connections())));
  for (const auto& [cookie, raw] : all) {
    Connection connection;
    connection.cookie = cookie;
    connection.local = address_from(raw.family, raw.local, raw.local_port);
    connection.remote = address_from(raw.family, raw.remote, raw.remote_port);
    connection.listener_cookie = raw.listener_cookie;
    if (auto listener = listeners.find(raw.listener_cookie); listener != listeners.end()) {
      connection.destination = listener->second.first;
      connection.slot = listener->second.second;
      connection.label = labels[connection.destination];
    }
    if (!label.empty() && connection.label != label) continue;
    connection.age_seconds = std::max(0.0, now - static_cast<double>(raw.established_ns) / 1e9);
    result.push_back(std::move(connection));
  }
  std::sort(result.begin(), result.end(), [](const Connection& a, const Connection& b) {
    return a.age_seconds > b.age_seconds;
  });
  return result;
}

}  // namespace steer::core
