// The Dispatcher's front: opening state (and repairing an interrupted change), the journal
// mark every change runs under, and upgrades across releases. The work itself is split by
// concern: registry.cpp (labels, destinations), bindings.cpp, pools.cpp, repair.cpp,
// status.cpp, explain.cpp.
#include "core/dispatcher.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "core/dispatcher_internal.h"
#include "core/abi_checks.h"
#include "core/migrations.h"

namespace steer::core {

Prefix prefix_of(const steer_binding_key& key) {
  Prefix prefix;
  prefix.family = key.family;
  prefix.length = key.prefix_len;
  std::memcpy(prefix.bytes.data(), key.addr, key.family == AF_INET ? 4 : 16);
  return prefix;
}

void address_words(const SocketAddress& address, __u32 words[4]) {
  std::memset(words, 0, 16);
  if (address.family() == AF_INET)
    std::memcpy(words, &reinterpret_cast<const sockaddr_in*>(address.data())->sin_addr, 4);
  else
    std::memcpy(words, &reinterpret_cast<const sockaddr_in6*>(address.data())->sin6_addr, 16);
}

SocketAddress address_from(int family, const __u32 words[4], uint16_t port) {
  sockaddr_storage storage{};
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, words, 4);
    return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), sizeof(*sin));
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::memcpy(&sin6->sin6_addr, words, 16);
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), sizeof(*sin6));
}

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

Dispatcher::Dispatcher(State state) : state_(std::move(state)) {}
Dispatcher::~Dispatcher() = default;
Dispatcher::Dispatcher(Dispatcher&&) noexcept = default;
Dispatcher& Dispatcher::operator=(Dispatcher&&) noexcept = default;

namespace {

Result<steer_journal> read_journal(const State& state) {
  uint32_t zero = 0;
  steer_journal journal{};
  STEER_TRY(state.journal().lookup(&zero, &journal));
  return journal;
}

}  // namespace

Result<Dispatcher> Dispatcher::open(const Target& target, LockMode mode) {
  Dispatcher dispatcher(STEER_TRY(State::open(target, mode)));
  if (mode == LockMode::Exclusive) {
    auto journal = STEER_TRY(read_journal(dispatcher.state_));
    if (journal.phase != STEER_JOURNAL_CLEAN) {
      auto report = STEER_TRY(dispatcher.repair());
      (void)report;
    }
  }
  return dispatcher;
}

// ---- the journal ------------------------------------------------------------------------------

Result<Dispatcher::Change> Dispatcher::Change::begin(Dispatcher& dispatcher, const char* verb) {
  auto journal = STEER_TRY(read_journal(dispatcher.state_));
  journal.phase = STEER_JOURNAL_WRITING;
  journal.pid = static_cast<uint32_t>(::getpid());
  journal.started_unix = static_cast<uint64_t>(::time(nullptr));
  std::memset(journal.verb, 0, sizeof(journal.verb));
  std::strncpy(journal.verb, verb, sizeof(journal.verb) - 1);
  uint32_t zero = 0;
  STEER_TRY(dispatcher.state_.journal().update(&zero, &journal, bpf::UpdateMode::Any));
  return Change(&dispatcher);
}

namespace {

Result<void> set_phase(const State& state, steer_journal_phase phase) {
  auto journal = STEER_TRY(read_journal(state));
  journal.phase = phase;
  uint32_t zero = 0;
  return state.journal().update(&zero, &journal, bpf::UpdateMode::Any);
}

}  // namespace

Result<void> Dispatcher::Change::pass_commit_point() {
  return set_phase(dispatcher_->state_, STEER_JOURNAL_COMMITTED);
}

Result<void> Dispatcher::Change::commit() {
  Dispatcher* dispatcher = std::exchange(dispatcher_, nullptr);
  return set_phase(dispatcher->state_, STEER_JOURNAL_CLEAN);
}

Dispatcher::Change::~Change() {
  if (!dispatcher_) return;
  // The change failed half-way: put the derived state right now, while we hold the lock.
  // If even that fails the mark stays, and the next exclusive opener repairs.
  auto repaired = dispatcher_->repair();
  if (!repaired)
    dispatcher_->notices_.push_back("could not repair after the error (" +
                                    repaired.error().message +
                                    "); the next change repairs it");
}

// ---- upgrades ------------------------------------------------------------------------------

Result<Dispatcher::UpgradeReport> Dispatcher::upgrade(const Target& target) {
  auto state = STEER_TRY(State::open_for_upgrade(target));
  UpgradeReport report{.old_program_id = state.program_id()};
  auto& steps = report.steps;
  uint32_t from = state.schema();
  STEER_TRY(state.add_missing_maps());
  Dispatcher dispatcher(std::move(state));
  if (from < STEER_SCHEMA_VERSION) {
    for (const auto& step : migrations_from(from)) {
      STEER_TRY(step.run(dispatcher));
      steps.push_back(fmt::format("migrated the state from schema {} to {}: {}", step.from,
                                  step.from + 1, step.what));
    }
  } else {
    // Same schema: still rebuild what is derived if a change was interrupted.
    auto journal = STEER_TRY(read_journal(dispatcher.state_));
    if (journal.phase != STEER_JOURNAL_CLEAN) STEER_TRY(dispatcher.repair());
  }
  STEER_TRY(dispatcher.state_.swap_program());
  STEER_TRY(dispatcher.state_.record_schema());
  steps.push_back("replaced the dispatcher program through its link (every map kept)");
  return report;
}

}  // namespace steer::core
