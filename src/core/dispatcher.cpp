#include "core/dispatcher.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "bpf/skeleton.h"
#include "bpf/test_run.h"
#include "core/maglev.h"
#include "dispatcher_explain.skel.h"

namespace steer::core {

namespace {

uint32_t family_index(int family) { return family == AF_INET6 ? STEER_FAMILY_V6 : STEER_FAMILY_V4; }
uint32_t protocol_index(Protocol protocol) {
  return protocol == Protocol::Udp ? STEER_PROTO_UDP : STEER_PROTO_TCP;
}
const char* family_name(int family) { return family == AF_INET6 ? "IPv6" : "IPv4"; }

uint32_t prefix_count_key(uint32_t set, int family, Protocol protocol, uint32_t length) {
  return ((set * STEER_FAMILIES + family_index(family)) * STEER_PROTOCOLS +
          protocol_index(protocol)) * 129 + length;
}

steer_prefix_mask& mask_of(steer_control& control, uint32_t set, int family, Protocol protocol) {
  return control.masks[set & 1][family_index(family)][protocol_index(protocol)];
}

void set_bit(__u64* words, uint32_t length, bool on) {
  uint64_t flag = 1ULL << (length % 64);
  if (on) words[length / 64] |= flag;
  else words[length / 64] &= ~flag;
}

steer_label_name label_key(const std::string& label) {
  steer_label_name key{};
  std::memcpy(key.name, label.data(), std::min(label.size(), sizeof(key.name) - 1));
  return key;
}

constexpr uint32_t kNoDestination = 0xffffffffu;

uint32_t socket_key(uint32_t destination, uint32_t slot) {
  return destination * STEER_POOL_SLOTS + slot;
}

Prefix prefix_of(const steer_binding_key& key) {
  Prefix prefix;
  prefix.family = key.family;
  prefix.length = key.prefix_len;
  std::memcpy(prefix.bytes.data(), key.addr, key.family == AF_INET ? 4 : 16);
  return prefix;
}

SocketAddress address_of(const steer_slot& slot) {
  sockaddr_storage storage{};
  if (slot.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(slot.port);
    std::memcpy(&sin->sin_addr, slot.addr, 4);
    return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), sizeof(*sin));
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(slot.port);
  std::memcpy(&sin6->sin6_addr, slot.addr, 16);
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), sizeof(*sin6));
}

// Ranges sorted so the first match is the most specific: narrowest first.
void sort_ranges(steer_range_binding& value) {
  std::sort(value.ranges, value.ranges + value.count,
            [](const steer_port_range& a, const steer_port_range& b) {
              uint32_t wa = a.last - a.first, wb = b.last - b.first;
              return wa != wb ? wa < wb : a.first < b.first;
            });
}

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

// Walks a binding hash bucket after bucket, a few thousand entries a syscall: `batch` is
// bpf_map_lookup_batch or bpf_map_lookup_and_delete_batch; `take` sees each entry.
using BatchCall = int (*)(int, void*, void*, void*, void*, __u32*, const bpf_map_batch_opts*);

template <class Value, class Take>
Result<void> walk_in_batches(const bpf::Map& map, BatchCall batch, Take&& take) {
  std::vector<steer_binding_key> keys(4096);
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

// Every entry of a binding hash (`steer bindings` at 1M bindings: no syscall per entry).
template <class Value>
Result<std::vector<std::pair<steer_binding_key, Value>>> read_hash(const bpf::Map& map) {
  std::vector<std::pair<steer_binding_key, Value>> entries;
  auto walked = walk_in_batches<Value>(map, bpf_map_lookup_batch,
                                       [&](const steer_binding_key& key, const Value& value) {
                                         entries.emplace_back(key, value);
                                       });
  if (!walked) return std::unexpected(walked.error());
  return entries;
}

// Empties a binding hash (deleting key by key from the start of the table again and again
// would be quadratic).
template <class Value>
Result<void> empty_hash(const bpf::Map& map) {
  return walk_in_batches<Value>(map, bpf_map_lookup_and_delete_batch,
                                [](const steer_binding_key&, const Value&) {});
}

}  // namespace

Owner Owner::of_process(pid_t pid) {
  Owner owner;
  owner.pid = pid;
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::getline(comm, owner.command);
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Uid:", 0) == 0) owner.uid = static_cast<uid_t>(std::stoul(line.substr(4)));
  return owner;
}

Result<Dispatcher> Dispatcher::open(const Target& target, LockMode mode) {
  auto state = State::open(target, mode);
  if (!state) return std::unexpected(state.error());
  return Dispatcher(std::move(*state));
}

Result<steer_control> Dispatcher::read_control() const {
  uint32_t zero = 0;
  steer_control control{};
  if (auto read = state_.control().lookup(&zero, &control); !read) return std::unexpected(read.error());
  return control;
}

// ---- labels and destinations --------------------------------------------------------------

Result<uint32_t> Dispatcher::label_id(const std::string& label, bool create) {
  if (auto valid = validate_label(label); !valid) return std::unexpected(valid.error());
  steer_label_name key = label_key(label);
  steer_label_id id{};
  if (state_.labels().lookup(&key, &id)) return id.id;
  if (!create) return fail(ENOENT, "no label '{}' (steer status lists them)", label);
  std::optional<uint32_t> free_id;
  for (uint32_t candidate = 0; candidate < STEER_MAX_LABELS; ++candidate) {
    steer_label_name name{};
    if (!state_.label_names().lookup(&candidate, &name)) continue;
    // A name without an index entry: a creation killed half-way. Finish it.
    if (std::memcmp(name.name, key.name, sizeof(key.name)) == 0) {
      free_id = candidate;
      break;
    }
    if (name.name[0] == '\0' && !free_id) free_id = candidate;
  }
  if (free_id) {
    uint32_t candidate = *free_id;
    // The name first, then the index: a reader never finds an id without its name.
    if (auto ok = state_.label_names().update(&candidate, &key, bpf::UpdateMode::Any); !ok)
      return std::unexpected(ok.error());
    steer_label_id value{candidate};
    if (auto ok = state_.labels().update(&key, &value, bpf::UpdateMode::NoExist); !ok)
      return std::unexpected(ok.error());
    return candidate;
  }
  return fail(E2BIG, "too many labels ({} is the limit): unload unused ones", STEER_MAX_LABELS);
}

Result<std::string> Dispatcher::label_name(uint32_t id) const {
  steer_label_name name{};
  if (auto read = state_.label_names().lookup(&id, &name); !read) return std::unexpected(read.error());
  return std::string(name.name);
}

Result<uint32_t> Dispatcher::destination_id(const std::string& label, int family,
                                            Protocol protocol, bool create) {
  auto label_id_result = label_id(label, create);
  if (!label_id_result) return std::unexpected(label_id_result.error());
  std::optional<uint32_t> free_id;
  for (uint32_t id = 0; id < STEER_MAX_DESTINATIONS; ++id) {
    steer_destination destination{};
    if (!state_.destinations().lookup(&id, &destination)) continue;
    if (destination.state != STEER_DESTINATION_USED) {
      if (!free_id) free_id = id;
      continue;
    }
    if (destination.label_id == *label_id_result && destination.family == family &&
        destination.protocol == static_cast<uint8_t>(protocol))
      return id;
  }
  if (!create)
    return fail(ENOENT, "label '{}' has no {} {} destination", label, to_string(protocol),
                family_name(family));
  if (!free_id)
    return fail(E2BIG, "all {} destinations are in use", STEER_MAX_DESTINATIONS);
  // An empty Maglev table first (no socket: connections are refused, not misrouted).
  steer_maglev_table table{};
  std::memset(table.slots, STEER_NO_SLOT, sizeof(table.slots));
  for (uint32_t n = 0; n < 2; ++n) {
    uint32_t key = *free_id * 2 + n;
    if (auto ok = state_.maglev().update(&key, &table, bpf::UpdateMode::Any); !ok)
      return std::unexpected(ok.error());
  }
  steer_destination destination{};
  destination.label_id = *label_id_result;
  destination.family = static_cast<uint8_t>(family);
  destination.protocol = static_cast<uint8_t>(protocol);
  destination.policy = STEER_POLICY_HASH;
  destination.state = STEER_DESTINATION_USED;
  if (auto ok = state_.destinations().update(&*free_id, &destination, bpf::UpdateMode::Any); !ok)
    return std::unexpected(ok.error());
  return *free_id;
}

Result<Destination> Dispatcher::destination(uint32_t id) const {
  steer_destination raw{};
  if (auto read = state_.destinations().lookup(&id, &raw); !read) return std::unexpected(read.error());
  if (raw.state != STEER_DESTINATION_USED) return fail(ENOENT, "destination {} is not in use", id);
  Destination destination;
  destination.id = id;
  auto label = label_name(raw.label_id);
  if (!label) return std::unexpected(label.error());
  destination.label = *label;
  destination.family = raw.family;
  destination.protocol = static_cast<Protocol>(raw.protocol);
  int cpus = libbpf_num_possible_cpus();
  std::vector<steer_destination_counters> per_cpu(cpus > 0 ? cpus : 1);
  if (state_.destination_counters().lookup(&id, per_cpu.data()))
    for (const auto& cpu : per_cpu)
      for (size_t i = 0; i < STEER_COUNTERS; ++i) destination.counters[i] += cpu.values[i];
  return destination;
}

Result<std::vector<Destination>> Dispatcher::destinations() const {
  std::vector<Destination> result;
  for (uint32_t id = 0; id < STEER_MAX_DESTINATIONS; ++id) {
    steer_destination raw{};
    if (!state_.destinations().lookup(&id, &raw) || raw.state != STEER_DESTINATION_USED) continue;
    auto destination = this->destination(id);
    if (!destination) return std::unexpected(destination.error());
    result.push_back(std::move(*destination));
  }
  return result;
}

// ---- bindings -------------------------------------------------------------------------------

Result<void> Dispatcher::set_prefix_count(uint32_t set, const Binding& binding, int delta) {
  uint32_t key = prefix_count_key(set, binding.prefix.family, binding.protocol, binding.prefix.length);
  steer_prefix_count count{};
  if (auto read = state_.prefix_counts().lookup(&key, &count); !read) return std::unexpected(read.error());
  uint32_t& field = binding.ports.is_single() ? count.ports : count.ranges;
  field = delta > 0 ? field + 1 : (field > 0 ? field - 1 : 0);
  if (auto ok = state_.prefix_counts().update(&key, &count, bpf::UpdateMode::Any); !ok)
    return std::unexpected(ok.error());
  // The mask bit follows the count: set after the entry exists, cleared after it is gone.
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  auto& mask = mask_of(*control, set, binding.prefix.family, binding.protocol);
  set_bit(binding.ports.is_single() ? mask.ports : mask.ranges, binding.prefix.length, field > 0);
  uint32_t zero = 0;
  return state_.control().update(&zero, &*control, bpf::UpdateMode::Any);
}

Result<void> Dispatcher::bind_in_set(uint32_t set, const Binding& binding, uint32_t destination,
                                     bool check_only) {
  if (binding.ports.is_single()) {
    auto key = binding_key(binding.protocol, binding.prefix, binding.ports.first);
    steer_port_binding existing{};
    if (state_.port_bindings(set).lookup(&key, &existing)) {
      if (existing.destination == destination) return {};  // already there: nothing to do
      auto other = this->destination(existing.destination);
      return fail(EEXIST, "{} {} {} is bound to label '{}' already: unbind it first",
                  to_string(binding.protocol), binding.prefix.to_string(), binding.ports.to_string(),
                  other ? other->label : "?");
    }
    if (check_only) return {};
    steer_port_binding value{destination, 0};
    if (auto ok = state_.port_bindings(set).update(&key, &value, bpf::UpdateMode::NoExist); !ok) {
      if (ok.error().code == E2BIG)
        return fail(E2BIG, "the binding table is full ({} entries)", state_.meta().binding_capacity);
      return ok;
    }
    return set_prefix_count(set, binding, +1);
  }
  auto key = binding_key(binding.protocol, binding.prefix, 0);
  steer_range_binding value{};
  bool existed = state_.range_bindings(set).lookup(&key, &value).has_value();
  for (uint32_t i = 0; i < value.count; ++i) {
    PortRange other{value.ranges[i].first, value.ranges[i].last};
    if (other == binding.ports) {
      if (value.ranges[i].destination == destination) return {};
      auto owner = this->destination(value.ranges[i].destination);
      return fail(EEXIST, "{} {} {} is bound to label '{}' already: unbind it first",
                  to_string(binding.protocol), binding.prefix.to_string(),
                  binding.ports.to_string(), owner ? owner->label : "?");
    }
    if (other.overlaps(binding.ports) && !other.contains(binding.ports) &&
        !binding.ports.contains(other))
      return fail(EINVAL, "ports {} overlap the bound range {} on {} {} without one containing "
                          "the other: split them so they nest or are disjoint",
                  binding.ports.to_string(), other.to_string(), to_string(binding.protocol),
                  binding.prefix.to_string());
  }
  if (value.count >= STEER_RANGES_PER_PREFIX)
    return fail(E2BIG, "{} {} has {} port ranges already, the most one prefix can have",
                to_string(binding.protocol), binding.prefix.to_string(), value.count);
  if (check_only) return {};
  value.ranges[value.count++] = {binding.ports.first, binding.ports.last, destination};
  sort_ranges(value);
  if (auto ok = state_.range_bindings(set).update(&key, &value, bpf::UpdateMode::Any); !ok) {
    if (ok.error().code == E2BIG && !existed)
      return fail(E2BIG, "the range binding table is full ({} entries)",
                  state_.meta().binding_capacity);
    return ok;
  }
  return set_prefix_count(set, binding, +1);
}

Result<void> Dispatcher::bind(const Binding& binding) {
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  uint32_t set = control->active_set & 1;
  // Refuse conflicts before creating anything: a failed bind leaves no new label behind.
  auto existing = destination_id(binding.label, binding.prefix.family, binding.protocol, false);
  if (!existing) {
    if (auto ok = bind_in_set(set, binding, kNoDestination, /*check_only=*/true); !ok) return ok;
  }
  auto destination = existing ? existing
                              : destination_id(binding.label, binding.prefix.family,
                                               binding.protocol, true);
  if (!destination) return std::unexpected(destination.error());
  return bind_in_set(set, binding, *destination, /*check_only=*/false);
}

Result<void> Dispatcher::unbind(const Binding& binding) {
  auto missing = [&] {
    return fail(ENOENT, "no binding '{}' (steer bindings lists them)", binding.to_string());
  };
  auto destination = destination_id(binding.label, binding.prefix.family, binding.protocol, false);
  if (!destination) return missing();
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  uint32_t set = control->active_set & 1;
  if (binding.ports.is_single()) {
    auto key = binding_key(binding.protocol, binding.prefix, binding.ports.first);
    steer_port_binding existing{};
    if (!state_.port_bindings(set).lookup(&key, &existing) || existing.destination != *destination)
      return missing();
    if (auto ok = state_.port_bindings(set).erase(&key); !ok) return ok;
    return set_prefix_count(set, binding, -1);
  }
  auto key = binding_key(binding.protocol, binding.prefix, 0);
  steer_range_binding value{};
  if (!state_.range_bindings(set).lookup(&key, &value)) return missing();
  auto* end = value.ranges + value.count;
  auto* found = std::find_if(value.ranges, end, [&](const steer_port_range& range) {
    return range.first == binding.ports.first && range.last == binding.ports.last &&
           range.destination == *destination;
  });
  if (found == end) return missing();
  std::copy(found + 1, end, found);
  value.count -= 1;
  auto written = value.count == 0 ? state_.range_bindings(set).erase(&key)
                                  : state_.range_bindings(set).update(&key, &value, bpf::UpdateMode::Any);
  if (!written) return written;
  return set_prefix_count(set, binding, -1);
}

Result<size_t> Dispatcher::binding_count() const {
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  uint32_t set = control->active_set & 1;
  size_t total = 0;
  for (uint32_t key = set * (STEER_PREFIX_COUNT_KEYS / 2); key < (set + 1) * (STEER_PREFIX_COUNT_KEYS / 2); ++key) {
    steer_prefix_count count{};
    if (state_.prefix_counts().lookup(&key, &count)) total += count.ports + count.ranges;
  }
  return total;
}

Result<std::vector<BoundBinding>> Dispatcher::bindings() const {
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  uint32_t set = control->active_set & 1;
  std::map<uint32_t, std::string> labels;
  auto label_of = [&](uint32_t destination) -> std::string {
    auto found = labels.find(destination);
    if (found != labels.end()) return found->second;
    auto resolved = this->destination(destination);
    return labels[destination] = resolved ? resolved->label : "?";
  };
  std::vector<BoundBinding> result;
  auto ports = read_hash<steer_port_binding>(state_.port_bindings(set));
  if (!ports) return std::unexpected(ports.error());
  for (const auto& [key, value] : *ports) {
    Binding binding{label_of(value.destination), static_cast<Protocol>(key.protocol),
                    prefix_of(key), PortRange{key.port, key.port}};
    result.push_back({std::move(binding), value.destination});
  }
  auto ranges = read_hash<steer_range_binding>(state_.range_bindings(set));
  if (!ranges) return std::unexpected(ranges.error());
  for (const auto& [key, value] : *ranges) {
    for (uint32_t i = 0; i < value.count && i < STEER_RANGES_PER_PREFIX; ++i) {
      const auto& range = value.ranges[i];
      Binding binding{label_of(range.destination), static_cast<Protocol>(key.protocol),
                      prefix_of(key), PortRange{range.first, range.last}};
      result.push_back({std::move(binding), range.destination});
    }
  }
  // Most specific first, as the dispatcher matches them.
  std::sort(result.begin(), result.end(), [](const BoundBinding& a, const BoundBinding& b) {
    const auto &x = a.binding, &y = b.binding;
    if (x.prefix.family != y.prefix.family) return x.prefix.family < y.prefix.family;
    if (x.prefix.length != y.prefix.length) return x.prefix.length > y.prefix.length;
    if (x.prefix.bytes != y.prefix.bytes) return x.prefix.bytes < y.prefix.bytes;
    if (x.protocol != y.protocol) return x.protocol < y.protocol;
    if (x.ports.width() != y.ports.width()) return x.ports.width() < y.ports.width();
    return x.ports.first < y.ports.first;
  });
  return result;
}

Result<void> Dispatcher::clear_set(uint32_t set) {
  if (auto ok = empty_hash<steer_port_binding>(state_.port_bindings(set)); !ok) return ok;
  if (auto ok = empty_hash<steer_range_binding>(state_.range_bindings(set)); !ok) return ok;
  steer_prefix_count zero_count{};
  for (uint32_t key = set * (STEER_PREFIX_COUNT_KEYS / 2); key < (set + 1) * (STEER_PREFIX_COUNT_KEYS / 2); ++key)
    if (auto ok = state_.prefix_counts().update(&key, &zero_count, bpf::UpdateMode::Any); !ok) return ok;
  return {};
}

Result<void> Dispatcher::replace_bindings(const std::vector<Binding>& bindings) {
  if (auto valid = validate_binding_set(bindings); !valid) return valid;
  auto control = read_control();
  if (!control) return std::unexpected(control.error());
  uint32_t active = control->active_set & 1, idle = active ^ 1;
  // The idle copy may hold leftovers of an interrupted load: start from empty.
  if (auto ok = clear_set(idle); !ok) return ok;

  std::map<std::tuple<std::string, int, Protocol>, uint32_t> destinations;
  std::vector<steer_binding_key> port_keys, range_keys;
  std::vector<steer_port_binding> port_values;
  std::map<std::vector<uint8_t>, steer_range_binding> ranges;  // by key bytes
  std::vector<steer_prefix_count> counts(STEER_PREFIX_COUNT_KEYS / 2);
  steer_prefix_mask masks[STEER_FAMILIES][STEER_PROTOCOLS] = {};
  port_keys.reserve(bindings.size());
  port_values.reserve(bindings.size());

  for (const auto& binding : bindings) {
    auto lookup_key = std::make_tuple(binding.label, binding.prefix.family, binding.protocol);
    auto found = destinations.find(lookup_key);
    if (found == destinations.end()) {
      auto id = destination_id(binding.label, binding.prefix.family, binding.protocol, true);
      if (!id) return std::unexpected(id.error());
      found = destinations.emplace(lookup_key, *id).first;
    }
    uint32_t local_count_key =
        prefix_count_key(0, binding.prefix.family, binding.protocol, binding.prefix.length);
    auto& mask = masks[family_index(binding.prefix.family)][protocol_index(binding.protocol)];
    if (binding.ports.is_single()) {
      port_keys.push_back(binding_key(binding.protocol, binding.prefix, binding.ports.first));
      port_values.push_back({found->second, 0});
      counts[local_count_key].ports += 1;
      set_bit(mask.ports, binding.prefix.length, true);
    } else {
      auto key = binding_key(binding.protocol, binding.prefix, 0);
      std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&key),
                                 reinterpret_cast<uint8_t*>(&key) + sizeof(key));
      auto& value = ranges[bytes];
      value.ranges[value.count++] = {binding.ports.first, binding.ports.last, found->second};
      counts[local_count_key].ranges += 1;
      set_bit(mask.ranges, binding.prefix.length, true);
    }
  }
  std::vector<steer_range_binding> range_values;
  for (auto& [bytes, value] : ranges) {
    sort_ranges(value);
    steer_binding_key key{};
    std::memcpy(&key, bytes.data(), sizeof(key));
    range_keys.push_back(key);
    range_values.push_back(value);
  }
  if (auto ok = write_batch(state_.port_bindings(idle), port_keys, port_values); !ok) return ok;
  if (auto ok = write_batch(state_.range_bindings(idle), range_keys, range_values); !ok) return ok;
  for (uint32_t i = 0; i < counts.size(); ++i) {
    if (counts[i].ports == 0 && counts[i].ranges == 0) continue;
    uint32_t key = idle * (STEER_PREFIX_COUNT_KEYS / 2) + i;
    if (auto ok = state_.prefix_counts().update(&key, &counts[i], bpf::UpdateMode::Any); !ok) return ok;
  }
  std::memcpy(control->masks[idle], masks, sizeof(masks));
  uint32_t zero = 0;
  if (auto ok = state_.control().update(&zero, &*control, bpf::UpdateMode::Any); !ok) return ok;
  // The commit point: one update flips the program to the new set.
  control->active_set = idle;
  if (auto ok = state_.control().update(&zero, &*control, bpf::UpdateMode::Any); !ok) return ok;
  // The old set is unused now: free its memory.
  std::memset(control->masks[active], 0, sizeof(control->masks[active]));
  if (auto ok = state_.control().update(&zero, &*control, bpf::UpdateMode::Any); !ok) return ok;
  return clear_set(active);
}

// ---- socket pools ---------------------------------------------------------------------------

Result<void> Dispatcher::rebuild_pool(uint32_t destination_id) {
  std::vector<MaglevBackend> backends;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
    uint32_t key = socket_key(destination_id, slot);
    steer_slot meta{};
    if (!state_.slots().lookup(&key, &meta)) continue;
    auto cookie = state_.sockets().cookie_at(key);
    if (!cookie || *cookie != meta.cookie) {
      // Closed by its owner: the kernel already took it out of the socket map.
      state_.slots().erase(&key);
      continue;
    }
    if (meta.state == STEER_SLOT_ACTIVE) backends.push_back({static_cast<uint8_t>(slot), meta.weight});
  }
  auto table_slots = build_maglev_table(backends, STEER_MAGLEV_SIZE, STEER_NO_SLOT);
  steer_destination destination{};
  if (auto read = state_.destinations().lookup(&destination_id, &destination); !read) return read;
  // Fill the idle table, then flip to it: the program never sees a half-written table.
  uint32_t idle = (destination.active_table & 1) ^ 1;
  steer_maglev_table table{};
  std::copy(table_slots.begin(), table_slots.end(), table.slots);
  uint32_t table_key = destination_id * 2 + idle;
  if (auto ok = state_.maglev().update(&table_key, &table, bpf::UpdateMode::Any); !ok) return ok;
  destination.active_table = idle;
  return state_.destinations().update(&destination_id, &destination, bpf::UpdateMode::Any);
}

Result<std::vector<PooledSocket>> Dispatcher::register_socket(const std::string& label,
                                                              int socket_fd, const Owner& owner) {
  if (auto valid = validate_label(label); !valid) return std::unexpected(valid.error());
  auto info = inspect_socket(socket_fd);
  if (!info) {
    if (info.error().code == EBADF) return fail(EBADF, "fd {} is not open", socket_fd);
    return std::unexpected(info.error());
  }
  std::string what = fmt::format("fd {}", socket_fd);
  if (info->family != AF_INET && info->family != AF_INET6)
    return fail(EAFNOSUPPORT, "{} is not an IPv4 or IPv6 socket (family {}): steer steers IP "
                              "sockets only", what, info->family == AF_UNIX ? "unix" : std::to_string(info->family));
  Protocol protocol;
  if (info->type == SOCK_STREAM && info->protocol == IPPROTO_TCP) protocol = Protocol::Tcp;
  else if (info->type == SOCK_DGRAM && info->protocol == IPPROTO_UDP) protocol = Protocol::Udp;
  else return fail(EPROTONOSUPPORT, "{} is neither a TCP nor a UDP socket", what);
  what = fmt::format("fd {} ({} {})", socket_fd, to_string(protocol), info->local.to_string());
  if (protocol == Protocol::Tcp && info->state != SocketState::Listening)
    return fail(EINVAL, "{} is {}, not listening: register listening TCP sockets (call listen())",
                what, to_string(info->state));
  if (protocol == Protocol::Udp && info->state == SocketState::Connected)
    return fail(EINVAL, "{} is connected: a connected UDP socket only receives from its peer; "
                        "register an unconnected one", what);
  if (protocol == Protocol::Udp && info->state != SocketState::Bound)
    return fail(EINVAL, "{} is not bound: bind it to an address and port first", what);
  if (info->netns_inode != state_.netns_inode())
    return fail(EXDEV, "{} lives in network namespace {}, but this steer acts on {}: pass "
                       "--netns /proc/<pid>/ns/net of the socket's owner", what,
                info->netns_inode, state_.netns_inode());

  std::vector<int> families{info->family};
  if (info->family == AF_INET6 && !info->v6only) families.push_back(AF_INET);  // dual-stack

  std::vector<PooledSocket> registered;
  auto roll_back = [&](Error error) -> Result<std::vector<PooledSocket>> {
    for (const auto& socket : registered) {
      uint32_t key = socket_key(socket.destination, socket.slot);
      state_.sockets().erase(key);
      state_.slots().erase(&key);
      rebuild_pool(socket.destination);
    }
    return std::unexpected(std::move(error));
  };
  for (int family : families) {
    auto destination = destination_id(label, family, protocol, true);
    if (!destination) return roll_back(destination.error());
    std::optional<uint32_t> free_slot, existing;
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS && !existing; ++slot) {
      uint32_t key = socket_key(*destination, slot);
      steer_slot meta{};
      bool has_meta = state_.slots().lookup(&key, &meta).has_value();
      auto cookie = state_.sockets().cookie_at(key);
      bool alive = has_meta && cookie && *cookie == meta.cookie;
      if (alive && meta.cookie == info->cookie) existing = slot;
      else if (!alive && !free_slot) free_slot = slot;
    }
    PooledSocket pooled{.destination = *destination, .cookie = info->cookie, .owner = owner,
                        .address = info->local};
    if (existing) {
      pooled.slot = *existing;
      continue;  // registered already: nothing to change
    }
    if (!free_slot)
      return roll_back(Error{E2BIG, fmt::format("the pool of '{}' ({} {}) is full: {} sockets; "
                                                "unregister some first", label, to_string(protocol),
                                                family_name(family), STEER_POOL_SLOTS)});
    uint32_t key = socket_key(*destination, *free_slot);
    if (auto ok = state_.sockets().insert(key, socket_fd, bpf::UpdateMode::Any); !ok)
      return roll_back(with_context(ok.error(), "put " + what + " into the socket map"));
    steer_slot meta{};
    meta.cookie = info->cookie;
    meta.pid = static_cast<uint32_t>(owner.pid);
    meta.uid = owner.uid;
    meta.state = STEER_SLOT_ACTIVE;
    meta.weight = 1;
    meta.family = static_cast<uint8_t>(info->local.family());
    meta.port = info->local.port();
    if (info->local.family() == AF_INET)
      std::memcpy(meta.addr, &reinterpret_cast<const sockaddr_in*>(info->local.data())->sin_addr, 4);
    else
      std::memcpy(meta.addr, &reinterpret_cast<const sockaddr_in6*>(info->local.data())->sin6_addr, 16);
    std::strncpy(meta.comm, owner.command.c_str(), sizeof(meta.comm) - 1);
    if (auto ok = state_.slots().update(&key, &meta, bpf::UpdateMode::Any); !ok) return roll_back(ok.error());
    steer_socket_counters zero_counters{};
    state_.socket_counters().update(&key, &zero_counters, bpf::UpdateMode::Any);
    pooled.slot = *free_slot;
    registered.push_back(pooled);
    if (auto ok = rebuild_pool(*destination); !ok) return roll_back(ok.error());
  }
  // Report every pool the socket is in, including ones it was in already.
  std::vector<PooledSocket> result;
  for (int family : families) {
    auto destination = destination_id(label, family, protocol, false);
    if (!destination) continue;
    auto pooled = sockets(*destination);
    if (!pooled) continue;
    for (auto& socket : *pooled)
      if (socket.cookie == info->cookie) result.push_back(socket);
  }
  return result;
}

Result<std::vector<PooledSocket>> Dispatcher::register_sockets(const std::string& label,
                                                               const std::vector<int>& socket_fds,
                                                               const Owner& owner) {
  // What the label's pools hold now: those stay whatever happens.
  std::set<uint64_t> before;
  if (auto all = destinations())
    for (const auto& destination : *all)
      if (destination.label == label)
        if (auto pooled = sockets(destination.id))
          for (const auto& socket : *pooled) before.insert(socket.cookie);
  std::vector<PooledSocket> registered;
  for (int fd : socket_fds) {
    auto pooled = register_socket(label, fd, owner);
    if (!pooled) {
      for (const auto& socket : registered)
        if (!before.count(socket.cookie)) unregister(label, {.cookie = socket.cookie, .pid = {}});
      return std::unexpected(pooled.error());
    }
    registered.insert(registered.end(), pooled->begin(), pooled->end());
  }
  return registered;
}

Result<size_t> Dispatcher::unregister(const std::string& label, const SocketFilter& filter) {
  if (auto valid = validate_label(label); !valid) return std::unexpected(valid.error());
  auto all = destinations();
  if (!all) return std::unexpected(all.error());
  size_t removed = 0;
  bool known = false;
  for (const auto& destination : *all) {
    if (destination.label != label) continue;
    known = true;
    auto pooled = sockets(destination.id);
    if (!pooled) return std::unexpected(pooled.error());
    bool changed = false;
    for (const auto& socket : *pooled) {
      if (filter.cookie && socket.cookie != *filter.cookie) continue;
      if (filter.pid && socket.owner.pid != *filter.pid) continue;
      uint32_t key = socket_key(destination.id, socket.slot);
      state_.sockets().erase(key);
      state_.slots().erase(&key);
      ++removed;
      changed = true;
    }
    if (changed)
      if (auto ok = rebuild_pool(destination.id); !ok) return std::unexpected(ok.error());
  }
  if (!known) return fail(ENOENT, "no label '{}' (steer status lists them)", label);
  if (removed == 0)
    return fail(ENOENT, "label '{}' has no registered socket{}", label,
                filter.cookie ? fmt::format(" with cookie {}", *filter.cookie)
                : filter.pid  ? fmt::format(" owned by pid {}", *filter.pid)
                              : "");
  return removed;
}

Result<std::vector<PooledSocket>> Dispatcher::sockets(uint32_t destination) const {
  std::vector<PooledSocket> result;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
    uint32_t key = socket_key(destination, slot);
    steer_slot meta{};
    if (!state_.slots().lookup(&key, &meta)) continue;
    auto cookie = state_.sockets().cookie_at(key);
    if (!cookie || *cookie != meta.cookie) continue;  // gone: the kernel removed it
    PooledSocket socket;
    socket.destination = destination;
    socket.slot = slot;
    socket.cookie = meta.cookie;
    socket.owner.pid = static_cast<pid_t>(meta.pid);
    socket.owner.uid = meta.uid;
    socket.owner.command = std::string(meta.comm, strnlen(meta.comm, sizeof(meta.comm)));
    socket.address = address_of(meta);
    socket.state = static_cast<steer_slot_state>(meta.state);
    steer_socket_counters counters{};
    if (state_.socket_counters().lookup(&key, &counters)) socket.selected = counters.selected;
    result.push_back(std::move(socket));
  }
  return result;
}

// ---- explain --------------------------------------------------------------------------------

Result<Explanation> Dispatcher::explain(Protocol protocol, const SocketAddress& source,
                                        const SocketAddress& destination_address) {
  if (source.family() != destination_address.family())
    return fail(EINVAL, "{} and {} are of different families: give two IPv4 or two IPv6 "
                        "addresses", source.to_string(), destination_address.to_string());
  auto skeleton = bpf::Skeleton<dispatcher_explain>::open("dispatcher_explain");
  if (!skeleton) return std::unexpected(skeleton.error());
  if (auto ok = state_.reuse_maps((*skeleton)->obj); !ok) return std::unexpected(ok.error());
  if (auto ok = skeleton->load(); !ok) return std::unexpected(ok.error());
  auto context = bpf::make_sk_lookup_context(static_cast<int>(protocol), source, destination_address);
  auto run = bpf::test_run_sk_lookup(bpf_program__fd((*skeleton)->progs.steer_dispatch), context);
  if (!run) return std::unexpected(run.error());
  auto record = bpf::load_single<steer_explain>((*skeleton)->maps.explain);
  if (!record) return std::unexpected(record.error());

  Explanation explanation;
  explanation.verdict = run->verdict;
  explanation.record = *record;
  explanation.steered = record->outcome != STEER_EXPLAIN_NO_BINDING;
  if (!explanation.steered) return explanation;
  auto matched = this->destination(record->destination);
  if (matched) {
    explanation.destination = *matched;
    Prefix prefix;
    prefix.family = destination_address.family();
    prefix.length = record->prefix_len;
    if (prefix.family == AF_INET)
      std::memcpy(prefix.bytes.data(), &reinterpret_cast<const sockaddr_in*>(destination_address.data())->sin_addr, 4);
    else
      std::memcpy(prefix.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(destination_address.data())->sin6_addr, 16);
    for (int bit = prefix.length; bit < prefix.max_length(); ++bit)
      prefix.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    PortRange ports = record->matched_range ? PortRange{record->range_first, record->range_last}
                                            : PortRange{destination_address.port(), destination_address.port()};
    explanation.binding = BoundBinding{Binding{matched->label, protocol, prefix, ports}, matched->id};
  }
  auto pooled = sockets(record->destination);
  if (pooled) explanation.pool_sockets = pooled->size();
  if (record->outcome == STEER_EXPLAIN_SELECTED || record->outcome == STEER_EXPLAIN_ASSIGN_FAILED) {
    if (pooled)
      for (const auto& socket : *pooled)
        if (socket.slot == record->slot) explanation.socket = socket;
    // The kernel's own word on what was selected (ctx_out's cookie), not only the program's.
    explanation.record.cookie = run->selected_cookie;
  }
  return explanation;
}

}  // namespace steer::core
