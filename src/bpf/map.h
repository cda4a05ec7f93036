// RAII for a BPF map fd with pinning, and the typed socket maps built on it.
#pragma once

#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace steer::bpf {

enum class UpdateMode : uint64_t { Any = BPF_ANY, NoExist = BPF_NOEXIST, Exist = BPF_EXIST };

// Any BPF map, by fd. Keys and values are raw bytes here; the typed wrappers fix their types.
class Map {
 public:
  Map() = default;
  static Result<Map> create(bpf_map_type type, const std::string& name, uint32_t key_size,
                            uint32_t value_size, uint32_t max_entries, uint32_t flags = 0);
  static Result<Map> open_pinned(const std::string& path);
  // Takes an fd of an existing map (for example a skeleton map, duplicated).
  static Result<Map> adopt(Fd fd);
  static Result<Map> from_fd(int borrowed_fd);  // duplicates the fd

  Result<void> pin(const std::string& path) const;
  int fd() const { return fd_.get(); }
  bpf_map_type type() const { return type_; }
  uint32_t key_size() const { return key_size_; }
  uint32_t value_size() const { return value_size_; }
  uint32_t max_entries() const { return max_entries_; }
  uint32_t id() const { return id_; }
  const std::string& name() const { return name_; }

  Result<void> update(const void* key, const void* value, UpdateMode mode) const;
  Result<void> lookup(const void* key, void* value) const;
  Result<void> erase(const void* key) const;
  // The key after `key` (the first key when `key` is null); ENOENT at the end.
  Result<void> next_key(const void* key, void* next) const;

 private:
  Map(Fd fd, bpf_map_type type, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
      uint32_t id, std::string name)
      : fd_(std::move(fd)), type_(type), key_size_(key_size), value_size_(value_size),
        max_entries_(max_entries), id_(id), name_(std::move(name)) {}
  static Result<Map> describe_fd(Fd fd, const std::string& what);
  std::string describe() const;
  Fd fd_;
  bpf_map_type type_ = BPF_MAP_TYPE_UNSPEC;
  uint32_t key_size_ = 0, value_size_ = 0, max_entries_ = 0, id_ = 0;
  std::string name_;
};

// One occupied entry of a socket map: the key and the socket's cookie.
template <class Key>
struct SocketEntry {
  Key key;
  uint64_t cookie;
};

// A SOCKMAP (u32 index) or SOCKHASH (any fixed-size Key) holding sockets by fd on insert and
// giving back socket cookies on lookup (the kernel never hands out fds from a map).
template <class Key, bpf_map_type Type>
class SocketMap {
 public:
  static_assert(Type == BPF_MAP_TYPE_SOCKMAP || Type == BPF_MAP_TYPE_SOCKHASH);
  static constexpr bpf_map_type kType = Type;

  static Result<SocketMap> create(const std::string& name, uint32_t max_entries) {
    return SocketMap(
        STEER_TRY(Map::create(Type, name, sizeof(Key), sizeof(uint64_t), max_entries)));
  }
  // Wraps an existing map after checking its type and key size.
  static Result<SocketMap> wrap(Map map) {
    if (map.type() != Type || map.key_size() != sizeof(Key))
      return fail(EINVAL, "map {} is not a {} with {}-byte keys", map.name(),
                  Type == BPF_MAP_TYPE_SOCKMAP ? "SOCKMAP" : "SOCKHASH", sizeof(Key));
    return SocketMap(std::move(map));
  }
  static Result<SocketMap> open_pinned(const std::string& path) {
    return wrap(STEER_TRY(Map::open_pinned(path)));
  }

  // Puts the socket behind `socket_fd` at `key`; the map keeps its own reference.
  Result<void> insert(const Key& key, int socket_fd, UpdateMode mode = UpdateMode::Any) const {
    uint64_t value = static_cast<uint64_t>(static_cast<uint32_t>(socket_fd));
    return map_.update(&key, &value, mode);
  }
  // The cookie of the socket at `key`; ENOENT when the slot is empty.
  Result<uint64_t> cookie_at(const Key& key) const {
    uint64_t cookie = 0;
    STEER_TRY(map_.lookup(&key, &cookie));
    return cookie;
  }
  Result<void> erase(const Key& key) const { return map_.erase(&key); }
  // Every occupied entry (empty SOCKMAP slots are skipped).
  Result<std::vector<SocketEntry<Key>>> entries() const {
    std::vector<SocketEntry<Key>> result;
    Key key{}, next{};
    const Key* previous = nullptr;
    while (true) {
      auto stepped = map_.next_key(previous, &next);
      if (!stepped) {
        if (stepped.error().code == ENOENT) break;
        return std::unexpected(stepped.error());
      }
      key = next;
      previous = &key;
      auto cookie = cookie_at(key);
      if (cookie) result.push_back({key, *cookie});
      else if (cookie.error().code != ENOENT) return std::unexpected(cookie.error());
    }
    return result;
  }

  Result<void> pin(const std::string& path) const { return map_.pin(path); }
  int fd() const { return map_.fd(); }
  const Map& map() const { return map_; }
  uint32_t max_entries() const { return map_.max_entries(); }

 private:
  explicit SocketMap(Map map) : map_(std::move(map)) {}
  Map map_;
};

// The single entry of a one-entry ARRAY map (a program's config or its results). libbpf
// checks the sizes against the map, which catches a drift between the ABI and the object.
template <class T>
Result<void> store_single(const bpf_map* map, const T& value) {
  uint32_t zero = 0;
  int ret = bpf_map__update_elem(map, &zero, sizeof(zero), &value, sizeof(value), BPF_ANY);
  if (ret < 0) return fail_errno(-ret, std::string("write map ") + bpf_map__name(map));
  return {};
}
template <class T>
Result<T> load_single(const bpf_map* map) {
  uint32_t zero = 0;
  T value{};
  int ret = bpf_map__lookup_elem(map, &zero, sizeof(zero), &value, sizeof(value), 0);
  if (ret < 0) return fail_errno(-ret, std::string("read map ") + bpf_map__name(map));
  return value;
}

using SockMap = SocketMap<uint32_t, BPF_MAP_TYPE_SOCKMAP>;
template <class Key>
using SockHash = SocketMap<Key, BPF_MAP_TYPE_SOCKHASH>;

}  // namespace steer::bpf
