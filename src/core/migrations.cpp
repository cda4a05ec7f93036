#include "core/migrations.h"

#include "core/dispatcher_internal.h"

namespace steer::core {

namespace {

// Schema 1 (steer 0.1.0) -> 2: the registry gains its index (destination_index) and each
// destination its binding count, pools their members (pool_members), and the journal
// appears. All of it is derived, so the step is a repair over the upgraded maps: it fills
// the index and the counts from the bindings and destinations, makes every socket 0.1.0
// registered a member of its pool (generation 1), and frees the labels and destinations
// 0.1.0 never freed.
Result<void> schema_1_to_2(Dispatcher& dispatcher) {
  // 0.1.0 had no generations or priorities: its sockets become generation 1, in slot order
  // (records are keyed by steer_socket_key, so the slot is the key's low part).
  const auto& slots = dispatcher.state().slots();
  for (auto& [key, record] : STEER_TRY((read_all<uint32_t, steer_slot>(slots)))) {
    if (record.generation != 0) continue;
    record.generation = 1;
    if (record.priority == 0) record.priority = static_cast<uint16_t>(key % STEER_POOL_SLOTS + 1);
    STEER_TRY(slots.update(&key, &record, bpf::UpdateMode::Any));
  }
  STEER_TRY(dispatcher.repair(Dispatcher::PendingPools::Adopt));
  return {};
}

// Schema 2 -> 3: the program reads the lengths to probe from a mask per (family, protocol,
// port) (port_masks, with the single-port counts behind it in port_counts), both created
// empty by the upgrade. They are derived from the bindings: the repair fills them, before the
// new program that reads them replaces the old one.
Result<void> schema_2_to_3(Dispatcher& dispatcher) {
  STEER_TRY(dispatcher.repair());
  return {};
}

const Migration kMigrations[] = {
    {1, "index the registry, count bindings per destination, free unused labels", schema_1_to_2},
    {2, "a mask of the bound prefix lengths per port, so a lookup for an unbound port ends at "
        "once", schema_2_to_3},
};

}  // namespace

std::vector<Migration> migrations_from(uint32_t schema) {
  std::vector<Migration> steps;
  for (const auto& step : kMigrations)
    if (step.from >= schema && step.from < STEER_SCHEMA_VERSION) steps.push_back(step);
  return steps;
}

}  // namespace steer::core
