#include "base/bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <utility>

namespace steer {

bool is_bpffs(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) return false;
  return st.f_type == BPF_FS_MAGIC;
}

Result<BpffsMount> BpffsMount::create_temporary() {
  std::string dir = "/tmp/steer-bpffs.XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return fail_errno("create a directory for bpffs");
  if (::mount("bpf", dir.c_str(), "bpf", 0, "mode=0700") != 0) {
    auto error = fail_errno("mount bpffs on " + dir + " (needs CAP_SYS_ADMIN)");
    ::rmdir(dir.c_str());
    return error;
  }
  return BpffsMount(std::move(dir));
}

BpffsMount::BpffsMount(BpffsMount&& other) noexcept : path_(std::exchange(other.path_, {})) {}

BpffsMount::~BpffsMount() {
  if (path_.empty()) return;
  ::umount2(path_.c_str(), MNT_DETACH);
  ::rmdir(path_.c_str());
}

}  // namespace steer
