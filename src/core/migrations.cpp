#include "core/migrations.h"

#include "core/dispatcher.h"

namespace steer::core {

namespace {

// Schema 1 (steer 0.1.0) -> 2: the registry gains its index (destination_index) and each
// destination its binding count, pools their members (pool_members), and the journal
// appears. All of it is derived, so the step is a repair over the upgraded maps: it fills
// the index and the counts from the bindings and destinations, makes every socket 0.1.0
// registered a member of its pool, and frees the labels and destinations 0.1.0 never freed.
Result<void> schema_1_to_2(Dispatcher& dispatcher) {
  STEER_TRY(dispatcher.repair(Dispatcher::PendingPools::Adopt));
  return {};
}

const Migration kMigrations[] = {
    {1, "index the registry, count bindings per destination, free unused labels", schema_1_to_2},
};

}  // namespace

std::vector<Migration> migrations_from(uint32_t schema) {
  std::vector<Migration> steps;
  for (const auto& step : kMigrations)
    if (step.from >= schema && step.from < STEER_SCHEMA_VERSION) steps.push_back(step);
  return steps;
}

}  // namespace steer::core
