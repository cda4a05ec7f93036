// Bindings: two sets of hashes (single ports; ranges and all-ports by prefix), the active one
// named by `control.active_set`; per (family, protocol, port) a mask of the prefix lengths
// bound there, which the program reads first and walks; and per set a mask of the lengths in
// use (for counting). The hashes are the source of truth; masks, counts and the destinations'
// binding counts are derived from them (repair rebuilds them).
//
// Order of writes, so that what `bindings` lists is what the program matches after a kill at
// any syscall: a length's mask bit is set before an entry of that length is inserted, and
// cleared only after its last entry is gone; counts that guard freeing are raised before and
// lowered after.
#include <map>
#include <tuple>

#include "bpf/sync.h"
#include "core/dispatcher_internal.h"

namespace steer::core {

Result<steer_control> Dispatcher::read_control() const {
  uint32_t zero = 0;
  steer_control control{};
  STEER_TRY(state_.control().lookup(&zero, &control));
  return control;
}

Result<void> Dispatcher::set_prefix_count(uint32_t set, const Binding& binding, int delta) {
  uint32_t key = prefix_count_key(set, binding.prefix.family, binding.protocol, binding.prefix.length);
  steer_prefix_count count{};
  STEER_TRY(state_.prefix_counts().lookup(&key, &count));
  uint32_t& field = binding.ports.is_single() ? count.ports : count.ranges;
  field = delta > 0 ? field + 1 : (field > 0 ? field - 1 : 0);
  STEER_TRY(state_.prefix_counts().update(&key, &count, bpf::UpdateMode::Any));
  auto control = STEER_TRY(read_control());
  auto& mask = mask_of(control, set, binding.prefix.family, binding.protocol);
  __u64* words = binding.ports.is_single() ? mask.ports : mask.ranges;
  if (bit_is_set(words, binding.prefix.length) == (field > 0)) return {};
  set_bit(words, binding.prefix.length, field > 0);
  uint32_t zero = 0;
  return state_.control().update(&zero, &control, bpf::UpdateMode::Any);
}

// ---- per-port masks --------------------------------------------------------------------------

namespace {

uint32_t length_kind(uint32_t family_index, uint32_t protocol_index, uint32_t length) {
  return ((family_index * STEER_PROTOCOLS + protocol_index) << 8) | length;
}

steer_port_count_key port_count_key(const Binding& binding) {
  steer_port_count_key key{};
  key.family_index = static_cast<uint8_t>(family_index(binding.prefix.family));
  key.protocol_index = static_cast<uint8_t>(protocol_index(binding.protocol));
  key.prefix_len = static_cast<uint8_t>(binding.prefix.length);
  key.port = binding.ports.first;
  return key;
}

uint32_t port_mask_key(int family, Protocol protocol, uint16_t port) {
  return steer_port_mask_key(family_index(family), protocol_index(protocol), port);
}

}  // namespace

void PortLengths::add(int family, Protocol protocol, uint32_t length, const PortRange& ports) {
  uint32_t kind = length_kind(family_index(family), protocol_index(protocol), length);
  if (ports.is_single()) singles_.push_back((uint64_t{kind} << 16) | ports.first);
  else ranges_.push_back({kind, ports.first, ports.last});
}

PortLengths::Computed PortLengths::compute() const {
  Computed out;
  out.masks.assign(STEER_PORT_MASK_KEYS, steer_prefix_mask{});
  auto mask_at = [&](uint32_t kind, uint32_t port) -> steer_prefix_mask& {
    return out.masks[steer_port_mask_key(kind >> 9, (kind >> 8) & 1, port)];
  };
  // Single ports: counted by (kind, port), sorted so equal keys are neighbours.
  std::vector<uint64_t> singles = singles_;
  std::sort(singles.begin(), singles.end());
  for (size_t i = 0; i < singles.size();) {
    size_t j = i;
    while (j < singles.size() && singles[j] == singles[i]) ++j;
    uint32_t kind = static_cast<uint32_t>(singles[i] >> 16);
    uint16_t port = static_cast<uint16_t>(singles[i] & 0xffff);
    set_bit(mask_at(kind, port).ports, kind & 0xff, true);
    steer_port_count_key key{};
    key.family_index = static_cast<uint8_t>(kind >> 9);
    key.protocol_index = static_cast<uint8_t>((kind >> 8) & 1);
    key.prefix_len = static_cast<uint8_t>(kind & 0xff);
    key.port = port;
    out.count_keys.push_back(key);
    out.counts.push_back(static_cast<uint32_t>(j - i));
    i = j;
  }
  // Ranges: per kind, a sweep over the ports (a range's start +1, past its end -1), so a
  // million all-ports bindings cost no more than one per kind.
  std::vector<Range> ranges = ranges_;
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.kind < b.kind; });
  std::vector<int32_t> starts(STEER_PORTS + 1);
  for (size_t i = 0; i < ranges.size();) {
    std::fill(starts.begin(), starts.end(), 0);
    size_t j = i;
    for (; j < ranges.size() && ranges[j].kind == ranges[i].kind; ++j) {
      starts[ranges[j].first] += 1;
      starts[size_t{ranges[j].last} + 1] -= 1;
    }
    int32_t covering = 0;
    for (uint32_t port = 0; port < STEER_PORTS; ++port) {
      covering += starts[port];
      if (covering > 0) set_bit(mask_at(ranges[i].kind, port).ranges, ranges[i].kind & 0xff, true);
    }
    i = j;
  }
  return out;
}

Result<std::vector<steer_prefix_mask>> Dispatcher::read_port_masks() const {
  std::vector<steer_prefix_mask> masks(STEER_PORT_MASK_KEYS);
  STEER_TRY((walk_in_batches<uint32_t, steer_prefix_mask>(
      state_.port_masks(), bpf_map_lookup_batch,
      [&](uint32_t key, const steer_prefix_mask& mask) {
        if (key < masks.size()) masks[key] = mask;
      })));
  return masks;
}

Result<void> Dispatcher::write_port_masks(const std::vector<steer_prefix_mask>& wanted,
                                          const std::vector<steer_prefix_mask>& current) {
  std::vector<uint32_t> keys;
  std::vector<steer_prefix_mask> values;
  for (uint32_t key = 0; key < wanted.size() && key < current.size(); ++key) {
    if (std::memcmp(&wanted[key], &current[key], sizeof(steer_prefix_mask)) == 0) continue;
    keys.push_back(key);
    values.push_back(wanted[key]);
  }
  return write_batch(state_.port_masks(), keys, values);
}

Result<void> Dispatcher::write_port_counts(const std::vector<steer_port_count_key>& keys,
                                           const std::vector<uint32_t>& counts) {
  STEER_TRY((empty_hash<steer_port_count_key, uint32_t>(state_.port_counts())));
  return write_batch(state_.port_counts(), keys, counts);
}

Result<void> Dispatcher::count_port_binding(const Binding& binding, int delta) {
  auto key = port_count_key(binding);
  uint32_t count = 0;
  bool counted = state_.port_counts().lookup(&key, &count).has_value();
  uint32_t now = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
  if (now > 0) STEER_TRY(state_.port_counts().update(&key, &now, bpf::UpdateMode::Any));
  else if (counted) STEER_TRY(state_.port_counts().erase(&key));
  uint32_t mask_key = port_mask_key(binding.prefix.family, binding.protocol, binding.ports.first);
  steer_prefix_mask mask{};
  STEER_TRY(state_.port_masks().lookup(&mask_key, &mask));
  if (bit_is_set(mask.ports, binding.prefix.length) == (now > 0)) return {};
  set_bit(mask.ports, binding.prefix.length, now > 0);
  return state_.port_masks().update(&mask_key, &mask, bpf::UpdateMode::Any);
}

Result<void> Dispatcher::mark_range(const Binding& binding) {
  auto current = STEER_TRY(read_port_masks());
  auto wanted = current;
  for (uint32_t port = binding.ports.first; port <= binding.ports.last; ++port)
    set_bit(wanted[port_mask_key(binding.prefix.family, binding.protocol, static_cast<uint16_t>(port))].ranges,
            binding.prefix.length, true);
  return write_port_masks(wanted, current);
}

Result<void> Dispatcher::unmark_range(uint32_t set, const Binding& binding) {
  // Which of the range's ports another range of the same length still covers.
  PortLengths others;
  STEER_TRY((walk_in_batches<steer_binding_key, steer_range_binding>(
      state_.range_bindings(set), bpf_map_lookup_batch,
      [&](const steer_binding_key& key, const steer_range_binding& value) {
        if (key.family != binding.prefix.family || key.protocol != static_cast<uint8_t>(binding.protocol) ||
            key.prefix_len != binding.prefix.length)
          return;
        for (uint32_t i = 0; i < value.count && i < STEER_RANGES_PER_PREFIX; ++i)
          others.add(key.family, binding.protocol, key.prefix_len,
                     PortRange{value.ranges[i].first, value.ranges[i].last});
      })));
  auto covered = others.compute();
  auto current = STEER_TRY(read_port_masks());
  auto wanted = current;
  for (uint32_t port = binding.ports.first; port <= binding.ports.last; ++port) {
    uint32_t key = port_mask_key(binding.prefix.family, binding.protocol, static_cast<uint16_t>(port));
    set_bit(wanted[key].ranges, binding.prefix.length,
            bit_is_set(covered.masks[key].ranges, binding.prefix.length));
  }
  return write_port_masks(wanted, current);
}

// ---- bind and unbind ---------------------------------------------------------------------------

Result<void> Dispatcher::check_bindable(uint32_t set, const Binding& binding, uint32_t destination,
                                        bool* already_bound) const {
  *already_bound = false;
  auto label_of_destination = [&](uint32_t id) {
    auto other = this->destination(id);
    return other ? other->label : std::string("?");
  };
  if (binding.ports.is_single()) {
    auto key = binding_key(binding.protocol, binding.prefix, binding.ports.first);
    steer_port_binding existing{};
    if (!state_.port_bindings(set).lookup(&key, &existing)) return {};
    if (existing.destination == destination) {
      *already_bound = true;
      return {};
    }
    return fail(EEXIST, "{} {} {} is bound to label '{}' already: unbind it first",
                to_string(binding.protocol), binding.prefix.to_string(), binding.ports.to_string(),
                label_of_destination(existing.destination));
  }
  auto key = binding_key(binding.protocol, binding.prefix, 0);
  steer_range_binding value{};
  if (!state_.range_bindings(set).lookup(&key, &value)) return {};
  for (uint32_t i = 0; i < value.count && i < STEER_RANGES_PER_PREFIX; ++i) {
    PortRange other{value.ranges[i].first, value.ranges[i].last};
    if (other == binding.ports) {
      if (value.ranges[i].destination == destination) {
        *already_bound = true;
        return {};
      }
      return fail(EEXIST, "{} {} {} is bound to label '{}' already: unbind it first",
                  to_string(binding.protocol), binding.prefix.to_string(),
                  binding.ports.to_string(), label_of_destination(value.ranges[i].destination));
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
  return {};
}

Result<void> Dispatcher::bind(const Binding& binding) {
  STEER_TRY(validate_label(binding.label));
  auto control = STEER_TRY(read_control());
  uint32_t set = control.active_set & 1;
  // Refuse conflicts before writing anything: a failed bind leaves no new label behind.
  auto existing = STEER_TRY(find_destination(binding.label, binding.prefix.family, binding.protocol));
  bool already_bound = false;
  constexpr uint32_t kNoDestination = 0xffffffffu;
  STEER_TRY(check_bindable(set, binding, existing.value_or(kNoDestination), &already_bound));

  auto change = STEER_TRY(Change::begin(*this, "bind"));
  if (!already_bound) {
    uint32_t destination = STEER_TRY(acquire_destination(binding.label, binding.prefix.family,
                                                         binding.protocol));
    STEER_TRY(count_bindings(destination, +1));
    STEER_TRY(set_prefix_count(set, binding, +1));  // the mask bits, before the entry
    if (binding.ports.is_single()) STEER_TRY(count_port_binding(binding, +1));
    else STEER_TRY(mark_range(binding));
    if (binding.ports.is_single()) {
      auto key = binding_key(binding.protocol, binding.prefix, binding.ports.first);
      steer_port_binding value{destination, 0};
      if (auto ok = state_.port_bindings(set).update(&key, &value, bpf::UpdateMode::NoExist); !ok) {
        if (ok.error().code == E2BIG)
          return fail(E2BIG, "the binding table is full ({} entries)", state_.meta().binding_capacity);
        return ok;
      }
    } else {
      auto key = binding_key(binding.protocol, binding.prefix, 0);
      steer_range_binding value{};
      bool existed = state_.range_bindings(set).lookup(&key, &value).has_value();
      value.ranges[value.count++] = {binding.ports.first, binding.ports.last, destination};
      sort_ranges(value);
      if (auto ok = state_.range_bindings(set).update(&key, &value, bpf::UpdateMode::Any); !ok) {
        if (ok.error().code == E2BIG && !existed)
          return fail(E2BIG, "the range binding table is full ({} entries)",
                      state_.meta().binding_capacity);
        return ok;
      }
    }
  }
  return change.commit();
}

Result<void> Dispatcher::unbind(const Binding& binding) {
  // No validation: a label stored by an older steer under older rules can still be removed.
  auto missing = [&] {
    return fail(ENOENT, "no binding '{}' (steer bindings lists them)", binding.to_string());
  };
  auto destination = STEER_TRY(find_destination(binding.label, binding.prefix.family, binding.protocol));
  if (!destination) return missing();
  auto control = STEER_TRY(read_control());
  uint32_t set = control.active_set & 1;
  if (binding.ports.is_single()) {
    auto key = binding_key(binding.protocol, binding.prefix, binding.ports.first);
    steer_port_binding existing{};
    if (!state_.port_bindings(set).lookup(&key, &existing) || existing.destination != *destination)
      return missing();
    auto change = STEER_TRY(Change::begin(*this, "unbind"));
    STEER_TRY(state_.port_bindings(set).erase(&key));
    STEER_TRY(set_prefix_count(set, binding, -1));  // the mask bits, after the entry
    STEER_TRY(count_port_binding(binding, -1));
    STEER_TRY(count_bindings(*destination, -1));
    STEER_TRY(release_if_unused(*destination));
    return change.commit();
  }
  auto key = binding_key(binding.protocol, binding.prefix, 0);
  steer_range_binding value{};
  if (!state_.range_bindings(set).lookup(&key, &value)) return missing();
  auto* end = value.ranges + std::min<uint32_t>(value.count, STEER_RANGES_PER_PREFIX);
  auto* found = std::find_if(value.ranges, end, [&](const steer_port_range& range) {
    return range.first == binding.ports.first && range.last == binding.ports.last &&
           range.destination == *destination;
  });
  if (found == end) return missing();
  auto change = STEER_TRY(Change::begin(*this, "unbind"));
  std::copy(found + 1, end, found);
  value.count -= 1;
  if (value.count == 0) STEER_TRY(state_.range_bindings(set).erase(&key));
  else STEER_TRY(state_.range_bindings(set).update(&key, &value, bpf::UpdateMode::Any));
  STEER_TRY(set_prefix_count(set, binding, -1));
  STEER_TRY(unmark_range(set, binding));
  STEER_TRY(count_bindings(*destination, -1));
  STEER_TRY(release_if_unused(*destination));
  return change.commit();
}

Result<size_t> Dispatcher::binding_count() const {
  // After an interrupted change the per-length counts may be off until the repair: count
  // the entries themselves then.
  uint32_t zero = 0;
  steer_journal journal{};
  STEER_TRY(state_.journal().lookup(&zero, &journal));
  if (journal.phase != STEER_JOURNAL_CLEAN) return STEER_TRY(bindings()).size();
  auto control = STEER_TRY(read_control());
  uint32_t set = control.active_set & 1;
  auto counts = STEER_TRY((read_all<uint32_t, steer_prefix_count>(state_.prefix_counts())));
  size_t total = 0;
  for (const auto& [key, count] : counts)
    if (key / STEER_PREFIX_COUNT_KEYS_PER_SET == set) total += count.ports + count.ranges;
  return total;
}

Result<void> Dispatcher::for_each_binding(
    const std::function<void(const BoundBinding&)>& visit) const {
  auto control = STEER_TRY(read_control());
  uint32_t set = control.active_set & 1;
  // Small entries, labels by destination: a listing of 1M holds ~40 MB, not 1M Bindings.
  struct Entry {
    Prefix prefix;
    Protocol protocol;
    PortRange ports;
    uint32_t destination;
  };
  std::vector<Entry> entries;
  STEER_TRY((walk_in_batches<steer_binding_key, steer_port_binding>(
      state_.port_bindings(set), bpf_map_lookup_batch,
      [&](const steer_binding_key& key, const steer_port_binding& value) {
        entries.push_back({prefix_of(key), static_cast<Protocol>(key.protocol),
                           PortRange{key.port, key.port}, value.destination});
      })));
  STEER_TRY((walk_in_batches<steer_binding_key, steer_range_binding>(
      state_.range_bindings(set), bpf_map_lookup_batch,
      [&](const steer_binding_key& key, const steer_range_binding& value) {
        for (uint32_t i = 0; i < value.count && i < STEER_RANGES_PER_PREFIX; ++i)
          entries.push_back({prefix_of(key), static_cast<Protocol>(key.protocol),
                             PortRange{value.ranges[i].first, value.ranges[i].last},
                             value.ranges[i].destination});
      })));
  // Most specific first, as the dispatcher matches them.
  std::sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) {
    if (x.prefix.family != y.prefix.family) return x.prefix.family < y.prefix.family;
    if (x.prefix.length != y.prefix.length) return x.prefix.length > y.prefix.length;
    if (x.prefix.bytes != y.prefix.bytes) return x.prefix.bytes < y.prefix.bytes;
    if (x.protocol != y.protocol) return x.protocol < y.protocol;
    if (x.ports.width() != y.ports.width()) return x.ports.width() < y.ports.width();
    return x.ports.first < y.ports.first;
  });
  std::map<uint32_t, std::string> labels;
  for (const auto& entry : entries) {
    if (labels.contains(entry.destination)) continue;
    auto resolved = this->destination(entry.destination);
    labels[entry.destination] = resolved ? resolved->label : "?";
  }
  BoundBinding bound;
  for (const auto& entry : entries) {
    bound.binding.label = labels[entry.destination];
    bound.binding.protocol = entry.protocol;
    bound.binding.prefix = entry.prefix;
    bound.binding.ports = entry.ports;
    bound.destination = entry.destination;
    visit(bound);
  }
  return {};
}

Result<std::vector<BoundBinding>> Dispatcher::bindings() const {
  std::vector<BoundBinding> result;
  STEER_TRY(for_each_binding([&](const BoundBinding& bound) { result.push_back(bound); }));
  return result;
}

Result<void> Dispatcher::write_prefix_counts(uint32_t set,
                                             const std::vector<steer_prefix_count>& counts) {
  std::vector<uint32_t> keys;
  for (uint32_t i = 0; i < counts.size(); ++i)
    keys.push_back((set & 1) * STEER_PREFIX_COUNT_KEYS_PER_SET + i);
  return write_batch(state_.prefix_counts(), keys, counts);
}

// Empties one set: hashes, counts and masks. Only ever called on the set the program does
// not read.
Result<void> Dispatcher::clear_set(uint32_t set) {
  STEER_TRY((empty_hash<steer_binding_key, steer_port_binding>(state_.port_bindings(set))));
  STEER_TRY((empty_hash<steer_binding_key, steer_range_binding>(state_.range_bindings(set))));
  STEER_TRY(write_prefix_counts(set, std::vector<steer_prefix_count>(STEER_PREFIX_COUNT_KEYS_PER_SET)));
  auto control = STEER_TRY(read_control());
  if ((control.active_set & 1) == (set & 1))
    return fail(EINVAL, "refusing to clear the binding set the program reads");
  std::memset(control.masks[set & 1], 0, sizeof(control.masks[set & 1]));
  uint32_t zero = 0;
  return state_.control().update(&zero, &control, bpf::UpdateMode::Any);
}

Result<void> Dispatcher::replace_bindings(const std::vector<Binding>& bindings) {
  STEER_TRY(validate_binding_set(bindings));
  auto change = STEER_TRY(Change::begin(*this, "load-bindings"));
  auto control = STEER_TRY(read_control());
  uint32_t active = control.active_set & 1, idle = active ^ 1;
  // The idle copy may hold leftovers of an interrupted load: start from empty.
  STEER_TRY(clear_set(idle));

  std::map<std::tuple<std::string, int, Protocol>, uint32_t> destinations;
  std::map<uint32_t, uint32_t> bindings_per_destination;
  std::vector<steer_binding_key> port_keys, range_keys;
  std::vector<steer_port_binding> port_values;
  std::map<std::vector<uint8_t>, steer_range_binding> ranges;  // by key bytes
  std::vector<steer_prefix_count> counts(STEER_PREFIX_COUNT_KEYS_PER_SET);
  steer_prefix_mask masks[STEER_FAMILIES][STEER_PROTOCOLS] = {};
  PortLengths port_lengths;
  port_keys.reserve(bindings.size());
  port_values.reserve(bindings.size());

  for (const auto& binding : bindings) {
    auto lookup_key = std::make_tuple(binding.label, binding.prefix.family, binding.protocol);
    auto found = destinations.find(lookup_key);
    if (found == destinations.end()) {
      uint32_t id = STEER_TRY(acquire_destination(binding.label, binding.prefix.family, binding.protocol));
      found = destinations.emplace(lookup_key, id).first;
    }
    bindings_per_destination[found->second] += 1;
    port_lengths.add(binding.prefix.family, binding.protocol, binding.prefix.length, binding.ports);
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
  STEER_TRY(write_batch(state_.port_bindings(idle), port_keys, port_values));
  STEER_TRY(write_batch(state_.range_bindings(idle), range_keys, range_values));
  STEER_TRY(write_prefix_counts(idle, counts));
  // Binding counts guard destinations from being freed: raise the new set's before the flip.
  auto all = STEER_TRY((read_all<uint32_t, steer_destination>(state_.destinations())));
  for (const auto& [id, raw] : all) {
    auto fresh = bindings_per_destination.find(id);
    if (fresh != bindings_per_destination.end() && fresh->second > raw.bindings)
      STEER_TRY(count_bindings(id, static_cast<int>(fresh->second - raw.bindings)));
  }
  std::memcpy(control.masks[idle], masks, sizeof(masks));
  uint32_t zero = 0;
  STEER_TRY(state_.control().update(&zero, &control, bpf::UpdateMode::Any));
  // The port masks serve both sets across the flip: first the union of the old and the new.
  auto port_masks = port_lengths.compute();
  auto current_masks = STEER_TRY(read_port_masks());
  auto both = current_masks;
  for (size_t key = 0; key < both.size(); ++key)
    for (int word = 0; word < 3; ++word) {
      both[key].ports[word] |= port_masks.masks[key].ports[word];
      both[key].ranges[word] |= port_masks.masks[key].ranges[word];
    }
  STEER_TRY(write_port_masks(both, current_masks));
  // The commit point: one update flips the program to the new set.
  control.active_set = idle;
  STEER_TRY(state_.control().update(&zero, &control, bpf::UpdateMode::Any));
  // A lookup that read the old set before the flip may still be probing it: wait until every
  // program run that could have started before the flip is over, then empty the old set and
  // take its lengths out of the port masks.
  STEER_TRY(bpf::wait_for_running_programs());
  STEER_TRY(clear_set(active));
  STEER_TRY(write_port_masks(port_masks.masks, both));
  STEER_TRY(write_port_counts(port_masks.count_keys, port_masks.counts));
  // Counts as the new set has them; destinations nothing names any more are freed.
  for (const auto& [id, raw] : all) {
    if (raw.state != STEER_DESTINATION_USED && !bindings_per_destination.count(id)) continue;
    auto fresh = bindings_per_destination.find(id);
    uint32_t now = fresh == bindings_per_destination.end() ? 0 : fresh->second;
    steer_destination current{};
    STEER_TRY(state_.destinations().lookup(&id, &current));
    if (current.bindings != now) STEER_TRY(count_bindings(id, static_cast<int>(now) - static_cast<int>(current.bindings)));
    if (now == 0) STEER_TRY(release_if_unused(id));
  }
  return change.commit();
}

// Rebuilds the derived binding state from the hashes: the idle set is emptied (leftovers of
// an interrupted load-bindings), and the active set's counts, masks and the destinations'
// binding counts are computed from its entries.
Result<void> Dispatcher::recount_bindings() {
  auto control = STEER_TRY(read_control());
  uint32_t active = control.active_set & 1;
  STEER_TRY(clear_set(active ^ 1));
  std::vector<steer_prefix_count> counts(STEER_PREFIX_COUNT_KEYS_PER_SET);
  steer_prefix_mask masks[STEER_FAMILIES][STEER_PROTOCOLS] = {};
  std::map<uint32_t, uint32_t> per_destination;
  PortLengths port_lengths;
  auto note = [&](const steer_binding_key& key, bool single, uint32_t destination,
                  PortRange ports) {
    Protocol protocol = static_cast<Protocol>(key.protocol);
    port_lengths.add(key.family, protocol, key.prefix_len, ports);
    counts[prefix_count_key(0, key.family, protocol, key.prefix_len)].ports += single ? 1 : 0;
    counts[prefix_count_key(0, key.family, protocol, key.prefix_len)].ranges += single ? 0 : 1;
    auto& mask = masks[family_index(key.family)][protocol_index(protocol)];
    set_bit(single ? mask.ports : mask.ranges, key.prefix_len, true);
    per_destination[destination] += 1;
  };
  STEER_TRY((walk_in_batches<steer_binding_key, steer_port_binding>(
      state_.port_bindings(active), bpf_map_lookup_batch,
      [&](const steer_binding_key& key, const steer_port_binding& value) {
        note(key, true, value.destination, PortRange{key.port, key.port});
      })));
  STEER_TRY((walk_in_batches<steer_binding_key, steer_range_binding>(
      state_.range_bindings(active), bpf_map_lookup_batch,
      [&](const steer_binding_key& key, const steer_range_binding& value) {
        for (uint32_t i = 0; i < value.count && i < STEER_RANGES_PER_PREFIX; ++i)
          note(key, false, value.ranges[i].destination,
               PortRange{value.ranges[i].first, value.ranges[i].last});
      })));
  STEER_TRY(write_prefix_counts(active, counts));
  // Exact masks: a bit for every length in use (never fewer), none for lengths not in use.
  std::memcpy(control.masks[active], masks, sizeof(masks));
  uint32_t zero = 0;
  STEER_TRY(state_.control().update(&zero, &control, bpf::UpdateMode::Any));
  auto port_masks = port_lengths.compute();
  STEER_TRY(write_port_masks(port_masks.masks, STEER_TRY(read_port_masks())));
  STEER_TRY(write_port_counts(port_masks.count_keys, port_masks.counts));
  auto all = STEER_TRY((read_all<uint32_t, steer_destination>(state_.destinations())));
  for (auto [id, raw] : all) {
    if (raw.state != STEER_DESTINATION_USED) continue;
    auto found = per_destination.find(id);
    uint32_t now = found == per_destination.end() ? 0 : found->second;
    if (raw.bindings == now) continue;
    raw.bindings = now;
    STEER_TRY(state_.destinations().update(&id, &raw, bpf::UpdateMode::Any));
  }
  return {};
}

}  // namespace steer::core
