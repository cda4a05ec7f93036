#include "core/socket_source.h"

#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "base/socket.h"

namespace steer::core {

namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_getfd(int pidfd, int fd) {
  return static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}

}  // namespace

Result<std::vector<Fd>> take_sockets_of_process(pid_t pid) {
  if (pid <= 0) return fail(EINVAL, "'{}' is not a process id", pid);
  Fd pidfd(pidfd_open(pid));
  if (!pidfd) {
    if (errno == ESRCH) return fail(ESRCH, "no process {}: check the pid (it may have exited)", pid);
    return fail_errno(fmt::format("open process {} (pidfd_open)", pid));
  }
  std::string fd_dir = fmt::format("/proc/{}/fd", pid);
  DIR* dir = ::opendir(fd_dir.c_str());
  if (dir == nullptr) return fail_errno("list the fds of process " + std::to_string(pid));
  std::vector<int> candidates;
  while (dirent* entry = ::readdir(dir)) {
    char target[64] = {};
    std::string link = fd_dir + "/" + entry->d_name;
    ssize_t length = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (length > 0 && std::string_view(target, length).starts_with("socket:["))
      candidates.push_back(std::atoi(entry->d_name));
  }
  ::closedir(dir);

  std::vector<Fd> sockets;
  std::set<uint64_t> seen;
  for (int remote_fd : candidates) {
    Fd copy(pidfd_getfd(pidfd.get(), remote_fd));
    if (!copy) {
      if (errno == EBADF) continue;  // closed meanwhile
      if (errno == EPERM)
        return fail(EPERM, "not allowed to take the sockets of process {} (pidfd_getfd needs "
                           "ptrace rights: run as root or as its user)", pid);
      return fail_errno(fmt::format("take fd {} of process {}", remote_fd, pid));
    }
    auto info = inspect_socket(copy.get());
    if (!info || (info->family != AF_INET && info->family != AF_INET6)) continue;
    if (!seen.insert(info->cookie).second) continue;
    sockets.push_back(std::move(copy));
  }
  return sockets;
}

std::map<uint64_t, Fd> take_sockets_by_cookie(const std::map<uint64_t, pid_t>& owners) {
  std::map<uint64_t, Fd> found;
  std::set<pid_t> asked;
  for (const auto& [cookie, pid] : owners) {
    if (found.contains(cookie) || !asked.insert(pid).second) continue;
    auto taken = take_sockets_of_process(pid);
    if (!taken) continue;
    for (auto& fd : *taken) {
      auto wanted_cookie = socket_cookie(fd.get());
      if (wanted_cookie && owners.contains(*wanted_cookie)) found.emplace(*wanted_cookie, std::move(fd));
    }
  }
  return found;
}

Result<std::vector<ActivatedSocket>> sockets_from_systemd() {
  const char* listen_pid = std::getenv("LISTEN_PID");
  const char* listen_fds = std::getenv("LISTEN_FDS");
  if (listen_fds == nullptr)
    return fail(EINVAL, "no sockets were passed: LISTEN_FDS is not set (run steer register from "
                        "a systemd socket unit or systemd-socket-activate, or pass --fd N)");
  if (listen_pid == nullptr || std::atol(listen_pid) != ::getpid())
    return fail(EINVAL, "LISTEN_PID ({}) is not this process ({}): the sockets were meant for "
                        "another process; exec steer directly from the activator",
                listen_pid ? listen_pid : "unset", ::getpid());
  int count = std::atoi(listen_fds);
  if (count <= 0) return fail(EINVAL, "LISTEN_FDS is '{}': no sockets were passed", listen_fds);
  std::vector<std::string> names;
  if (const char* fdnames = std::getenv("LISTEN_FDNAMES")) {
    std::stringstream stream(fdnames);
    std::string name;
    while (std::getline(stream, name, ':')) names.push_back(name);
  }
  std::vector<ActivatedSocket> sockets;
  for (int i = 0; i < count; ++i) {
    std::string name = i < static_cast<int>(names.size()) && !names[i].empty() ? names[i] : "unknown";
    sockets.push_back({3 + i, name});
  }
  return sockets;
}

}  // namespace steer::core
