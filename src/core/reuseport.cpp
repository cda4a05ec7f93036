// Reuseport groups: steer's sk_reuseport program attached to the SO_REUSEPORT groups of a
// label's sockets (`steer reuseport attach|detach`, `register --reuseport`), their records,
// and what the kernel runs for each group, read with the group iterators.
//
// Order of the steps, so that what status lists is what the kernel does after a kill at any
// point: attach sets the program first and records the group after (a kill between leaves
// steer's program with no record: it passes every connection to the kernel's hash, status
// shows the group as not steered, and attaching again completes it); detach removes the
// record first (the program goes idle at once), then the program.
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "base/netns.h"
#include "core/dispatcher_internal.h"
#include "core/socket_source.h"

namespace steer::core {

namespace {

constexpr const char* kProgramName = "steer_reuseport";

steer_group_key group_key(Protocol protocol, const SocketAddress& address) {
  steer_group_key key{};
  key.protocol = static_cast<uint8_t>(protocol);
  key.family = static_cast<uint8_t>(address.family());
  key.port = address.port();
  address_words(address, key.addr);
  return key;
}

SocketAddress address_of(const steer_group_key& key) {
  return address_from(key.family, key.addr, key.port);
}

bool same_group(const steer_group_key& a, const steer_group_key& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

struct GroupKeyLess {
  bool operator()(const steer_group_key& a, const steer_group_key& b) const {
    return std::memcmp(&a, &b, sizeof(a)) < 0;
  }
};

std::string describe(Protocol protocol, const SocketAddress& address) {
  return fmt::format("{} {}", protocol == Protocol::Udp ? "udp" : "tcp", address.to_string());
}

// The name of a loaded program: steer's own is known by it.
std::string program_name(uint32_t id) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) return {};
  bpf_prog_info info{};
  __u32 length = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) return {};
  return info.name;
}

// Reads every record an iterator writes.
Result<void> read_iterator(const bpf_program* program, std::map<uint64_t, steer_group_member>& out) {
  bpf::Link link(bpf_program__attach_iter(program, nullptr));
  if (!link.valid()) return fail_errno("attach the reuseport group iterator");
  Fd iterator(bpf_iter_create(link.fd()));
  if (!iterator) return fail_errno("read the reuseport groups (bpf_iter_create)");
  steer_group_member records[256];
  size_t pending = 0;  // bytes of a record split across reads
  while (true) {
    ssize_t length = ::read(iterator.get(), reinterpret_cast<char*>(records) + pending,
                            sizeof(records) - pending);
    if (length < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return fail_errno("read the reuseport groups");
    }
    if (length == 0) return {};
    size_t bytes = pending + static_cast<size_t>(length);
    size_t whole = bytes / sizeof(steer_group_member);
    for (size_t i = 0; i < whole; ++i) out[records[i].cookie] = records[i];
    pending = bytes % sizeof(steer_group_member);
    if (pending)
      std::memmove(records, reinterpret_cast<char*>(records) + whole * sizeof(steer_group_member),
                   pending);
  }
}

}  // namespace

Result<std::unique_ptr<ReuseportProgram>> ReuseportProgram::load(const State& state,
                                                                  Parts parts) {
  auto skeleton = STEER_TRY(bpf::Skeleton<reuseport>::open("reuseport"));
  STEER_TRY(state.reuse_maps(skeleton->obj));
  // Reading the groups needs only the iterators, which the verifier checks in a few
  // milliseconds; the select-or-migrate program takes most of a second.
  if (parts == Parts::IteratorsOnly)
    bpf_program__set_autoload(skeleton->progs.steer_reuseport, false);
  STEER_TRY(skeleton.load());
  return std::unique_ptr<ReuseportProgram>(new ReuseportProgram(std::move(skeleton)));
}

Result<ReuseportProgram*> Dispatcher::reuseport_program() const {
  if (!reuseport_program_)
    reuseport_program_ = STEER_TRY(ReuseportProgram::load(state_, ReuseportProgram::Parts::All));
  return reuseport_program_.get();
}

Result<std::map<uint64_t, steer_group_member>> Dispatcher::group_members() const {
  // The full program when it is loaded already (attach), else the iterators alone.
  if (!reuseport_program_ && !group_iterators_)
    group_iterators_ =
        STEER_TRY(ReuseportProgram::load(state_, ReuseportProgram::Parts::IteratorsOnly));
  auto* program = reuseport_program_ ? reuseport_program_.get() : group_iterators_.get();
  // An iterator walks the sockets of the namespace it is created in.
  auto entered = STEER_TRY(ScopedNetns::enter(state_.netns()));
  std::map<uint64_t, steer_group_member> members;
  STEER_TRY(read_iterator((*program)->progs.steer_groups_tcp, members));
  STEER_TRY(read_iterator((*program)->progs.steer_groups_udp, members));
  return members;
}

Result<std::vector<ReuseportGroup>> Dispatcher::reuseport_groups(const std::string& label) const {
  auto records = STEER_TRY((read_all<steer_group_key, steer_group>(state_.reuseport_groups())));
  std::vector<ReuseportGroup> groups;
  if (records.empty()) return groups;
  auto members = STEER_TRY(group_members());
  for (const auto& [key, record] : records) {
    ReuseportGroup group;
    group.label = label_name(record.label_id).value_or("");
    if (!label.empty() && group.label != label) continue;
    group.protocol = static_cast<Protocol>(key.protocol);
    group.address = address_of(key);
    group.record = record;
    // The group as the kernel has it: found through a registered member.
    std::set<uint64_t> registered;
    for (uint32_t destination : label_destinations(group.label).value_or(std::vector<uint32_t>{})) {
      for (const auto& socket : sockets(destination).value_or(std::vector<PooledSocket>{})) {
        if (!same_group(group_key(group.protocol, socket.address), key)) continue;
        auto member = members.find(socket.cookie);
        if (member == members.end()) continue;
        registered.insert(socket.cookie);
        group.group_id = member->second.group_id;
        group.kernel_program_id = member->second.program_id;
      }
    }
    group.registered = registered.size();
    if (group.registered)  // the kernel's ids start at 0
      for (const auto& [cookie, member] : members) group.members += member.group_id == group.group_id;
    groups.push_back(std::move(group));
  }
  std::sort(groups.begin(), groups.end(), [](const ReuseportGroup& a, const ReuseportGroup& b) {
    return std::make_tuple(a.label, a.address.port(), a.protocol) < std::make_tuple(b.label, b.address.port(), b.protocol);
  });
  return groups;
}

Result<std::vector<ReuseportGroup>> Dispatcher::attach_reuseport(const std::string& label,
                                                                 const std::vector<int>& fds,
                                                                 bool replace) {
  auto label_id = STEER_TRY(find_label(label));
  if (!label_id) return fail(ENOENT, "no label '{}': register its sockets first", label);
  std::set<uint64_t> cookies;
  for (uint32_t destination : STEER_TRY(label_destinations(label)))
    for (const auto& socket : STEER_TRY(sockets(destination))) cookies.insert(socket.cookie);

  // One member of each group, checked before anything changes.
  struct Target {
    int fd;
    Protocol protocol;
    SocketAddress address;
    uint64_t cookie;
  };
  std::map<steer_group_key, Target, GroupKeyLess> targets;
  for (int fd : fds) {
    auto info = STEER_TRY(inspect_socket(fd));
    auto protocol = static_cast<Protocol>(info.protocol);
    if (!cookies.contains(info.cookie))
      return fail(EINVAL, "socket {} (cookie {}) is not registered under '{}': register it "
                          "first", describe(protocol, info.local), info.cookie, label);
    if (!info.reuseport)
      return fail(EINVAL, "socket {} is in no reuseport group (SO_REUSEPORT was not set before "
                          "bind): steer's sk_lookup program steers it already; `reuseport "
                          "attach` is for services that bind their own SO_REUSEPORT sockets",
                  describe(protocol, info.local));
    targets.emplace(group_key(protocol, info.local), Target{fd, protocol, info.local, info.cookie});
  }
  if (targets.empty())
    return fail(ENOENT, "'{}' has no socket in a reuseport group to attach to", label);

  auto members = STEER_TRY(group_members());
  auto* program = STEER_TRY(reuseport_program());
  const bpf_program* prog = (*program)->progs.steer_reuseport;
  bpf_prog_info info{};
  __u32 info_length = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &info_length) != 0)
    return fail_errno("read the reuseport program's id");
  for (const auto& [key, target] : targets) {
    auto member = members.find(target.cookie);
    uint32_t running = member == members.end() ? 0 : member->second.program_id;
    if (running == 0 || replace) continue;
    std::string name = program_name(running);
    if (name != kProgramName)
      return fail(EBUSY, "the reuseport group of {} already runs BPF program {} ('{}'), not "
                         "steer's: pass --replace to take it over, or detach that program first",
                  describe(target.protocol, target.address), running, name);
    steer_group record{};
    if (state_.reuseport_groups().lookup(&key, &record) && record.label_id != *label_id)
      return fail(EBUSY, "the reuseport group of {} is steered for label '{}': `steer "
                         "reuseport detach {}` first, or pass --replace",
                  describe(target.protocol, target.address),
                  label_name(record.label_id).value_or("?"), label_name(record.label_id).value_or("?"));
  }

  for (const auto& [key, target] : targets) {
    STEER_TRY(bpf::attach_reuseport(prog, target.fd));
    steer_group record{};
    auto existing = state_.reuseport_groups().lookup(&key, &record);
    if (!existing || record.label_id != *label_id) record = steer_group{};  // counters restart
    record.label_id = *label_id;
    record.program_id = info.id;
    record.attached_unix = static_cast<uint64_t>(std::time(nullptr));
    if (auto recorded = state_.reuseport_groups().update(&key, &record, bpf::UpdateMode::Any);
        !recorded) {
      if (recorded.error().code == E2BIG)
        return fail(E2BIG, "steer serves {} reuseport groups at most: detach groups no longer "
                           "used", STEER_MAX_GROUPS);
      return std::unexpected(recorded.error());
    }
  }
  auto all = STEER_TRY(reuseport_groups(label));
  std::vector<ReuseportGroup> attached;
  for (auto& group : all)
    if (targets.contains(group_key(group.protocol, group.address))) attached.push_back(std::move(group));
  return attached;
}

Result<std::vector<ReuseportGroup>> Dispatcher::detach_reuseport(const std::string& label,
                                                                 const std::vector<int>& fds) {
  auto groups = STEER_TRY(reuseport_groups(label));
  if (groups.empty()) return fail(ENOENT, "steer serves no reuseport group of '{}'", label);
  std::map<steer_group_key, int, GroupKeyLess> reachable;
  for (int fd : fds)
    if (auto info = inspect_socket(fd))
      reachable.emplace(group_key(static_cast<Protocol>(info->protocol), info->local), fd);
  for (auto& group : groups) {
    auto key = group_key(group.protocol, group.address);
    if (auto erased = state_.reuseport_groups().erase(&key); !erased && erased.error().code != ENOENT)
      return std::unexpected(erased.error());
    auto member = reachable.find(key);
    // Only steer's own program is taken off: one put there since is not steer's to remove.
    if (member == reachable.end() || !group.steered()) continue;
    int unused = 0;  // the kernel wants an int-sized value, and reads none
    if (::setsockopt(member->second, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused,
                     sizeof(unused)) != 0 && errno != ENOENT)
      return fail_errno("detach steer's program from the reuseport group of " +
                        describe(group.protocol, group.address));
  }
  // What the kernel runs now, read back rather than assumed.
  auto members = STEER_TRY(group_members());
  for (auto& group : groups) {
    if (group.members == 0) continue;
    group.kernel_program_id = 0;
    for (const auto& [cookie, member] : members)
      if (member.group_id == group.group_id) group.kernel_program_id = member.program_id;
  }
  return groups;
}

Result<std::vector<Fd>> Dispatcher::reach_group_members(const std::string& label) const {
  std::map<uint64_t, pid_t> owners;
  for (uint32_t destination : STEER_TRY(label_destinations(label)))
    for (const auto& socket : STEER_TRY(sockets(destination)))
      owners.emplace(socket.cookie, socket.owner.pid);
  // One reachable member with SO_REUSEPORT per group.
  std::map<steer_group_key, Fd, GroupKeyLess> members;
  for (auto& [cookie, fd] : take_sockets_by_cookie(owners)) {
    auto info = inspect_socket(fd.get());
    if (!info || !info->reuseport) continue;
    members.try_emplace(group_key(static_cast<Protocol>(info->protocol), info->local), std::move(fd));
  }
  std::vector<Fd> found;
  for (auto& [key, fd] : members) found.push_back(std::move(fd));
  return found;
}

Result<void> Dispatcher::forget_groups(uint32_t label_id) {
  auto records = STEER_TRY((read_all<steer_group_key, steer_group>(state_.reuseport_groups())));
  for (const auto& [key, record] : records)
    if (record.label_id == label_id)
      if (auto erased = state_.reuseport_groups().erase(&key); !erased && erased.error().code != ENOENT)
        return std::unexpected(erased.error());
  return {};
}

}  // namespace steer::core
