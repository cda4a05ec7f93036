// The dispatcher's state: BPF maps and the sk_lookup link, pinned in bpffs under
// <bpffs>/steer/<netns inode>/. Created in a temporary directory and renamed into place, so
// it exists whole or not at all; every writer holds an exclusive flock, readers a shared one.
#pragma once

#include <chrono>
#include <cstdint>
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
  // it is loaded already.
  static Result<State> load(const Target& target, const LoadOptions& options);
  // Opens existing state. ENOENT (with what to do) when nothing is loaded.
  static Result<State> open(const Target& target, LockMode mode);
  // Detaches and removes everything (sockets stay with their owners). ENOENT when not loaded.
  static Result<void> unload(const Target& target);

  // Replaces the programs through their link, keeping every map: no lookup goes unserved.
  Result<void> upgrade();
  // Points every map of a not-yet-loaded object at the pinned one of the same name (for
  // upgrade and for the explain build of the program).
  Result<void> reuse_maps(bpf_object* object) const;

  const std::string& path() const { return path_; }
  const NetNamespace& netns() const { return *netns_; }
  ino_t netns_inode() const { return netns_->inode(); }
  const steer_meta& meta() const { return meta_; }

  const bpf::Map& control() const { return control_; }
  const bpf::Map& port_bindings(uint32_t set) const { return port_bindings_[set & 1]; }
  const bpf::Map& range_bindings(uint32_t set) const { return range_bindings_[set & 1]; }
  const bpf::Map& destinations() const { return destinations_; }
  const bpf::Map& maglev() const { return maglev_; }
  const bpf::SockMap& sockets() const { return *sockets_; }
  const bpf::Map& slots() const { return slots_; }
  const bpf::Map& destination_counters() const { return destination_counters_; }
  const bpf::Map& socket_counters() const { return socket_counters_; }
  const bpf::Map& labels() const { return labels_; }
  const bpf::Map& label_names() const { return label_names_; }
  const bpf::Map& prefix_counts() const { return prefix_counts_; }
  // The attached dispatcher's program id, 0 if the link is gone.
  uint32_t program_id() const;

  // Holds the lock of the state directory; moving keeps it.
  State(State&&) = default;
  State& operator=(State&&) = default;

 private:
  State() = default;
  static Result<State> open_at(const std::string& path, NetNamespace netns, Fd lock);
  std::string path_;
  std::optional<NetNamespace> netns_;
  Fd lock_;
  steer_meta meta_{};
  bpf::Map control_, destinations_, maglev_, slots_, destination_counters_, socket_counters_,
      labels_, label_names_, prefix_counts_, meta_map_;
  bpf::Map port_bindings_[2], range_bindings_[2];
  std::optional<bpf::SockMap> sockets_;
  Fd link_;
};

// "<bpffs>/steer/<inode>" for a namespace inode.
std::string state_directory(const std::string& bpffs, ino_t netns_inode);

// The names of the pinned maps, in pin order (the files in the state directory).
extern const char* const kPinnedMaps[];
inline constexpr const char* kLinkPin = "link";

}  // namespace steer::core
