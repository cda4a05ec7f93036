// Opening the directories and pins steer trusts with its state, so that no other user can
// have planted, renamed or replaced them. Every check is made on the opened fd (or with
// AT_SYMLINK_NOFOLLOW relative to a checked directory fd): nothing is checked by path and
// then opened again.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace steer {

// Whose files steer trusts: root's, and the effective user's when it is not root.
bool is_trusted_owner(uid_t uid);

// Opens a directory that holds trusted directories (the bpffs root): it must be owned by a
// trusted user, and if group or others may write to it, it must have the sticky bit, so
// that they cannot rename or remove what root created in it. Symbolic links in `path` are
// followed: it names the administrator's choice (e.g. --bpffs).
Result<Fd> open_holding_directory(int parent_fd, const std::string& path);

// Opens a directory steer trusts, creating it with `mode` (exactly, whatever the umask)
// when `create` is set and it is absent. It must be a directory (not a symbolic link),
// owned by a trusted user, with no group-write and no permission for others. `path` is
// relative to `parent_fd` (or AT_FDCWD). ENOENT when absent and not created.
Result<Fd> open_trusted_directory(int parent_fd, const std::string& path, bool create,
                                  mode_t mode);

// Opens the BPF object pinned as `name` in the trusted directory `dir_fd`: `name` must be a
// pin (a regular file of bpffs, not a symbolic link), owned by a trusted user and writable
// by nobody else. Uses BPF_OBJ_GET with BPF_F_PATH_FD (Linux 6.5+), else the directory's
// /proc/self/fd path. `file_flags` may ask for BPF_F_RDONLY or BPF_F_WRONLY.
Result<Fd> open_pinned(int dir_fd, const std::string& name, uint32_t file_flags = 0);

}  // namespace steer
