// One status snapshot, read once under the lock: the CLI renders it (a daemon will serve it).
#include <map>

#include "base/netns.h"
#include "core/dispatcher_internal.h"

namespace steer::core {

Result<StatusSnapshot> Dispatcher::status(const std::string& label,
                                          size_t max_bindings_listed) const {
  StatusSnapshot snapshot;
  snapshot.netns_inode = state_.netns_inode();
  snapshot.path = state_.path();
  snapshot.program_id = state_.program_id();
  snapshot.meta = state_.meta();
  uint32_t zero = 0;
  STEER_TRY(state_.journal().lookup(&zero, &snapshot.journal));
  snapshot.binding_count = STEER_TRY(binding_count());
  auto all = STEER_TRY(destinations());
  if (!label.empty() &&
      std::none_of(all.begin(), all.end(), [&](const Destination& d) { return d.label == label; }))
    return fail(ENOENT, "no label '{}' (steer status lists them)", label);
  if (!label.empty() || snapshot.binding_count <= max_bindings_listed) {
    std::vector<BoundBinding> listed;
    for (auto& bound : STEER_TRY(bindings()))
      if (label.empty() || bound.binding.label == label) listed.push_back(std::move(bound));
    snapshot.bindings = std::move(listed);
  }
  // After an interrupted change, binding counts come from the entries themselves.
  std::optional<std::map<uint32_t, uint32_t>> counted;
  if (snapshot.journal.phase != STEER_JOURNAL_CLEAN) {
    counted.emplace();
    for (const auto& bound : STEER_TRY(bindings())) (*counted)[bound.destination] += 1;
  }
  // Queues as the kernel reports them, read in the state's namespace. Missing (an old
  // kernel without sock_diag, say) is shown as unknown, not as an error.
  std::map<uint64_t, SocketQueue> queues;
  if (auto entered = ScopedNetns::enter(state_.netns())) {
    for (int protocol : {IPPROTO_TCP, IPPROTO_UDP})
      if (auto found = socket_queues(protocol)) queues.merge(*found);
  }
  for (auto& destination : all) {
    if (!label.empty() && destination.label != label) continue;
    DestinationStatus entry;
    steer_destination raw{};
    STEER_TRY(state_.destinations().lookup(&destination.id, &raw));
    entry.bindings = counted ? (*counted)[destination.id] : raw.bindings;
    entry.sockets = STEER_TRY(sockets(destination.id));
    for (auto& socket : entry.sockets)
      if (auto queue = queues.find(socket.cookie); queue != queues.end()) socket.queue = queue->second;
    // Nothing names it and its pool is empty: a destination being created by a change in
    // progress (or cut short by a kill), or about to be freed. Not a user's state.
    if (entry.bindings == 0 && entry.sockets.empty()) continue;
    if (!entry.sockets.empty()) {
      // The data plane's own answer for each socket: would the kernel take it now?
      auto audit = audit_pool(destination.id);
      if (audit)
        for (auto& socket : entry.sockets) {
          const auto& found = (*audit)[socket.slot];
          if (found.present && found.assign_error != 0) {
            socket.health = SocketHealth::Refused;
            socket.problem = refusal_reason(found.assign_error, found.state, destination.protocol);
          }
        }
    }
    entry.destination = std::move(destination);
    snapshot.destinations.push_back(std::move(entry));
  }
  snapshot.reuseport_groups = STEER_TRY(reuseport_groups(label));
  snapshot.tracking = STEER_TRY(connection_tracking());
  return snapshot;
}

}  // namespace steer::core
