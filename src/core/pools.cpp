// Socket pools: each destination has STEER_POOL_SLOTS slots; a slot's socket sits in the
// `sockets` SOCKMAP and what steer knows of it (cookie, owner, state) in `slots`, both at
// steer_socket_key(destination, slot). A socket is in the pool when both agree (same cookie):
// that is the source of truth. The Maglev table is derived from it (rebuild_pool).
//
// Order of writes: a slot's record is written before its socket goes into the SOCKMAP, and
// removed after the socket leaves it, so a kill never leaves a socket steered that status
// does not list. The program scans the pool when the table has no socket for it, so a kill
// before the table's rebuild never leaves a listed socket unused.
#include <netinet/tcp.h>

#include <set>

#include "bpf/test_run.h"
#include "core/dispatcher_internal.h"
#include "core/maglev.h"

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

Result<void> Dispatcher::rebuild_pool(uint32_t id, std::optional<uint32_t> incoming) {
  steer_destination destination{};
  STEER_TRY(state_.destinations().lookup(&id, &destination));
  std::vector<steer_slot> metas(STEER_POOL_SLOTS);
  std::vector<bool> in_pool(STEER_POOL_SLOTS, false);
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
    uint32_t key = steer_socket_key(id, slot);
    bool has_meta = state_.slots().lookup(&key, &metas[slot]).has_value();
    auto cookie = state_.sockets().cookie_at(key);
    if (cookie && (!has_meta || *cookie != metas[slot].cookie)) {
      // In the SOCKMAP but not in the pool: a registration that never finished. Out.
      STEER_TRY(state_.sockets().erase(key));
      cookie = std::unexpected(Error{ENOENT, ""});
    }
    if (has_meta && !cookie && incoming != slot) {
      // Closed by its owner (the kernel took it out of the SOCKMAP), or never inserted.
      STEER_TRY(state_.slots().erase(&key));
      has_meta = false;
    }
    in_pool[slot] = has_meta;
  }
  // Sockets the kernel would refuse now (a listener shut down, a UDP socket connected): out
  // of the pool, with a notice that says why.
  if (std::find(in_pool.begin(), in_pool.end(), true) != in_pool.end()) {
    auto audit = audit_pool(id);
    if (!audit) {
      notices_.push_back("could not audit the pool of destination " + std::to_string(id) +
                         " (" + audit.error().message + "); kept its sockets");
    } else {
      for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
        const auto& entry = (*audit)[slot];
        if (!in_pool[slot] || !entry.present || entry.assign_error == 0) continue;
        uint32_t key = steer_socket_key(id, slot);
        STEER_TRY(state_.sockets().erase(key));
        STEER_TRY(state_.slots().erase(&key));
        in_pool[slot] = false;
        notices_.push_back(fmt::format(
            "pruned socket {} (pid {}, {}) from destination {}: {}", metas[slot].cookie,
            metas[slot].pid, address_of(metas[slot]).to_string(), id,
            refusal_reason(entry.assign_error, entry.state,
                           static_cast<Protocol>(destination.protocol))));
      }
    }
  }
  std::vector<MaglevBackend> backends;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot)
    if (in_pool[slot] && metas[slot].state == STEER_SLOT_ACTIVE)
      backends.push_back({static_cast<uint8_t>(slot), metas[slot].weight});
  auto table_slots = build_maglev_table(backends, STEER_MAGLEV_SIZE, STEER_NO_SLOT);
  // Fill the idle table, then flip to it: the program never sees a half-written table.
  uint32_t idle = (destination.active_table & 1) ^ 1;
  steer_maglev_table table{};
  std::copy(table_slots.begin(), table_slots.end(), table.slots);
  uint32_t table_key = steer_maglev_key(id, idle);
  STEER_TRY(state_.maglev().update(&table_key, &table, bpf::UpdateMode::Any));
  STEER_TRY(state_.destinations().lookup(&id, &destination));
  destination.active_table = idle;
  return state_.destinations().update(&id, &destination, bpf::UpdateMode::Any);
}

Result<std::vector<PooledSocket>> Dispatcher::register_socket(const std::string& label,
                                                              int socket_fd, const Owner& owner) {
  STEER_TRY(validate_label(label));
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

  // A full pool is refused before anything is written.
  for (int family : families) {
    auto destination = STEER_TRY(find_destination(label, family, protocol));
    if (!destination) continue;
    auto pooled = STEER_TRY(sockets(*destination));
    bool present = std::any_of(pooled.begin(), pooled.end(),
                               [&](const PooledSocket& s) { return s.cookie == info->cookie; });
    if (!present && pooled.size() >= STEER_POOL_SLOTS)
      return fail(E2BIG, "the pool of '{}' ({} {}) is full: {} sockets; unregister some first",
                  label, to_string(protocol), family_label(family), STEER_POOL_SLOTS);
  }
  auto change = STEER_TRY(Change::begin(*this, "register"));
  for (int family : families) {
    uint32_t destination = STEER_TRY(acquire_destination(label, family, protocol));
    std::optional<uint32_t> free_slot, existing;
    for (uint32_t slot = 0; slot < STEER_POOL_SLOTS && !existing; ++slot) {
      uint32_t key = steer_socket_key(destination, slot);
      steer_slot meta{};
      bool has_meta = state_.slots().lookup(&key, &meta).has_value();
      auto cookie = state_.sockets().cookie_at(key);
      if (has_meta && cookie && *cookie == meta.cookie && meta.cookie == info->cookie) existing = slot;
      else if (!cookie && !free_slot) free_slot = slot;
    }
    if (!existing) {
      if (!free_slot)
        return fail(E2BIG, "the pool of '{}' ({} {}) is full: {} sockets; unregister some first",
                    label, to_string(protocol), family_label(family), STEER_POOL_SLOTS);
      uint32_t key = steer_socket_key(destination, *free_slot);
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
      steer_socket_counters zero_counters{};
      STEER_TRY(state_.socket_counters().update(&key, &zero_counters, bpf::UpdateMode::Any));
      STEER_TRY(state_.slots().update(&key, &meta, bpf::UpdateMode::Any));
      // The table first (its entries for the empty slot fall through to the neighbours),
      // then the socket: from the moment status lists it, it has its share.
      STEER_TRY(rebuild_pool(destination, *free_slot));
      if (auto ok = state_.sockets().insert(key, socket_fd, bpf::UpdateMode::Any); !ok)
        return std::unexpected(with_context(ok.error(), "put " + what + " into the socket map"));
    } else {
      // Registered already: rebuilt anyway, so a table a kill left stale is put right by
      // running the same command again.
      STEER_TRY(rebuild_pool(destination));
    }
  }
  STEER_TRY(change.commit());
  // Report every pool the socket is in, including ones it was in already.
  std::vector<PooledSocket> result;
  for (int family : families) {
    auto destination = STEER_TRY(find_destination(label, family, protocol));
    if (!destination) continue;
    for (auto& socket : STEER_TRY(sockets(*destination)))
      if (socket.cookie == info->cookie) result.push_back(socket);
  }
  return result;
}

Result<std::vector<PooledSocket>> Dispatcher::register_sockets(const std::string& label,
                                                               const std::vector<int>& socket_fds,
                                                               const Owner& owner) {
  // What the label's pools hold now: those stay whatever happens.
  std::set<uint64_t> before;
  for (uint32_t destination : STEER_TRY(label_destinations(label)))
    for (const auto& socket : STEER_TRY(sockets(destination))) before.insert(socket.cookie);
  std::vector<PooledSocket> registered;
  for (int fd : socket_fds) {
    auto pooled = register_socket(label, fd, owner);
    if (!pooled) {
      for (const auto& socket : registered)
        if (!before.count(socket.cookie))
          ignore_result(unregister(label, {.cookie = socket.cookie, .pid = {}}),
                        "best effort: the error reported is the registration's");
      return std::unexpected(pooled.error());
    }
    registered.insert(registered.end(), pooled->begin(), pooled->end());
  }
  return registered;
}

Result<size_t> Dispatcher::unregister(const std::string& label, const SocketFilter& filter) {
  // No validation: a label stored by an older steer under older rules can still be removed.
  auto destinations = STEER_TRY(label_destinations(label));
  if (destinations.empty()) return fail(ENOENT, "no label '{}' (steer status lists them)", label);
  auto matches = [&](const PooledSocket& socket) {
    return (!filter.cookie || socket.cookie == *filter.cookie) &&
           (!filter.pid || socket.owner.pid == *filter.pid);
  };
  size_t matching = 0;
  for (uint32_t destination : destinations)
    for (const auto& socket : STEER_TRY(sockets(destination))) matching += matches(socket) ? 1 : 0;
  if (matching == 0)
    return fail(ENOENT, "label '{}' has no registered socket{}", label,
                filter.cookie ? fmt::format(" with cookie {}", *filter.cookie)
                : filter.pid  ? fmt::format(" owned by pid {}", *filter.pid)
                              : "");
  auto change = STEER_TRY(Change::begin(*this, "unregister"));
  size_t removed = 0;
  for (uint32_t destination : destinations) {
    bool changed = false;
    for (const auto& socket : STEER_TRY(sockets(destination))) {
      if (!matches(socket)) continue;
      uint32_t key = steer_socket_key(destination, socket.slot);
      // Out of the SOCKMAP first (no longer steered), then its record (no longer listed).
      if (auto erased = state_.sockets().erase(key); !erased && erased.error().code != ENOENT &&
                                                      erased.error().code != EINVAL)
        return std::unexpected(erased.error());
      if (auto erased = state_.slots().erase(&key); !erased && erased.error().code != ENOENT)
        return std::unexpected(erased.error());
      ++removed;
      changed = true;
    }
    if (changed) {
      STEER_TRY(rebuild_pool(destination));
      STEER_TRY(release_if_unused(destination));
    }
  }
  STEER_TRY(change.commit());
  return removed;
}

Result<std::vector<PooledSocket>> Dispatcher::sockets(uint32_t destination) const {
  std::vector<PooledSocket> result;
  for (uint32_t slot = 0; slot < STEER_POOL_SLOTS; ++slot) {
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
    socket.state = static_cast<steer_slot_state>(meta.state);
    steer_socket_counters counters{};
    if (state_.socket_counters().lookup(&key, &counters)) socket.selected = counters.selected;
    result.push_back(std::move(socket));
  }
  return result;
}

}  // namespace steer::core
