#include "base/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <utility>

namespace steer {

Result<std::string> find_cgroup2_mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mount_point, type;
    fields >> device >> mount_point >> type;
    if (type == "cgroup2") return mount_point;
  }
  return fail(ENOENT, "no cgroup2 filesystem is mounted: mount one with "
                      "`mount -t cgroup2 none /sys/fs/cgroup`");
}

Result<TemporaryCgroup> TemporaryCgroup::create(const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  auto root = STEER_TRY(find_cgroup2_mount());
  std::string path;
  while (true) {  // a name of its own, even with several in one process
    path = fmt::format("{}/{}-{}-{}", root, prefix, ::getpid(), counter++);
    if (::mkdir(path.c_str(), 0700) == 0) break;
    if (errno != EEXIST) return fail_errno("create cgroup " + path);
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    auto error = fail_errno("open cgroup " + path);
    ::rmdir(path.c_str());
    return error;
  }
  return TemporaryCgroup(std::move(path), std::move(fd));
}

TemporaryCgroup::TemporaryCgroup(TemporaryCgroup&& other) noexcept
    : path_(std::exchange(other.path_, {})), fd_(std::move(other.fd_)) {}

TemporaryCgroup::~TemporaryCgroup() {
  if (path_.empty()) return;
  fd_.reset();
  // A reaped process has left the cgroup, but the kernel may lag: retry briefly on EBUSY.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    if (::rmdir(path_.c_str()) == 0 || errno != EBUSY) break;
    ::usleep(1000);
  }
}

Result<void> TemporaryCgroup::add_process(pid_t pid) const {
  std::ofstream procs(path_ + "/cgroup.procs");
  procs << pid << std::flush;
  if (!procs) return fail(EIO, "cannot move process {} into cgroup {}", pid, path_);
  return {};
}

}  // namespace steer
