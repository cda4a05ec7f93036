// bpffs: checking for it, and private mounts for tests and probes.
#pragma once

#include <string>

#include "base/error.h"

namespace steer {

inline constexpr const char* kDefaultBpffs = "/sys/fs/bpf";

// True when `path` is the root of, or inside, a mounted bpf filesystem.
bool is_bpffs(const std::string& path);

// A bpffs mounted on a fresh temporary directory; unmounted and removed on destruction.
class BpffsMount {
 public:
  static Result<BpffsMount> create_temporary();
  BpffsMount(BpffsMount&& other) noexcept;
  BpffsMount& operator=(BpffsMount&&) = delete;
  ~BpffsMount();

  const std::string& path() const { return path_; }

 private:
  explicit BpffsMount(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace steer
