// Socket pools: each destination has STEER_POOL_SLOTS slots; a slot's socket sits in the
// `sockets` SOCKMAP and what steer knows of it (cookie, owner, state) in `slots`, both at
// steer_socket_key(destination, slot). A socket is in the pool when its slot is a member of
// the live table (`pool_members`, beside each Maglev table) and its record agrees with the
// SOCKMAP (same cookie): that is the source of truth, for status and the program alike.
//
// A change of pools is written aside, then switched in (docs/architecture.md, "Atomicity and
// recovery"): joining sockets go into free slots (record, then SOCKMAP) without being members;
// leaving ones are marked. Then the commit point; then, per pool, the idle table and its
// members are written and `active_table` flips: every socket of a pool joins or leaves in
// that one update. Entries of slots that are no members are removed after the flip. A kill
// before the commit point is undone by the next repair, one after it completed.
#include <netinet/tcp.h>

#include <fmt/ranges.h>

#include <functional>
#include <map>
#include <set>

#include "bpf/test_run.h"
#include "core/dispatcher_internal.h"
#include "core/policy.h"

namespace steer::core {

std::string refusal_reason(int assign_error, uint32_t tcp_state, Protocol protocol) {
  if (assign_error == -ESOCKTNOSUPPORT) {
    if (protocol == Protocol::Tcp)
      return fmt::format("not listening any more (TCP state {}: shut down or disconnected by "
                         "its owner)", tcp_state);
    return "connected: a connected UDP socket takes datagrams only from its peer";
  }
  if (assign_error == -EPROTOTYPE) return "wrong protocol for this pool";
  if (assign_error == -EAFNOSUPPORT) return "wrong address family for this pool (v6-only?)";
  return fmt::format("the kernel refuses it ({})", errno_name(-assign_error));
}

Result<std::unique_ptr<ExplainProgram>> ExplainProgram::load(const State& state) {
  auto skeleton = STEER_TRY(bpf::Skeleton<dispatcher_explain>::open("dispatcher_explain"));
  STEER_TRY(state.reuse_maps(skeleton->obj));
  STEER_TRY(skeleton.load());
  return std::unique_ptr<ExplainProgram>(new ExplainProgram(std::move(skeleton)));
}

Result<ExplainProgram*> Dispatcher::explain_program() const {
  if (!explain_program_) explain_program_ = STEER_TRY(ExplainProgram::load(state_));
  return explain_program_.get();
}

Result<std::vector<steer_audit_entry>> Dispatcher::audit_pool(uint32_t id) const {
  steer_destination raw{};
  STEER_TRY(state_.destinations().lookup(&id, &raw));
  auto* program = STEER_TRY(explain_program());
  (*program)->bss->audit_destination = id;
  bool v6 = raw.family == AF_INET6;
  auto local = v6 ? SocketAddress::ipv6_loopback(1) : SocketAddress::ipv4_loopback(1);
  auto remote = v6 ? SocketAddress::ipv6_loopback(2) : SocketAddress::ipv4_loopback(2);
  auto context = bpf::make_sk_lookup_context(raw.protocol, remote, local);
  STEER_TRY(bpf::test_run_sk_lookup(bpf_program__fd((*program)->progs.steer_audit), context));
  std::vector<steer_audit_entry> entries(STEER_POOL_SLOTS);
  const bpf::Map audit = STEER_TRY(bpf::Map::from_fd(bpf_map__fd((*program)->maps.audit)));
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot)
    STEER_TRY(audit.lookup(&slot, &entries[slot]));
  return entries;
}

namespace {

// One slot as the maps hold it.
struct SlotEntry {
  bool has_record = false;
  steer_slot record{};
  std::optional<uint64_t> cookie;  // of the socket in the SOCKMAP
  bool agrees() const { return has_record && cookie && *cookie == record.cookie; }
};

bool member(uint64_t members, uint32_t slot) { return (members >> slot) & 1; }

}  // namespace

Result<LivePool> Dispatcher::live_pool(uint32_t id) const {
  return live_pool(id, STEER_TRY(read_control()).pools_epoch);
}

Result<LivePool> Dispatcher::live_pool(uint32_t id, uint32_t pools_epoch) const {
  LivePool live;
  STEER_TRY(state_.destinations().lookup(&id, &live.destination));
  live.table = steer_live_table(&live.destination, pools_epoch);
  uint32_t key = steer_maglev_key(id, live.table);
  STEER_TRY(state_.pools().lookup(&key, &live.pool));
  live.policy = live.destination.table_policy[live.table & 1];
  return live;
}

Result<uint64_t> Dispatcher::live_members(uint32_t id) const {
  return STEER_TRY(live_pool(id)).pool.members;
}

Result<void> Dispatcher::rebuild_pools(
    const std::vector<std::pair<uint32_t, PendingSockets>>& pools) {
  if (pools.empty()) return {};
  auto control = STEER_TRY(read_control());
  uint32_t epoch = control.pools_epoch, next_epoch = epoch + 1;
  struct Staged {
    uint32_t id;
    steer_destination raw;
    uint32_t table;  // the idle table, now holding the next version
    uint64_t members;
    std::vector<SlotEntry> entries;
  };
  std::vector<Staged> staged;
  for (const auto& [id, pending] : pools) {
    auto live = STEER_TRY(live_pool(id, epoch));
    Staged pool{.id = id, .raw = live.destination, .table = 0, .members = 0, .entries = {}};
    uint64_t live_members = live.pool.members;
    if (pending.undo_pending && pool.raw.policy != live.policy) {
      // A policy change before its commit point: the live one stays.
      pool.raw.policy = static_cast<uint8_t>(live.policy);
      STEER_TRY(state_.destinations().update(&id, &pool.raw, bpf::UpdateMode::Any));
    }
    auto& entries = pool.entries;
    entries.resize(STEER_POOL_SLOTS);
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
      uint32_t key = steer_socket_key(id, slot);
      auto& entry = entries[slot];
      entry.has_record = state_.slots().lookup(&key, &entry.record).has_value();
      if (auto cookie = state_.sockets().cookie_at(key)) entry.cookie = *cookie;
    }
    // The next members: the live ones and those joining, less those leaving, closed by
    // their owner (the kernel took them out of the SOCKMAP) or never written in full.
    uint64_t next = 0;
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
      auto& entry = entries[slot];
      bool was_member = member(live_members, slot);
      bool joining = member(pending.joining, slot) ||
                     (pending.adopt_written_aside && !was_member);
      if (!(was_member || joining) || !entry.agrees()) continue;
      if (pending.undo_pending && was_member) {
        // Changes before their commit point are undone: the live pool says what was.
        auto record = entry.record;
        record.flags &= ~STEER_SLOT_LEAVING;
        record.weight = live.pool.weights[slot];
        bool takes_connections = member(live.pool.active | live.pool.standby, slot);
        record.state = takes_connections ? STEER_SLOT_ACTIVE : STEER_SLOT_DRAINING;
        if (std::memcmp(&record, &entry.record, sizeof(record)) != 0) {
          entry.record = record;
          uint32_t key = steer_socket_key(id, slot);
          STEER_TRY(state_.slots().update(&key, &entry.record, bpf::UpdateMode::Any));
        }
      }
      if (entry.record.flags & STEER_SLOT_LEAVING) continue;
      next |= uint64_t{1} << slot;
    }
    // Sockets the kernel would refuse now (a listener shut down, a UDP socket connected):
    // no members any more, with a notice that says why.
    if (next != 0) {
      auto audit = audit_pool(id);
      if (!audit) {
        notices_.push_back("could not audit the pool of destination " + std::to_string(id) +
                           " (" + audit.error().message + "); kept its sockets");
      } else {
        for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
          const auto& found = (*audit)[slot];
          if (!member(next, slot) || !found.present || found.assign_error == 0) continue;
          next &= ~(uint64_t{1} << slot);
          const auto& record = entries[slot].record;
          notices_.push_back(fmt::format(
              "pruned socket {} (pid {}, {}) from destination {}: {}", record.cookie,
              record.pid, address_of(record).to_string(), id,
              refusal_reason(found.assign_error, found.state,
                             static_cast<Protocol>(pool.raw.protocol))));
        }
      }
    }
    // The next pool as the program will see it, and the table its policy walks.
    steer_pool view{};
    view.members = next;
    std::vector<PolicyMember> active, standby;
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
      if (!member(next, slot)) continue;
      const auto& record = entries[slot].record;
      view.weights[slot] = record.weight;
      if (record.state != STEER_SLOT_ACTIVE) continue;  // draining
      PolicyMember candidate{static_cast<uint8_t>(slot), record.weight, record.priority};
      (record.weight > 0 ? active : standby).push_back(candidate);
      (record.weight > 0 ? view.active : view.standby) |= uint64_t{1} << slot;
    }
    auto policy = static_cast<steer_policy>(pool.raw.policy);
    auto built = build_policy_table(policy, active, standby);
    // The idle table and its pool, named for the next epoch: nothing reads them yet.
    pool.table = live.table ^ 1;
    pool.members = next;
    steer_maglev_table table{};
    std::copy(built.entries.begin(), built.entries.end(), table.slots);
    table.length = built.length;
    uint32_t table_key = steer_maglev_key(id, pool.table);
    STEER_TRY(state_.maglev().update(&table_key, &table, bpf::UpdateMode::Any));
    STEER_TRY(state_.pools().update(&table_key, &view, bpf::UpdateMode::Any));
    pool.raw.table_policy[pool.table] = static_cast<uint8_t>(policy);
    pool.raw.table_in_epoch[next_epoch & 1] = static_cast<uint8_t>(pool.table);
    STEER_TRY(state_.destinations().update(&id, &pool.raw, bpf::UpdateMode::Any));
    staged.push_back(std::move(pool));
  }
  // The switch: one update moves every pool to its next table and members at once. Pools
  // not staged name the same table in both epochs, so they do not move.
  control = STEER_TRY(read_control());
  control.pools_epoch = next_epoch;
  uint32_t zero = 0;
  STEER_TRY(state_.control().update(&zero, &control, bpf::UpdateMode::Any));
  for (auto& pool : staged) {
    // Both epochs name the new table again, ready for the next switch.
    pool.raw.table_in_epoch[epoch & 1] = static_cast<uint8_t>(pool.table);
    STEER_TRY(state_.destinations().update(&pool.id, &pool.raw, bpf::UpdateMode::Any));
    // What is no member now is neither listed nor steered: its entries go, the SOCKMAP's
    // first.
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
      if (member(pool.members, slot)) continue;
      uint32_t key = steer_socket_key(pool.id, slot);
      if (pool.entries[slot].cookie) STEER_TRY(state_.sockets().erase(key));
      if (pool.entries[slot].has_record) STEER_TRY(state_.slots().erase(&key));
    }
  }
  return {};
}

namespace {

// A socket that may be registered: an IP listener or unbound-but-unconnected UDP socket of
// this network namespace.
struct Registrable {
  int fd = -1;
  SocketInfo info;
  Protocol protocol = Protocol::Tcp;
  std::string what;          // "fd 5 (tcp 127.0.0.1:80)", for errors
  std::vector<int> families; // the pools it joins: a dual-stack IPv6 socket joins both
};

// `name` is what errors call the socket ("fd 5"); `reuseport`: it must be in a group.
Result<Registrable> inspect_registrable(int socket_fd, const std::string& name, ino_t netns_inode,
                                        bool reuseport) {
  auto info = inspect_socket(socket_fd);
  if (!info) {
    if (info.error().code == EBADF) return fail(EBADF, "{} is not open", name);
    return std::unexpected(with_context(info.error(), name));
  }
  Registrable socket{.fd = socket_fd, .info = *info};
  std::string what = name;
  if (info->family != AF_INET && info->family != AF_INET6)
    return fail(EAFNOSUPPORT, "{} is not an IPv4 or IPv6 socket (family {}): steer steers IP "
                              "sockets only", what, info->family == AF_UNIX ? "unix" : std::to_string(info->family));
  if (info->type == SOCK_STREAM && info->protocol == IPPROTO_TCP) socket.protocol = Protocol::Tcp;
  else if (info->type == SOCK_DGRAM && info->protocol == IPPROTO_UDP) socket.protocol = Protocol::Udp;
  else return fail(EPROTONOSUPPORT, "{} is neither a TCP nor a UDP socket", what);
  what = fmt::format("{} ({} {})", name, to_string(socket.protocol), info->local.to_string());
  if (socket.protocol == Protocol::Tcp && info->state != SocketState::Listening)
    return fail(EINVAL, "{} is {}, not listening: register listening TCP sockets (call listen())",
                what, to_string(info->state));
  if (socket.protocol == Protocol::Udp && info->state == SocketState::Connected)
    return fail(EINVAL, "{} is connected: a connected UDP socket only receives from its peer; "
                        "register an unconnected one", what);
  if (socket.protocol == Protocol::Udp && info->state != SocketState::Bound)
    return fail(EINVAL, "{} is not bound: bind it to an address and port first", what);
  if (info->netns_inode != netns_inode)
    return fail(EXDEV, "{} lives in network namespace {}, but this steer acts on {}: pass "
                       "--netns /proc/<pid>/ns/net of the socket's owner", what,
                info->netns_inode, netns_inode);
  if (reuseport && !info->reuseport)
    return fail(EINVAL, "{} is in no reuseport group (SO_REUSEPORT was not set before bind): "
                        "register it without reuseport", what);
  socket.families = {info->family};
  if (info->family == AF_INET6 && !info->v6only) socket.families.push_back(AF_INET);
  socket.what = std::move(what);
  return socket;
}

steer_slot record_of(const Registrable& socket, const Owner& owner) {
  steer_slot record{};
  record.cookie = socket.info.cookie;
  record.pid = static_cast<uint32_t>(owner.pid);
  record.uid = owner.uid;
  record.state = STEER_SLOT_ACTIVE;
  record.weight = 1;
  const auto& local = socket.info.local;
  record.family = static_cast<uint8_t>(local.family());
  record.port = local.port();
  address_words(local, record.addr);
  std::strncpy(record.comm, owner.command.c_str(), sizeof(record.comm) - 1);
  return record;
}

}  // namespace

Result<std::vector<PooledSocket>> Dispatcher::register_socket(const std::string& label,
                                                              int socket_fd, const Owner& owner) {
  return register_sockets(label, {socket_fd}, owner);
}

Result<uint32_t> Dispatcher::newest_generation(const std::string& label) const {
  uint32_t newest = 0;
  for (uint32_t destination : STEER_TRY(label_destinations(label)))
    for (const auto& socket : STEER_TRY(sockets(destination)))
      newest = std::max(newest, socket.generation);
  return newest;
}

Result<std::vector<PooledSocket>> Dispatcher::register_sockets(
    const std::string& label, const std::vector<int>& socket_fds, const Owner& owner,
    const Joining& how) {
  STEER_TRY(validate_label(label));
  if (how.weight > kMaxWeight)
    return fail(EINVAL, "weight {} is over the most, {}", how.weight, kMaxWeight);
  auto generation = how.generation;
  if (!generation) generation = std::max(1u, STEER_TRY(newest_generation(label)));
  // Every socket is checked before anything is written (one socket behind two fds once).
  std::vector<Registrable> sockets_in;
  std::set<uint64_t> cookies;
  for (size_t i = 0; i < socket_fds.size(); ++i) {
    int fd = socket_fds[i];
    auto name = i < how.names.size() ? how.names[i] : fmt::format("fd {}", fd);
    auto socket = STEER_TRY(inspect_registrable(fd, name, state_.netns_inode(), how.reuseport));
    if (cookies.insert(socket.info.cookie).second) sockets_in.push_back(std::move(socket));
  }
  // The pools they join, by (family, protocol), and what each adds.
  std::map<std::pair<int, Protocol>, std::vector<const Registrable*>> pools;
  for (const auto& socket : sockets_in)
    for (int family : socket.families) pools[{family, socket.protocol}].push_back(&socket);
  auto pool_full = [&](int family, Protocol protocol) {
    return fail(E2BIG, "the pool of '{}' ({} {}) is full: {} sockets; unregister some first",
                label, to_string(protocol), family_label(family), STEER_POOL_SLOTS);
  };
  // A full pool is refused before anything is written.
  for (const auto& [pool, joining] : pools) {
    auto destination = STEER_TRY(find_destination(label, pool.first, pool.second));
    if (!destination) continue;
    std::set<uint64_t> pooled;
    for (const auto& socket : STEER_TRY(sockets(*destination))) pooled.insert(socket.cookie);
    size_t total = pooled.size();
    for (const auto* socket : joining) total += pooled.count(socket->info.cookie) ? 0 : 1;
    if (total > STEER_POOL_SLOTS) return pool_full(pool.first, pool.second);
  }

  auto change = STEER_TRY(Change::begin(*this, "register"));
  // 1. Aside: each new socket's record, then the socket, in a free slot. No member yet, so
  //    neither listed nor steered; a kill here is undone by the next repair.
  std::vector<std::pair<uint32_t, uint64_t>> joining_slots;  // destination, slots
  for (const auto& [pool, joining] : pools) {
    uint32_t id = STEER_TRY(acquire_destination(label, pool.first, pool.second));
    std::map<uint64_t, uint32_t> member_cookies;  // registered already: cookie -> slot
    std::vector<uint32_t> free_slots;             // no member, no socket
    uint16_t last_priority = 0;                   // new members come after the others
    auto scan = [&]() -> Result<void> {
      member_cookies.clear();
      free_slots.clear();
      last_priority = 0;
      uint64_t live = STEER_TRY(live_members(id));
      for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
        uint32_t key = steer_socket_key(id, slot);
        auto cookie = state_.sockets().cookie_at(key);
        steer_slot record{};
        if (!member(live, slot)) {
          if (!cookie) free_slots.push_back(slot);
        } else if (cookie && state_.slots().lookup(&key, &record) && record.cookie == *cookie) {
          member_cookies[*cookie] = slot;
          last_priority = std::max(last_priority, record.priority);
        }
      }
      return {};
    };
    STEER_TRY(scan());
    size_t needed = std::count_if(joining.begin(), joining.end(), [&](const Registrable* socket) {
      return !member_cookies.count(socket->info.cookie);
    });
    if (needed > free_slots.size()) {
      // Members whose sockets closed hold their slots until a rebuild takes them out.
      STEER_TRY(rebuild_pool(id));
      STEER_TRY(scan());
    }
    uint64_t bits = 0;
    for (const auto* socket : joining) {
      if (member_cookies.count(socket->info.cookie)) continue;
      if (free_slots.empty()) return pool_full(pool.first, pool.second);
      uint32_t slot = free_slots.front();
      free_slots.erase(free_slots.begin());
      uint32_t key = steer_socket_key(id, slot);
      steer_socket_counters zero_counters{};
      STEER_TRY(state_.socket_counters().update(&key, &zero_counters, bpf::UpdateMode::Any));
      steer_socket_connections counted{.cookie = socket->info.cookie, .established = 0};
      STEER_TRY(state_.socket_connections().update(&key, &counted, bpf::UpdateMode::Any));
      auto record = record_of(*socket, owner);
      record.generation = *generation;
      record.weight = how.weight;
      record.priority = ++last_priority;
      STEER_TRY(state_.slots().update(&key, &record, bpf::UpdateMode::Any));
      if (auto ok = state_.sockets().insert(key, socket->fd, bpf::UpdateMode::Any); !ok)
        return std::unexpected(with_context(ok.error(), "put " + socket->what + " into the socket map"));
      bits |= uint64_t{1} << slot;
    }
    // Rebuilt even with nothing joining: running the same command again puts right a table
    // that something else left stale.
    joining_slots.emplace_back(id, bits);
  }
  // 2. The commit point: from here a repair completes the registration.
  STEER_TRY(change.pass_commit_point());
  // 3. Every pool switches to its new members and table in one update.
  std::vector<std::pair<uint32_t, PendingSockets>> rebuilds;
  for (const auto& [id, bits] : joining_slots) rebuilds.push_back({id, {.joining = bits}});
  STEER_TRY(rebuild_pools(rebuilds));
  STEER_TRY(change.commit());
  // Their children are counted from now on (least-conn, `steer conns`).
  for (const auto& socket : sockets_in)
    if (socket.protocol == Protocol::Tcp) STEER_TRY(tag_listener(socket.fd, socket.info.cookie));
  // Report every pool the sockets are in, including ones they were in already.
  std::vector<PooledSocket> result;
  for (const auto& [id, bits] : joining_slots)
    for (auto& socket : STEER_TRY(sockets(id)))
      if (cookies.count(socket.cookie)) result.push_back(std::move(socket));
  return result;
}

Result<size_t> Dispatcher::change_sockets(const std::string& label, const char* verb,
                                          const SocketFilter& filter,
                                          const std::function<void(steer_slot&)>& change,
                                          bool release_unused) {
  // No label validation: a label stored by an older steer under older rules still works.
  auto destinations = STEER_TRY(label_destinations(label));
  if (destinations.empty()) return fail(ENOENT, "no label '{}' (steer status lists them)", label);
  std::vector<std::pair<uint32_t, std::vector<PooledSocket>>> chosen;
  size_t matching = 0;
  for (uint32_t destination : destinations) {
    std::vector<PooledSocket> matched;
    for (auto& socket : STEER_TRY(sockets(destination)))
      if (filter.matches(socket)) matched.push_back(std::move(socket));
    matching += matched.size();
    if (!matched.empty()) chosen.emplace_back(destination, std::move(matched));
  }
  if (matching == 0)
    return fail(ENOENT, "label '{}' has no registered socket{}", label, filter.describe());
  auto mark = STEER_TRY(Change::begin(*this, verb));
  // 1. Aside: the records say what the next switch makes of each socket; the live pools
  //    (what is listed and steered) do not move yet. A kill here is undone.
  for (const auto& [destination, matched] : chosen)
    for (const auto& socket : matched) {
      uint32_t key = steer_socket_key(destination, socket.slot);
      steer_slot record{};
      STEER_TRY(state_.slots().lookup(&key, &record));
      change(record);
      STEER_TRY(state_.slots().update(&key, &record, bpf::UpdateMode::Any));
    }
  // 2. The commit point: from here a repair completes the change.
  STEER_TRY(mark.pass_commit_point());
  // 3. Every pool of the label switches in one update.
  std::vector<std::pair<uint32_t, PendingSockets>> rebuilds;
  for (const auto& [destination, matched] : chosen) rebuilds.push_back({destination, {}});
  STEER_TRY(rebuild_pools(rebuilds));
  if (release_unused)
    for (const auto& [destination, matched] : chosen) STEER_TRY(release_if_unused(destination));
  STEER_TRY(mark.commit());
  return matching;
}

Result<size_t> Dispatcher::unregister(const std::string& label, const SocketFilter& filter) {
  return change_sockets(label, "unregister", filter,
                        [](steer_slot& record) { record.flags |= STEER_SLOT_LEAVING; },
                        /*release_unused=*/true);
}

Result<size_t> Dispatcher::drain(const std::string& label, const SocketFilter& filter) {
  return change_sockets(label, "drain", filter,
                        [](steer_slot& record) { record.state = STEER_SLOT_DRAINING; });
}

Result<size_t> Dispatcher::undrain(const std::string& label, const SocketFilter& filter) {
  return change_sockets(label, "undrain", filter,
                        [](steer_slot& record) { record.state = STEER_SLOT_ACTIVE; });
}

Result<size_t> Dispatcher::set_weight(const std::string& label, const SocketFilter& filter,
                                      uint32_t weight) {
  if (weight > kMaxWeight)
    return fail(ERANGE, "weight {} is too large: weights go from 0 (standby) to {}", weight,
                kMaxWeight);
  return change_sockets(label, "weight", filter,
                        [weight](steer_slot& record) { record.weight = weight; });
}

Result<Dispatcher::Promotion> Dispatcher::promote(const std::string& label, uint32_t generation) {
  Promotion promotion;
  std::set<uint32_t> generations;
  for (uint32_t destination : STEER_TRY(label_destinations(label)))
    for (const auto& socket : STEER_TRY(sockets(destination))) {
      generations.insert(socket.generation);
      (socket.generation == generation ? promotion.promoted : promotion.drained) += 1;
    }
  if (!generations.count(generation))
    return fail(ENOENT, "label '{}' has no socket of generation {}{}", label, generation,
                generations.empty() ? std::string(" (it has no sockets)")
                                    : fmt::format(" (it has generation{} {})",
                                                  generations.size() == 1 ? "" : "s",
                                                  fmt::join(generations, ", ")));
  STEER_TRY(change_sockets(label, "promote", {}, [generation](steer_slot& record) {
    record.state = record.generation == generation ? STEER_SLOT_ACTIVE : STEER_SLOT_DRAINING;
  }));
  return promotion;
}

Result<size_t> Dispatcher::prune_closed() {
  std::vector<std::pair<uint32_t, PendingSockets>> rebuilds;
  size_t closed = 0;
  for (const auto& destination : STEER_TRY(destinations())) {
    auto live = STEER_TRY(live_pool(destination.id));
    size_t gone = 0;
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
      if (!member(live.pool.members, slot)) continue;
      uint32_t key = steer_socket_key(destination.id, slot);
      steer_slot record{};
      auto cookie = state_.sockets().cookie_at(key);
      if (!state_.slots().lookup(&key, &record) || !cookie || *cookie != record.cookie) ++gone;
    }
    if (gone == 0) continue;
    closed += gone;
    rebuilds.push_back({destination.id, {}});
  }
  if (rebuilds.empty()) return 0;
  auto mark = STEER_TRY(Change::begin(*this, "prune"));
  STEER_TRY(mark.pass_commit_point());
  STEER_TRY(rebuild_pools(rebuilds));
  STEER_TRY(mark.commit());
  return closed;
}

Result<void> Dispatcher::set_policy(const std::string& label, steer_policy policy) {
  auto destinations = STEER_TRY(label_destinations(label));
  if (destinations.empty())
    return fail(ENOENT, "no label '{}': bind or register it first (steer status lists labels)",
                label);
  auto mark = STEER_TRY(Change::begin(*this, "policy"));
  std::vector<std::pair<uint32_t, PendingSockets>> rebuilds;
  for (uint32_t id : destinations) {
    steer_destination raw{};
    STEER_TRY(state_.destinations().lookup(&id, &raw));
    raw.policy = static_cast<uint8_t>(policy);
    STEER_TRY(state_.destinations().update(&id, &raw, bpf::UpdateMode::Any));
    rebuilds.push_back({id, {}});
  }
  STEER_TRY(mark.pass_commit_point());
  STEER_TRY(rebuild_pools(rebuilds));
  return mark.commit();
}

Result<std::vector<PooledSocket>> Dispatcher::sockets(uint32_t destination) const {
  auto live = STEER_TRY(live_pool(destination));
  std::vector<PooledSocket> result;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
    if (!member(live.pool.members, slot)) continue;
    uint32_t key = steer_socket_key(destination, slot);
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
    // State and weight as the program sees them: the live pool's.
    socket.state = member(live.pool.active | live.pool.standby, slot) ? STEER_SLOT_ACTIVE
                                                                        : STEER_SLOT_DRAINING;
    socket.weight = live.pool.weights[slot];
    socket.generation = meta.generation;
    socket.priority = meta.priority;
    steer_socket_counters counters{};
    if (state_.socket_counters().lookup(&key, &counters)) socket.selected = counters.selected;
    steer_socket_connections counted{};
    if (state_.socket_connections().lookup(&key, &counted) && counted.cookie == meta.cookie)
      socket.established = std::max<int64_t>(counted.established, 0);
    result.push_back(std::move(socket));
  }
  return result;
}

bool SocketFilter::matches(const PooledSocket& socket) const {
  return (!cookie || socket.cookie == *cookie) && (!pid || socket.owner.pid == *pid) &&
         (!generation || socket.generation == *generation);
}

std::string SocketFilter::describe() const {
  std::vector<std::string> parts;
  if (cookie) parts.push_back(fmt::format("with cookie {}", *cookie));
  if (pid) parts.push_back(fmt::format("owned by pid {}", *pid));
  if (generation) parts.push_back(fmt::format("of generation {}", *generation));
  return parts.empty() ? "" : " " + fmt::format("{}", fmt::join(parts, " and "));
}

}  // namespace steer::core
