// cgroup v2: finding the unified hierarchy and temporary child cgroups (for sockops).
#pragma once

#include <string>
#include <sys/types.h>

#include "base/error.h"
#include "base/fd.h"

namespace steer {

// Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts).
Result<std::string> find_cgroup2_mount();

// A new, empty child cgroup; removed on destruction (after its processes have left).
class TemporaryCgroup {
 public:
  static Result<TemporaryCgroup> create(const std::string& prefix = "steer-probe");
  TemporaryCgroup(TemporaryCgroup&& other) noexcept;
  TemporaryCgroup& operator=(TemporaryCgroup&&) = delete;
  ~TemporaryCgroup();

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  Result<void> add_process(pid_t pid) const;

 private:
  TemporaryCgroup(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
};

}  // namespace steer
