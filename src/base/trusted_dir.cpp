#include "base/trusted_dir.h"

#include <limits.h>
#include <linux/bpf.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace steer {

namespace {

// BPF_OBJ_GET's attributes as of Linux 6.5 (the installed <linux/bpf.h> may predate
// path_fd): the pathname is resolved relative to path_fd when BPF_F_PATH_FD is set.
struct ObjGetAttributes {
  uint64_t pathname;
  uint32_t bpf_fd;
  uint32_t file_flags;
  int32_t path_fd;
};
constexpr uint32_t kBpfFPathFd = 1u << 14;  // BPF_F_PATH_FD

std::string user_name(uid_t uid) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(4096);
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr)
    return "no such user";
  return found->pw_name;
}

std::string owner(const struct stat& st) {
  return fmt::format("uid {} ({})", st.st_uid, user_name(st.st_uid));
}

// The full path of `path` relative to `dir_fd`, for messages.
std::string display_path(int dir_fd, const std::string& path) {
  if (dir_fd == AT_FDCWD || (!path.empty() && path.front() == '/')) return path;
  char target[PATH_MAX];
  ssize_t length =
      ::readlink(fmt::format("/proc/self/fd/{}", dir_fd).c_str(), target, sizeof(target) - 1);
  if (length <= 0) return path;
  std::string directory(target, static_cast<size_t>(length));
  return directory == "/" ? "/" + path : directory + "/" + path;
}

// What to do about a directory steer will not use.
std::string remove_advice(const std::string& path) {
  return fmt::format("remove it (rm -r {}) and run `steer load` again, or mount a private "
                     "bpffs (mount -t bpf -o mode=0700 bpf DIR) and pass --bpffs DIR", path);
}

std::string file_kind(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISREG(mode)) return "a file";
  return "not a file or directory";
}

}  // namespace

bool is_trusted_owner(uid_t uid) { return uid == 0 || uid == ::geteuid(); }

Result<Fd> open_holding_directory(int parent_fd, const std::string& path) {
  Fd fd(::openat(parent_fd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string shown = display_path(parent_fd, path);
  if (!fd) return fail_errno("open " + shown);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + shown);
  if (!is_trusted_owner(st.st_uid))
    return fail(EPERM, "{} is owned by {}, who could rename or replace steer's state in it: "
                       "mount a bpffs owned by root there (mount -t bpf -o mode=0700 bpf {}) "
                       "or pass --bpffs with one", shown, owner(st), shown);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
    return fail(EPERM, "{} has mode {:04o}: other users may write to it and, without the "
                       "sticky bit, rename or remove steer's state in it. Mount it private "
                       "(mount -t bpf -o mode=0700 bpf {}), or add the sticky bit (chmod +t "
                       "{}), or pass --bpffs with a private bpffs",
                shown, st.st_mode & 07777, shown, shown);
  return fd;
}

Result<Fd> open_trusted_directory(int parent_fd, const std::string& path, bool create,
                                  mode_t mode) {
  std::string shown = display_path(parent_fd, path);
  bool created = false;
  if (create) {
    if (::mkdirat(parent_fd, path.c_str(), mode) == 0) created = true;
    else if (errno != EEXIST) return fail_errno("create " + shown);
  }
  Fd fd(::openat(parent_fd, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    int error = errno;
    if (error == ENOENT) return fail(ENOENT, "{} does not exist", shown);
    struct stat st {};
    if ((error == ELOOP || error == ENOTDIR) &&
        ::fstatat(parent_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
      return fail(EPERM, "{} is {} owned by {}, not a directory steer created: {}", shown,
                  file_kind(st.st_mode), owner(st), remove_advice(shown));
    return fail_errno(error, "open " + shown);
  }
  // The exact mode, whatever the umask (only on a directory this call created).
  if (created && ::fchmod(fd.get(), mode) != 0) return fail_errno("chmod " + shown);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + shown);
  if (!is_trusted_owner(st.st_uid))
    return fail(EPERM, "{} is owned by {} (mode {:04o}), not by root: that user could rename "
                       "or replace steer's state. Steer will not use it: {}",
                shown, owner(st), st.st_mode & 07777, remove_advice(shown));
  if ((st.st_mode & (S_IWGRP | S_IRWXO)) != 0)
    return fail(EPERM, "{} has mode {:04o} (owner {}): other users may {} it. Steer will not "
                       "use it: {}",
                shown, st.st_mode & 07777, owner(st),
                (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ? "change" : "read", remove_advice(shown));
  return fd;
}

Result<Fd> open_pinned(int dir_fd, const std::string& name, uint32_t file_flags) {
  std::string shown = display_path(dir_fd, name);
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return fail(ENOENT, "{} does not exist", shown);
    return fail_errno("stat " + shown);
  }
  if (!S_ISREG(st.st_mode))
    return fail(EPERM, "{} is {}, not a pinned BPF object: {}", shown, file_kind(st.st_mode),
                remove_advice(shown));
  if (!is_trusted_owner(st.st_uid))
    return fail(EPERM, "{} is owned by {}, not by root: {}", shown, owner(st),
                remove_advice(shown));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return fail(EPERM, "{} has mode {:04o}: other users may change it. {}", shown,
                st.st_mode & 07777, remove_advice(shown));

  // The directory is trusted, so nobody else can swap the pin between the check and here.
  ObjGetAttributes attributes;
  std::memset(&attributes, 0, sizeof(attributes));
  attributes.pathname = reinterpret_cast<uint64_t>(name.c_str());
  attributes.file_flags = file_flags | kBpfFPathFd;
  attributes.path_fd = dir_fd;
  long fd = ::syscall(__NR_bpf, BPF_OBJ_GET, &attributes, sizeof(attributes));
  if (fd < 0 && errno == EINVAL) {
    // Before Linux 6.5: no path_fd. The directory's fd path resolves to the same directory.
    std::string through =
        dir_fd == AT_FDCWD ? name : fmt::format("/proc/self/fd/{}/{}", dir_fd, name);
    std::memset(&attributes, 0, sizeof(attributes));
    attributes.pathname = reinterpret_cast<uint64_t>(through.c_str());
    attributes.file_flags = file_flags;
    fd = ::syscall(__NR_bpf, BPF_OBJ_GET, &attributes, sizeof(attributes));
  }
  if (fd < 0) return fail_errno("open the BPF object pinned at " + shown);
  return Fd(static_cast<int>(fd));
}

}  // namespace steer
