// Labels and destinations. A label's name maps to its id in `labels` (and back in
// `label_names`); (label id, family, protocol) maps to its destination in
// `destination_index`: every lookup is one map lookup. A destination is freed when no binding
// names it and its pool is empty, and a label when it has no destination left.
#include "core/dispatcher_internal.h"

namespace steer::core {

namespace {

constexpr int kFamilies[] = {AF_INET, AF_INET6};
constexpr Protocol kProtocols[] = {Protocol::Tcp, Protocol::Udp};

// The free entries of an array map, read in one batch: `is_free` tells.
template <class Value, class IsFree>
Result<std::set<uint32_t>> free_entries(const bpf::Map& map, IsFree&& is_free) {
  auto entries = STEER_TRY((read_all<uint32_t, Value>(map)));
  std::set<uint32_t> result;
  for (const auto& [index, value] : entries)
    if (is_free(value)) result.insert(index);
  return result;
}

}  // namespace

Result<std::optional<uint32_t>> Dispatcher::find_label(const std::string& label) const {
  steer_label_name key = label_key(label);
  steer_label_id id{};
  if (auto found = state_.labels().lookup(&key, &id); !found) {
    if (found.error().code == ENOENT) return std::optional<uint32_t>();
    return std::unexpected(found.error());
  }
  return std::optional<uint32_t>(id.id);
}

Result<uint32_t> Dispatcher::acquire_label(const std::string& label) {
  STEER_TRY(validate_label(label));
  if (auto existing = STEER_TRY(find_label(label))) return *existing;
  if (!free_labels_)
    free_labels_ = STEER_TRY(free_entries<steer_label_name>(
        state_.label_names(), [](const steer_label_name& name) { return name.name[0] == '\0'; }));
  std::optional<uint32_t> free_id;
  if (!free_labels_->empty()) free_id = *free_labels_->begin();
  if (!free_id)
    return fail(E2BIG, "too many labels ({} is the limit): unbind or unregister the ones no "
                       "longer used (they are freed with their last binding and socket)",
                STEER_MAX_LABELS);
  // The name first, then the index: a reader never finds an id without its name.
  steer_label_name key = label_key(label);
  STEER_TRY(state_.label_names().update(&*free_id, &key, bpf::UpdateMode::Any));
  steer_label_id value{*free_id};
  STEER_TRY(state_.labels().update(&key, &value, bpf::UpdateMode::NoExist));
  free_labels_->erase(*free_id);
  return *free_id;
}

Result<std::string> Dispatcher::label_name(uint32_t id) const {
  steer_label_name name{};
  STEER_TRY(state_.label_names().lookup(&id, &name));
  return label_of(name);
}

Result<std::optional<uint32_t>> Dispatcher::find_destination(const std::string& label, int family,
                                                             Protocol protocol) const {
  auto label_id = STEER_TRY(find_label(label));
  if (!label_id) return std::optional<uint32_t>();
  auto key = destination_key(*label_id, family, protocol);
  steer_destination_ref ref{};
  if (auto found = state_.destination_index().lookup(&key, &ref); !found) {
    if (found.error().code == ENOENT) return std::optional<uint32_t>();
    return std::unexpected(found.error());
  }
  return std::optional<uint32_t>(ref.destination);
}

Result<uint32_t> Dispatcher::acquire_destination(const std::string& label, int family,
                                                 Protocol protocol) {
  if (auto existing = STEER_TRY(find_destination(label, family, protocol))) return *existing;
  uint32_t label_id = STEER_TRY(acquire_label(label));
  if (!free_destinations_)
    free_destinations_ = STEER_TRY(free_entries<steer_destination>(
        state_.destinations(),
        [](const steer_destination& d) { return d.state != STEER_DESTINATION_USED; }));
  std::optional<uint32_t> free_id;
  if (!free_destinations_->empty()) free_id = *free_destinations_->begin();
  if (!free_id)
    return fail(E2BIG, "all {} destinations are in use: unbind or unregister the labels no "
                       "longer used", STEER_MAX_DESTINATIONS);
  uint32_t id = *free_id;
  // A new pool of a label takes the policy its other pools have.
  uint8_t policy = STEER_POLICY_HASH;
  for (int other_family : kFamilies)
    for (Protocol other_protocol : kProtocols)
      if (auto other = STEER_TRY(find_destination(label, other_family, other_protocol))) {
        steer_destination sibling{};
        STEER_TRY(state_.destinations().lookup(&*other, &sibling));
        policy = sibling.policy;
      }
  // Empty tables and pools, a fresh cursor and zero counters first (no socket: connections
  // are refused, not misrouted), then the destination, then its index entry.
  steer_maglev_table table{};
  std::memset(table.slots, STEER_NO_SLOT, sizeof(table.slots));
  steer_pool empty_pool{};
  for (uint32_t n = 0; n < 2; ++n) {
    uint32_t key = steer_maglev_key(id, n);
    STEER_TRY(state_.maglev().update(&key, &table, bpf::UpdateMode::Any));
    STEER_TRY(state_.pools().update(&key, &empty_pool, bpf::UpdateMode::Any));
  }
  steer_pool_cursor cursor{};
  STEER_TRY(state_.pool_cursors().update(&id, &cursor, bpf::UpdateMode::Any));
  std::vector<steer_destination_counters> zero_counters(
      static_cast<size_t>(libbpf_num_possible_cpus()));
  STEER_TRY(state_.destination_counters().update(&id, zero_counters.data(), bpf::UpdateMode::Any));
  steer_destination destination{};
  destination.label_id = label_id;
  destination.family = static_cast<uint8_t>(family);
  destination.protocol = static_cast<uint8_t>(protocol);
  destination.policy = policy;
  destination.table_policy[0] = destination.table_policy[1] = policy;
  destination.state = STEER_DESTINATION_USED;
  STEER_TRY(state_.destinations().update(&id, &destination, bpf::UpdateMode::Any));
  auto key = destination_key(label_id, family, protocol);
  steer_destination_ref ref{id};
  STEER_TRY(state_.destination_index().update(&key, &ref, bpf::UpdateMode::Any));
  free_destinations_->erase(id);
  return id;
}

Result<Destination> Dispatcher::destination(uint32_t id) const {
  steer_destination raw{};
  STEER_TRY(state_.destinations().lookup(&id, &raw));
  if (raw.state != STEER_DESTINATION_USED) return fail(ENOENT, "destination {} is not in use", id);
  Destination destination;
  destination.id = id;
  destination.label = STEER_TRY(label_name(raw.label_id));
  destination.family = raw.family;
  destination.protocol = static_cast<Protocol>(raw.protocol);
  destination.policy = STEER_TRY(live_pool(id)).policy;
  std::vector<steer_destination_counters> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (state_.destination_counters().lookup(&id, per_cpu.data()))
    for (const auto& cpu : per_cpu)
      for (size_t i = 0; i < STEER_COUNTERS; ++i) destination.counters[i] += cpu.values[i];
  return destination;
}

Result<void> Dispatcher::count_bindings(uint32_t id, int delta) {
  steer_destination raw{};
  STEER_TRY(state_.destinations().lookup(&id, &raw));
  raw.bindings = delta > 0 ? raw.bindings + static_cast<uint32_t>(delta)
                           : raw.bindings - std::min(raw.bindings, static_cast<uint32_t>(-delta));
  return state_.destinations().update(&id, &raw, bpf::UpdateMode::Any);
}

Result<bool> Dispatcher::release_if_unused(uint32_t id) {
  steer_destination raw{};
  STEER_TRY(state_.destinations().lookup(&id, &raw));
  if (raw.state != STEER_DESTINATION_USED || raw.bindings > 0) return false;
  if (STEER_TRY(live_members(id)) != 0) return false;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {  // nor a change under way
    uint32_t key = steer_socket_key(id, slot);
    steer_slot meta{};
    if (state_.slots().lookup(&key, &meta)) return false;
    if (state_.sockets().cookie_at(key)) return false;
  }
  // Unreachable first (the index), then free (the array): a reader resolving an id it found
  // before sees a used destination or none.
  auto key = destination_key(raw.label_id, raw.family, static_cast<Protocol>(raw.protocol));
  steer_destination_ref ref{};
  if (state_.destination_index().lookup(&key, &ref) && ref.destination == id)
    STEER_TRY(state_.destination_index().erase(&key));
  steer_destination freed{};
  STEER_TRY(state_.destinations().update(&id, &freed, bpf::UpdateMode::Any));
  if (free_destinations_) free_destinations_->insert(id);

  // The label goes with its last destination.
  for (int family : kFamilies)
    for (Protocol protocol : kProtocols) {
      auto other = destination_key(raw.label_id, family, protocol);
      if (state_.destination_index().lookup(&other, &ref)) return true;
    }
  steer_label_name name{};
  STEER_TRY(state_.label_names().lookup(&raw.label_id, &name));
  if (name.name[0] != '\0') STEER_TRY(free_label(raw.label_id, name));
  return true;
}

Result<std::vector<uint32_t>> Dispatcher::label_destinations(const std::string& label) const {
  std::vector<uint32_t> result;
  for (int family : kFamilies)
    for (Protocol protocol : kProtocols)
      if (auto destination = STEER_TRY(find_destination(label, family, protocol)))
        result.push_back(*destination);
  return result;
}

Result<void> Dispatcher::free_label(uint32_t id, const steer_label_name& name) {
  STEER_TRY(forget_groups(id));  // a later label taking this id must not inherit its groups
  if (auto erased = state_.labels().erase(&name); !erased && erased.error().code != ENOENT)
    return std::unexpected(erased.error());
  steer_label_name empty{};
  STEER_TRY(state_.label_names().update(&id, &empty, bpf::UpdateMode::Any));
  if (free_labels_) free_labels_->insert(id);
  return {};
}

Result<std::vector<Destination>> Dispatcher::destinations() const {
  auto all = STEER_TRY((read_all<uint32_t, steer_destination>(state_.destinations())));
  std::vector<Destination> result;
  for (const auto& [id, raw] : all) {
    if (raw.state != STEER_DESTINATION_USED) continue;
    result.push_back(STEER_TRY(destination(id)));
  }
  return result;
}

}  // namespace steer::core
