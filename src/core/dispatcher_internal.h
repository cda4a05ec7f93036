// Helpers shared by the files that implement Dispatcher (registry, bindings, pools, repair,
// status, explain). Not part of core's interface.
#pragma once

#include <bpf/bpf.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/dispatcher.h"
#include "dispatcher_explain.skel.h"
#include "reuseport.skel.h"
#include "bpf/skeleton.h"

namespace steer::core {

inline uint32_t family_index(int family) {
  return family == AF_INET6 ? STEER_FAMILY_V6 : STEER_FAMILY_V4;
}
inline uint32_t protocol_index(Protocol protocol) {
  return protocol == Protocol::Udp ? STEER_PROTO_UDP : STEER_PROTO_TCP;
}
inline const char* family_label(int family) { return family == AF_INET6 ? "IPv6" : "IPv4"; }

inline uint32_t prefix_count_key(uint32_t set, int family, Protocol protocol, uint32_t length) {
  return steer_prefix_count_key(set, family_index(family), protocol_index(protocol), length);
}

inline steer_prefix_mask& mask_of(steer_control& control, uint32_t set, int family,
                                  Protocol protocol) {
  return control.masks[set & 1][family_index(family)][protocol_index(protocol)];
}

inline void set_bit(__u64* words, uint32_t length, bool on) {
  uint64_t flag = 1ULL << (length % 64);
  if (on) words[length / 64] |= flag;
  else words[length / 64] &= ~flag;
}

inline bool bit_is_set(const __u64* words, uint32_t length) {
  return (words[length / 64] >> (length % 64)) & 1;
}

inline steer_label_name label_key(const std::string& label) {
  steer_label_name key{};
  std::memcpy(key.name, label.data(), std::min(label.size(), sizeof(key.name) - 1));
  return key;
}

inline std::string label_of(const steer_label_name& name) {
  return std::string(name.name, strnlen(name.name, sizeof(name.name)));
}

inline steer_destination_key destination_key(uint32_t label_id, int family, Protocol protocol) {
  steer_destination_key key{};
  key.label_id = label_id;
  key.family = static_cast<uint8_t>(family);
  key.protocol = static_cast<uint8_t>(protocol);
  return key;
}

// Ranges sorted so the first match is the most specific: narrowest first.
inline void sort_ranges(steer_range_binding& value) {
  std::sort(value.ranges, value.ranges + value.count,
            [](const steer_port_range& a, const steer_port_range& b) {
              uint32_t wa = a.last - a.first, wb = b.last - b.first;
              return wa != wb ? wa < wb : a.first < b.first;
            });
}

Prefix prefix_of(const steer_binding_key& key);
// An address as the maps hold it: four network-order words (IPv4 in [0]), family, port.
void address_words(const SocketAddress& address, __u32 words[4]);
SocketAddress address_from(int family, const __u32 words[4], uint16_t port);
inline SocketAddress address_of(const steer_slot& slot) {
  return address_from(slot.family, slot.addr, slot.port);
}

// The port masks and single-port counts a set of bindings implies: what `port_masks` and
// `port_counts` hold for the active set.
class PortLengths {
 public:
  void add(int family, Protocol protocol, uint32_t length, const PortRange& ports);
  struct Computed {
    std::vector<steer_prefix_mask> masks;  // by steer_port_mask_key, every key
    std::vector<steer_port_count_key> count_keys;
    std::vector<uint32_t> counts;
  };
  Computed compute() const;

 private:
  std::vector<uint64_t> singles_;  // packed (family index, protocol index, length, port)
  struct Range {
    uint32_t kind;  // (family index, protocol index, length)
    uint16_t first, last;
  };
  std::vector<Range> ranges_;
};

// Writes many entries with as few syscalls as the kernel allows.
template <class Key, class Value>
Result<void> write_batch(const bpf::Map& map, const std::vector<Key>& keys,
                         const std::vector<Value>& values) {
  constexpr size_t kChunk = 1 << 16;
  for (size_t start = 0; start < keys.size(); start += kChunk) {
    uint32_t count = static_cast<uint32_t>(std::min(kChunk, keys.size() - start));
    LIBBPF_OPTS(bpf_map_batch_opts, options);  // elem_flags: the kernel takes only BPF_F_LOCK
    int ret = bpf_map_update_batch(map.fd(), keys.data() + start, values.data() + start, &count,
                                   &options);
    if (ret < 0) {
      if (-ret == E2BIG || -ret == ENOMEM)
        return fail(E2BIG, "map {} is full ({} entries): load steer with a larger binding "
                           "capacity", map.name(), map.max_entries());
      return fail_errno(-ret, "write bindings into " + map.name());
    }
  }
  return {};
}

// Walks a hash bucket after bucket, a few thousand entries a syscall: `batch` is
// bpf_map_lookup_batch or bpf_map_lookup_and_delete_batch; `take` sees each entry.
using BatchCall = int (*)(int, void*, void*, void*, void*, __u32*, const bpf_map_batch_opts*);

template <class Key, class Value, class Take>
Result<void> walk_in_batches(const bpf::Map& map, BatchCall batch, Take&& take) {
  std::vector<Key> keys(4096);
  std::vector<Value> values(4096);
  uint64_t in_batch = 0, out_batch = 0;
  bool first = true;
  while (true) {
    __u32 count = static_cast<__u32>(keys.size());
    LIBBPF_OPTS(bpf_map_batch_opts, options);
    int ret = batch(map.fd(), first ? nullptr : &in_batch, &out_batch, keys.data(), values.data(),
                    &count, &options);
    if (ret < 0 && -ret != ENOENT) return fail_errno(-ret, "walk " + map.name());
    for (__u32 i = 0; i < count; ++i) take(keys[i], values[i]);
    if (ret < 0) return {};  // ENOENT: every bucket visited
    in_batch = out_batch;
    first = false;
  }
}

// Every entry of a hash map, or every element of an array map, in a few syscalls.
template <class Key, class Value>
Result<std::vector<std::pair<Key, Value>>> read_all(const bpf::Map& map) {
  std::vector<std::pair<Key, Value>> entries;
  STEER_TRY((walk_in_batches<Key, Value>(map, bpf_map_lookup_batch,
                                         [&](const Key& key, const Value& value) {
                                           entries.emplace_back(key, value);
                                         })));
  return entries;
}

// Empties a hash (deleting key by key from the start of the table again and again would be
// quadratic).
template <class Key, class Value>
Result<void> empty_hash(const bpf::Map& map) {
  return walk_in_batches<Key, Value>(map, bpf_map_lookup_and_delete_batch,
                                     [](const Key&, const Value&) {});
}

// A RAII mark in the journal: begun before a command's first write, committed after its
// last. Not committed (an error on the way): the change is repaired at once, under the lock
// this process still holds. Killed: the mark stays, and the next exclusive opener repairs.
// A change of pools passes a commit point once everything it needs is written aside: a
// repair before it undoes the pool changes, a repair after it completes them.
class Dispatcher::Change {
 public:
  static Result<Change> begin(Dispatcher& dispatcher, const char* verb);
  Result<void> pass_commit_point();
  Result<void> commit();
  ~Change();
  Change(Change&& other) noexcept
      : dispatcher_(std::exchange(other.dispatcher_, nullptr)) {}
  Change(const Change&) = delete;
  Change& operator=(const Change&) = delete;
  Change& operator=(Change&&) = delete;

 private:
  explicit Change(Dispatcher* dispatcher) : dispatcher_(dispatcher) {}
  Dispatcher* dispatcher_;
};

// The explain build of the dispatcher, loaded over the pinned maps: `steer explain`'s
// program, and the pool audit.
class ExplainProgram {
 public:
  static Result<std::unique_ptr<ExplainProgram>> load(const State& state);
  dispatcher_explain* operator->() const { return skeleton_.get(); }

 private:
  explicit ExplainProgram(bpf::Skeleton<dispatcher_explain> skeleton)
      : skeleton_(std::move(skeleton)) {}
  bpf::Skeleton<dispatcher_explain> skeleton_;
};

// The sk_reuseport program and the group iterators, loaded over the pinned maps.
class ReuseportProgram {
 public:
  enum class Parts { All, IteratorsOnly };
  static Result<std::unique_ptr<ReuseportProgram>> load(const State& state, Parts parts);
  reuseport* operator->() const { return skeleton_.get(); }

 private:
  explicit ReuseportProgram(bpf::Skeleton<reuseport> skeleton) : skeleton_(std::move(skeleton)) {}
  bpf::Skeleton<reuseport> skeleton_;
};

}  // namespace steer::core
