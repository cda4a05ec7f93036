// Recovery: every changing command marks the journal dirty before its first write and clean
// after its last. A command killed in between leaves it dirty; the next exclusive opener
// (any changing command, or `steer upgrade`) calls repair() before doing its own work.
//
// The sources of truth are the binding hashes of the active set, `destinations`, `labels` /
// `label_names`, and the pools (members of the live table whose `slots` record agrees with
// `sockets`). Pool changes under way are undone before their commit point and completed
// after it. Everything else is derived
// and rebuilt here: the registry's index, the prefix masks and counts, the destinations'
// binding counts, and the Maglev tables. Each step is idempotent and keeps the program's
// view valid, so a kill during a repair is repaired by the next one.
#include <map>
#include <set>

#include "core/dispatcher_internal.h"

namespace steer::core {

Result<RepairReport> Dispatcher::repair(PendingPools pending) {
  RepairReport report;
  free_labels_.reset();  // re-read after the repair
  free_destinations_.reset();
  uint32_t zero = 0;
  steer_journal journal{};
  STEER_TRY(state_.journal().lookup(&zero, &journal));
  report.interrupted_verb = std::string(journal.verb, strnlen(journal.verb, sizeof(journal.verb)));
  report.interrupted_pid = journal.pid;
  bool complete_pools =
      pending == PendingPools::Adopt || journal.phase == STEER_JOURNAL_COMMITTED;
  if (journal.phase == STEER_JOURNAL_CLEAN) {
    // Repairs outside of an interrupted change (an upgrade's migration) mark it themselves.
    journal.phase = STEER_JOURNAL_WRITING;
    std::strncpy(journal.verb, "repair", sizeof(journal.verb) - 1);
    STEER_TRY(state_.journal().update(&zero, &journal, bpf::UpdateMode::Any));
  }

  // 1. The registry: names and ids agree both ways; the index lists every used destination.
  auto names = STEER_TRY((read_all<uint32_t, steer_label_name>(state_.label_names())));
  auto ids = STEER_TRY((read_all<steer_label_name, steer_label_id>(state_.labels())));
  auto destinations = STEER_TRY((read_all<uint32_t, steer_destination>(state_.destinations())));
  std::set<uint32_t> labels_in_use;
  for (const auto& [id, raw] : destinations)
    if (raw.state == STEER_DESTINATION_USED) labels_in_use.insert(raw.label_id);
  for (const auto& [name, id] : ids) {
    bool agrees = id.id < names.size() &&
                  std::memcmp(names[id.id].second.name, name.name, sizeof(name.name)) == 0;
    if (!agrees) STEER_TRY(state_.labels().erase(&name));
  }
  for (const auto& [id, name] : names) {
    if (name.name[0] == '\0') continue;
    if (!labels_in_use.count(id)) continue;  // freed in step 4 if nothing uses it
    steer_label_id value{id};
    STEER_TRY(state_.labels().update(&name, &value, bpf::UpdateMode::Any));
  }
  auto index = STEER_TRY((read_all<steer_destination_key, steer_destination_ref>(state_.destination_index())));
  for (const auto& [key, ref] : index) {
    bool agrees = ref.destination < destinations.size() &&
                  destinations[ref.destination].second.state == STEER_DESTINATION_USED &&
                  destinations[ref.destination].second.label_id == key.label_id &&
                  destinations[ref.destination].second.family == key.family &&
                  destinations[ref.destination].second.protocol == key.protocol;
    if (!agrees) STEER_TRY(state_.destination_index().erase(&key));
  }
  for (const auto& [id, raw] : destinations) {
    if (raw.state != STEER_DESTINATION_USED) continue;
    auto key = destination_key(raw.label_id, raw.family, static_cast<Protocol>(raw.protocol));
    steer_destination_ref ref{id};
    STEER_TRY(state_.destination_index().update(&key, &ref, bpf::UpdateMode::Any));
  }

  // 2. Bindings: the idle set emptied, the active set's masks and counts recomputed.
  STEER_TRY(recount_bindings());

  // 3. Pools: the change under way undone or completed, closed and refused sockets out,
  //    tables rebuilt.
  size_t notices_before = notices_.size();
  //    One switch for all: it also makes every destination name the same table in both
  //    epochs again, whatever a kill during a switch left.
  PendingSockets pending_sockets{.adopt_written_aside = complete_pools,
                                 .undo_pending = !complete_pools};
  std::vector<std::pair<uint32_t, PendingSockets>> pools;
  for (const auto& [id, raw] : destinations)
    if (raw.state == STEER_DESTINATION_USED) pools.push_back({id, pending_sockets});
  STEER_TRY(rebuild_pools(pools));
  report.pruned_sockets = notices_.size() - notices_before;

  // 4. What nothing uses any more: destinations, then labels (with their last destination,
  //    or names whose creation was cut short).
  for (const auto& [id, raw] : destinations)
    if (raw.state == STEER_DESTINATION_USED && STEER_TRY(release_if_unused(id)))
      ++report.freed_destinations;
  destinations = STEER_TRY((read_all<uint32_t, steer_destination>(state_.destinations())));
  labels_in_use.clear();
  for (const auto& [id, raw] : destinations)
    if (raw.state == STEER_DESTINATION_USED) labels_in_use.insert(raw.label_id);
  names = STEER_TRY((read_all<uint32_t, steer_label_name>(state_.label_names())));
  for (const auto& [id, name] : names) {
    if (name.name[0] == '\0' || labels_in_use.count(id)) continue;
    STEER_TRY(free_label(id, name));
    ++report.freed_labels;
  }

  free_labels_.reset();
  free_destinations_.reset();
  STEER_TRY(state_.journal().lookup(&zero, &journal));
  journal.phase = STEER_JOURNAL_CLEAN;
  journal.repairs += 1;
  STEER_TRY(state_.journal().update(&zero, &journal, bpf::UpdateMode::Any));
  report.completed = complete_pools && pending == PendingPools::AsJournalSays;
  notices_.push_back(fmt::format(
      "{} `{}` (pid {}){}: derived maps rebuilt, {} socket{} pruned, {} destination{} and {} "
      "label{} freed",
      report.completed ? "completed the interrupted" : "repaired the state left by an interrupted",
      report.interrupted_verb, report.interrupted_pid,
      report.completed ? ", which had passed its commit point" : "", report.pruned_sockets,
      report.pruned_sockets == 1 ? "" : "s", report.freed_destinations,
      report.freed_destinations == 1 ? "" : "s", report.freed_labels,
      report.freed_labels == 1 ? "" : "s"));
  return report;
}

}  // namespace steer::core
