// The dispatcher's state: BPF maps and the sk_lookup link, pinned in bpffs under
// <bpffs>/steer/<netns inode>/. Created in a temporary directory and renamed into place, so
// it exists whole or not at all; every writer holds an exclusive flock, readers a shared one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string_view>
#include <vector>
#include <optional>
#include <string>

#include "abi/steer_abi.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/flock.h"
#include "base/netns.h"
#include "bpf/link.h"
#include "bpf/map.h"

namespace steer::core {

// Which network namespace steer acts on, and where its state is pinned.
struct Target {
  std::string netns_path;  // empty: the caller's own namespace
  std::string bpffs = "/sys/fs/bpf";
  // How long to wait for another steer's lock on <bpffs>/steer before giving up (0: try
  // once), and who hears, after a second, that we are waiting (nobody when empty).
  std::chrono::milliseconds lock_timeout{30000};
  LockWaitReport on_lock_wait;
};

struct LoadOptions {
  // Entries per binding hash (four of them: single ports and ranges, two copies each). Each
  // hash reserves 16 bytes a bucket up front (1M: 16 MiB); entries take memory as they come.
  uint32_t binding_capacity = 1u << 20;
};

enum class LockMode { Shared, Exclusive };

class State {
 public:
  // Creates the state for the target's namespace and attaches the dispatcher. EEXIST when
  // it is loaded and attached already; state left detached by a killed load or unload is
  // attached again (the command completes what the killed one started).
  static Result<State> load(const Target& target, const LoadOptions& options);
  // Opens existing state of this release's schema. ENOENT (with what to do) when nothing is
  // loaded; EPROTO naming the map when a pinned map does not match this build's.
  static Result<State> open(const Target& target, LockMode mode);
  // Opens state of this or an older schema, exclusively, for `steer upgrade`.
  static Result<State> open_for_upgrade(const Target& target);
  // Detaches the dispatcher, then removes everything (sockets stay with their owners).
  // ENOENT when not loaded.
  static Result<void> unload(const Target& target);

  // Upgrade, in steps a kill may interrupt anywhere (the next `steer upgrade` redoes them):
  // create and pin the maps this release adds; (the caller migrates); swap the program
  // through its link, every map kept; record the new schema.
  Result<void> add_missing_maps();
  Result<void> swap_program();
  Result<void> record_schema();
  uint32_t schema() const { return meta_.schema_version; }

  // Points every map of a not-yet-loaded object at the pinned one of the same name (for
  // upgrade and for the explain build of the program).
  Result<void> reuse_maps(bpf_object* object) const;

  const std::string& path() const { return path_; }
  const NetNamespace& netns() const { return *netns_; }
  ino_t netns_inode() const { return netns_->inode(); }
  const steer_meta& meta() const { return meta_; }

  const bpf::Map& map(std::string_view name) const;
  const bpf::Map& control() const { return map("control"); }
  const bpf::Map& port_bindings(uint32_t set) const {
    return map(set & 1 ? "port_bindings_1" : "port_bindings_0");
  }
  const bpf::Map& range_bindings(uint32_t set) const {
    return map(set & 1 ? "range_bindings_1" : "range_bindings_0");
  }
  const bpf::Map& destinations() const { return map("destinations"); }
  const bpf::Map& destination_index() const { return map("destination_index"); }
  const bpf::Map& maglev() const { return map("maglev"); }
  const bpf::Map& pools() const { return map("pools"); }
  const bpf::Map& pool_cursors() const { return map("pool_cursors"); }
  const bpf::SockMap& sockets() const { return *sockets_; }
  const bpf::Map& slots() const { return map("slots"); }
  const bpf::Map& destination_counters() const { return map("destination_counters"); }
  const bpf::Map& socket_counters() const { return map("socket_counters"); }
  const bpf::Map& labels() const { return map("labels"); }
  const bpf::Map& label_names() const { return map("label_names"); }
  const bpf::Map& prefix_counts() const { return map("prefix_counts"); }
  const bpf::Map& port_masks() const { return map("port_masks"); }
  const bpf::Map& port_counts() const { return map("port_counts"); }
  const bpf::Map& journal() const { return map("journal"); }
  const bpf::Map& reuseport_groups() const { return map("reuseport_groups"); }
  const bpf::Map& listener_tags() const { return map("listener_tags"); }
  const bpf::Map& socket_connections() const { return map("socket_connections"); }
  const bpf::Map& connections() const { return map("connections"); }

  // Whether the dispatcher is attached to the namespace (a pinned, live link), and its
  // program id (0 when not attached).
  bool attached() const { return program_id() != 0; }
  uint32_t program_id() const;

  // Holds the lock of the state directory; moving keeps it.
  State(State&&) = default;
  State& operator=(State&&) = default;

 private:
  State() = default;
  enum class Opening { CurrentSchema, ForUpgrade };
  static Result<State> open_existing(const Target& target, LockMode mode, Opening opening);
  static Result<State> open_at(const std::string& path, NetNamespace netns, Fd lock,
                               Opening opening);
  std::string path_;
  std::optional<NetNamespace> netns_;
  Fd lock_;
  steer_meta meta_{};
  std::map<std::string, bpf::Map, std::less<>> maps_;
  std::optional<bpf::SockMap> sockets_;
  Fd link_;
};

// "<bpffs>/steer/<inode>" for a namespace inode.
std::string state_directory(const std::string& bpffs, ino_t netns_inode);

inline constexpr const char* kLinkPin = "link";
// The sockops link of `steer conns track`, when connections are counted.
inline constexpr const char* kConnsLinkPin = "conns_link";

}  // namespace steer::core
