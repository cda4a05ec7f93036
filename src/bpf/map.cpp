#include "bpf/map.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

namespace steer::bpf {

Result<Map> Map::create(bpf_map_type type, const std::string& name, uint32_t key_size,
                        uint32_t value_size, uint32_t max_entries, uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = flags);
  int fd = bpf_map_create(type, name.c_str(), key_size, value_size, max_entries, &options);
  if (fd < 0)
    return fail_errno(-fd, fmt::format("create map {} (key {} bytes, value {} bytes, {} entries)",
                                       name, key_size, value_size, max_entries));
  return describe_fd(Fd(fd), "map " + name);
}

Result<Map> Map::open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return fail_errno(-fd, "open pinned map " + path);
  return describe_fd(Fd(fd), path);
}

Result<Map> Map::adopt(Fd fd) { return describe_fd(std::move(fd), "map fd"); }

Result<Map> Map::from_fd(int borrowed_fd) {
  Fd fd(::fcntl(borrowed_fd, F_DUPFD_CLOEXEC, 3));
  if (!fd) return fail_errno("duplicate map fd");
  return adopt(std::move(fd));
}

Result<Map> Map::describe_fd(Fd fd, const std::string& what) {
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd.get(), &info, &length);
  if (ret < 0) return fail_errno(-ret, what + " is not a BPF map");
  return Map(std::move(fd), static_cast<bpf_map_type>(info.type), info.key_size,
             info.value_size, info.max_entries, info.id, info.name);
}

std::string Map::describe() const { return fmt::format("map {} (id {})", name_, id_); }

Result<void> Map::pin(const std::string& path) const {
  int ret = bpf_obj_pin(fd_.get(), path.c_str());
  if (ret < 0) return fail_errno(-ret, "pin " + describe() + " at " + path);
  return {};
}

Result<void> Map::update(const void* key, const void* value, UpdateMode mode) const {
  int ret = bpf_map_update_elem(fd_.get(), key, value, static_cast<uint64_t>(mode));
  if (ret < 0) return fail_errno(-ret, "update " + describe());
  return {};
}

Result<void> Map::lookup(const void* key, void* value) const {
  int ret = bpf_map_lookup_elem(fd_.get(), key, value);
  if (ret < 0) return fail_errno(-ret, "look up in " + describe());
  return {};
}

Result<void> Map::erase(const void* key) const {
  int ret = bpf_map_delete_elem(fd_.get(), key);
  if (ret < 0) return fail_errno(-ret, "delete from " + describe());
  return {};
}

Result<void> Map::next_key(const void* key, void* next) const {
  int ret = bpf_map_get_next_key(fd_.get(), key, next);
  if (ret < 0) return fail_errno(-ret, "iterate " + describe());
  return {};
}

}  // namespace steer::bpf
