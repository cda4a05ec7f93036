// What users do with a loaded dispatcher: labels, bindings, socket pools, status, explain.
// Every method runs under the state's flock (exclusive for changes) and leaves the kernel's
// state consistent after each single map update, so a kill at any point is survivable.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "base/sock_diag.h"
#include "base/socket.h"
#include "core/binding.h"
#include "core/state.h"

namespace steer::core {

struct Destination {
  uint32_t id = 0;
  std::string label;
  int family = 0;  // AF_INET / AF_INET6
  Protocol protocol = Protocol::Tcp;
  uint32_t policy = STEER_POLICY_HASH;  // the live one (enum steer_policy)
  std::array<uint64_t, STEER_COUNTERS> counters{};
};

struct BoundBinding {
  Binding binding;
  uint32_t destination = 0;
};

// Who registers a socket: recorded with it and shown by status.
struct Owner {
  pid_t pid = 0;
  uid_t uid = 0;
  std::string command;  // /proc/<pid>/comm
  static Owner of_process(pid_t pid);
};

// Would the kernel hand new connections to this socket? (What the dispatcher's own test, run
// by the pool audit, answers.)
enum class SocketHealth { Usable, Refused };

struct PooledSocket {
  uint32_t destination = 0;
  uint32_t slot = 0;
  uint64_t cookie = 0;
  Owner owner;
  SocketAddress address;  // what the socket is bound to
  // As the program sees it now (the live pool): active, draining, or standby (active with
  // weight 0: used only when no weighted member takes a connection).
  steer_slot_state state = STEER_SLOT_ACTIVE;
  uint32_t weight = 1;
  uint32_t generation = 0;
  uint16_t priority = 0;  // the `first` policy's order
  bool standby() const { return state == STEER_SLOT_ACTIVE && weight == 0; }
  // What waits in its queue (status only; from sock_diag): a TCP listener's accepted-but-not-
  // yet-accept()ed connections (and its backlog), a UDP socket's bytes. A draining socket
  // whose queue is empty has nothing left for its owner to take.
  std::optional<SocketQueue> queue;
  uint64_t selected = 0;  // connections or datagrams steered to it
  // Its established connections, as the sockops program counts them (`steer conns track`).
  int64_t established = 0;
  SocketHealth health = SocketHealth::Usable;
  std::string problem;    // why the kernel refuses it, when it does
};

// Which registered sockets a verb acts on (unregister, drain, weight): those that match
// every filter given; none given: all sockets of the label.
struct SocketFilter {
  std::optional<uint64_t> cookie;
  std::optional<pid_t> pid;
  std::optional<uint32_t> generation;
  bool matches(const struct PooledSocket& socket) const;
  std::string describe() const;  // " with cookie 5", " owned by pid 7", "" ...
};

struct Explanation {
  bool steered = false;        // a binding matched
  uint32_t verdict = 0;        // SK_PASS (1) / SK_DROP (0) from the program
  steer_explain record{};      // what the program recorded; cookie: what the kernel selected
  std::optional<BoundBinding> binding;
  std::optional<Destination> destination;
  std::optional<PooledSocket> socket;
  size_t pool_sockets = 0;     // open sockets in the destination's pool
};

struct DestinationStatus {
  Destination destination;
  uint32_t bindings = 0;
  std::vector<PooledSocket> sockets;
};

// A reuseport group steer's sk_reuseport program serves (or served: a record whose program
// the kernel no longer runs is shown as such). Groups are found by their members' bound
// address; what the kernel runs for each is read from the kernel (a socket iterator).
struct ReuseportGroup {
  std::string label;
  Protocol protocol = Protocol::Tcp;
  SocketAddress address;         // what every member is bound to
  steer_group record{};          // steer's record and the program's counters
  uint32_t kernel_program_id = 0;  // the program the kernel runs for the group (0: its hash)
  uint32_t group_id = 0;           // the kernel's id of the group, when members > 0
  size_t members = 0;              // sockets in the group (0: none open, or none registered)
  size_t registered = 0;           // of them, in the label's pools
  // The kernel runs steer's program for the group, as recorded.
  bool steered() const { return kernel_program_id != 0 && kernel_program_id == record.program_id; }
};

// An established connection a registered listener accepted (`steer conns`).
struct Connection {
  uint64_t cookie = 0;
  SocketAddress local, remote;
  uint64_t listener_cookie = 0;
  std::string label;         // of the listener, "" when it left every pool
  uint32_t destination = 0, slot = 0;
  double age_seconds = 0;
};

// Whether connections are counted: the sockops program and where it is attached.
struct ConnectionTracking {
  uint32_t program_id = 0;
  uint64_t cgroup_id = 0;
  std::string cgroup;  // the path given to `steer conns track`, as recorded
};

// Everything `status` shows, read once: the CLI renders it, a daemon will serve it.
struct StatusSnapshot {
  ino_t netns_inode = 0;
  std::string path;
  uint32_t program_id = 0;     // 0: loaded but not attached (an interrupted load or unload)
  steer_meta meta{};
  steer_journal journal{};     // not clean: a change was interrupted; the next change repairs
  size_t binding_count = 0;
  std::optional<std::vector<BoundBinding>> bindings;  // when asked for and few enough
  std::vector<DestinationStatus> destinations;
  std::vector<ReuseportGroup> reuseport_groups;
  std::optional<ConnectionTracking> tracking;  // none: connections are not counted
};

// What a repair found and rebuilt.
struct RepairReport {
  std::string interrupted_verb;   // the command whose kill left the state dirty
  uint32_t interrupted_pid = 0;
  size_t freed_destinations = 0, freed_labels = 0, pruned_sockets = 0;
  bool completed = false;         // past its commit point: the repair finished the change
};

class ExplainProgram;
class ReuseportProgram;

// What a pool's rebuild does with the pool changes of a command under way.
struct PendingSockets {
  uint64_t joining = 0;              // slots written aside that become members
  bool adopt_written_aside = false;  // every slot written aside becomes a member
  // A repair before the commit point: LEAVING marks are cleared, and the members' state and
  // weight and the destination's policy are put back to the live pool's.
  bool undo_pending = false;
};

// A destination's pool as the program sees it now.
struct LivePool {
  steer_destination destination{};
  uint32_t table = 0;  // which of its two tables is live
  steer_pool pool{};
  uint32_t policy = STEER_POLICY_HASH;
};

class Dispatcher {
 public:
  // Opens the state. Exclusive openers first repair what an interrupted change left
  // (docs/architecture.md, "Recovery"); shared openers read it as it is.
  static Result<Dispatcher> open(const Target& target, LockMode mode);
  // Brings pinned state of an older release up to this one (`steer upgrade`): new maps,
  // migration steps, the program swapped through its link. Every step may be killed and redone.
  struct UpgradeReport {
    uint32_t old_program_id = 0;
    std::vector<std::string> steps;  // one line each, for the user
  };
  static Result<UpgradeReport> upgrade(const Target& target);

  explicit Dispatcher(State state);
  ~Dispatcher();
  Dispatcher(Dispatcher&&) noexcept;
  Dispatcher& operator=(Dispatcher&&) noexcept;

  // Bindings.
  Result<void> bind(const Binding& binding);
  Result<void> unbind(const Binding& binding);
  Result<std::vector<BoundBinding>> bindings() const;
  // The same, one at a time (a listing of 1M need not hold 1M Bindings): every map is read
  // before the first call of `visit`, so on an error nothing was visited.
  Result<void> for_each_binding(const std::function<void(const BoundBinding&)>& visit) const;
  Result<size_t> binding_count() const;
  // Replaces every binding at once: the new set is built aside and switched in with one
  // update; on any error the old set stays, untouched.
  Result<void> replace_bindings(const std::vector<Binding>& bindings);

  // Sockets. A dual-stack IPv6 socket joins the label's IPv4 and IPv6 pools.
  Result<std::vector<PooledSocket>> register_socket(const std::string& label, int socket_fd,
                                                    const Owner& owner);
  // How sockets join (register_sockets: `how`).
  struct Joining {
    // The generation, by default the label's newest (1 for a label with no sockets), so a
    // plain register joins the running generation.
    std::optional<uint32_t> generation;
    uint32_t weight = 1;  // 0: standby
    // For a reuseport group (attach_reuseport follows): each socket must have SO_REUSEPORT,
    // checked with the rest before anything is written.
    bool reuseport = false;
    // What errors call each socket, by position: "socket #2 of the request"; none: "fd N",
    // the caller's own number.
    std::vector<std::string> names;
  };
  // Several sockets, all or nothing: every pool they join switches to its new members in
  // one update; an error or a kill before the commit point leaves none of them registered.
  Result<std::vector<PooledSocket>> register_sockets(const std::string& label,
                                                     const std::vector<int>& socket_fds,
                                                     const Owner& owner, const Joining& joining);
  Result<std::vector<PooledSocket>> register_sockets(const std::string& label,
                                                     const std::vector<int>& socket_fds,
                                                     const Owner& owner) {
    return register_sockets(label, socket_fds, owner, Joining{});
  }
  // The newest generation among the label's sockets (0 when it has none).
  Result<uint32_t> newest_generation(const std::string& label) const;
  Result<size_t> unregister(const std::string& label, const SocketFilter& filter);

  // Rebuilds the pools that hold a socket its owner closed (the kernel took it out of the
  // SOCKMAP), so that their tables stop pointing at it now rather than at the next change.
  // Returns how many closed sockets left their pools.
  Result<size_t> prune_closed();

  // Policies, weights, drain and generations. Each switches every pool of the label at once.
  Result<void> set_policy(const std::string& label, steer_policy policy);
  static constexpr uint32_t kMaxWeight = 1000;
  Result<size_t> set_weight(const std::string& label, const SocketFilter& filter, uint32_t weight);
  // A draining socket gets no new connection, from any path of the program.
  Result<size_t> drain(const std::string& label, const SocketFilter& filter);
  Result<size_t> undrain(const std::string& label, const SocketFilter& filter);
  struct Promotion {
    size_t promoted = 0, drained = 0;  // sockets of the generation, and of the others
  };
  // Generation G active, every other one draining, in one step.
  Result<Promotion> promote(const std::string& label, uint32_t generation);

  // Reuseport groups (reuseport.cpp). Attaches steer's sk_reuseport program (select or
  // migrate) to the group of each socket given (one member is enough; each must be
  // registered under the label and have SO_REUSEPORT), and records the group for the label.
  // A group that runs another program is refused unless `replace`.
  Result<std::vector<ReuseportGroup>> attach_reuseport(const std::string& label,
                                                       const std::vector<int>& socket_fds,
                                                       bool replace);
  // Gives the label's groups back to the kernel's hash: the record goes first (the program
  // then passes every connection to the hash), then the program is detached through a member
  // found in `socket_fds` (a group whose member steer cannot reach keeps an idle program).
  Result<std::vector<ReuseportGroup>> detach_reuseport(const std::string& label,
                                                       const std::vector<int>& socket_fds);
  // The groups steer records, for one label or all (""), with what the kernel runs.
  Result<std::vector<ReuseportGroup>> reuseport_groups(const std::string& label) const;
  // Copies of one registered socket of each of the label's reuseport groups, taken from the
  // processes that registered them (pidfd_getfd), for `steer reuseport attach|detach`.
  Result<std::vector<Fd>> reach_group_members(const std::string& label) const;

  // Established connections (conns.cpp). Attaches the sockops program that counts them to
  // the cgroup at `cgroup` (a cgroup v2 directory holding the services; their listeners'
  // children are counted), through a link pinned with the state.
  Result<ConnectionTracking> track_connections(const std::string& cgroup);
  Result<void> untrack_connections();
  Result<std::optional<ConnectionTracking>> connection_tracking() const;
  Result<std::vector<Connection>> connections(const std::string& label) const;

  // Status.
  Result<std::vector<Destination>> destinations() const;
  Result<std::vector<PooledSocket>> sockets(uint32_t destination) const;
  Result<StatusSnapshot> status(const std::string& label, size_t max_bindings_listed) const;

  // Runs the explain build of the program on a made-up lookup (BPF_PROG_TEST_RUN).
  Result<Explanation> explain(Protocol protocol, const SocketAddress& source,
                              const SocketAddress& destination);

  // Rebuilds every derived value (masks, counts, the registry's index, Maglev tables) from
  // its source of truth, prunes sockets the kernel refuses and frees unused labels and
  // destinations. Run by exclusive openers after an interrupted change. Pool changes under
  // way are undone or completed as the journal's phase says; `Adopt` completes them whatever
  // it says (an upgrade from schema 1, whose pools had no members: every socket joins).
  enum class PendingPools { AsJournalSays, Adopt };
  Result<RepairReport> repair(PendingPools pending = PendingPools::AsJournalSays);

  // Things the last calls did on the side (a socket pruned, a repair), for the CLI to print.
  const std::vector<std::string>& notices() const { return notices_; }
  const State& state() const { return state_; }

 private:
  class Change;
  friend class Change;

  // registry.cpp: labels and destinations, found by key, freed when unused.
  Result<std::optional<uint32_t>> find_label(const std::string& label) const;
  Result<uint32_t> acquire_label(const std::string& label);
  Result<std::optional<uint32_t>> find_destination(const std::string& label, int family,
                                                   Protocol protocol) const;
  Result<uint32_t> acquire_destination(const std::string& label, int family, Protocol protocol);
  Result<Destination> destination(uint32_t id) const;
  Result<std::string> label_name(uint32_t id) const;
  // Every destination of a label (at most one per family and protocol).
  Result<std::vector<uint32_t>> label_destinations(const std::string& label) const;
  // Makes a label unfindable, then frees its id.
  Result<void> free_label(uint32_t id, const steer_label_name& name);
  Result<void> count_bindings(uint32_t destination, int delta);
  // Frees the destination if no binding names it and no socket is in its pool, then its
  // label if no destination is left. Returns whether it freed the destination.
  Result<bool> release_if_unused(uint32_t destination);

  // bindings.cpp
  Result<steer_control> read_control() const;
  Result<void> set_prefix_count(uint32_t set, const Binding& binding, int delta);
  Result<void> check_bindable(uint32_t set, const Binding& binding, uint32_t destination,
                              bool* already_bound) const;
  Result<void> clear_set(uint32_t set);
  Result<void> recount_bindings();
  // Writes one set's per-length counts (STEER_PREFIX_COUNT_KEYS_PER_SET of them) in a batch.
  Result<void> write_prefix_counts(uint32_t set, const std::vector<steer_prefix_count>& counts);
  // The per-port masks. A single-port binding counts in port_counts and sets its bit while
  // one is left; a range sets its bit on every port it covers, and its removal recomputes
  // those ports from the set's remaining ranges.
  Result<void> count_port_binding(const Binding& binding, int delta);
  Result<void> mark_range(const Binding& binding);
  Result<void> unmark_range(uint32_t set, const Binding& binding);
  // Writes the masks that differ from `current` (all of them: STEER_PORT_MASK_KEYS).
  Result<void> write_port_masks(const std::vector<steer_prefix_mask>& wanted,
                                const std::vector<steer_prefix_mask>& current);
  Result<std::vector<steer_prefix_mask>> read_port_masks() const;
  // Replaces every port count.
  Result<void> write_port_counts(const std::vector<steer_port_count_key>& keys,
                                 const std::vector<uint32_t>& counts);

  // pools.cpp
  // Writes each pool's next members and table aside (its idle table), then switches them all
  // with one update (the pool epoch). The next members: the live ones and those joining,
  // less those leaving, closed, or refused by the kernel (with a notice). Then removes the
  // entries of every slot that is no member.
  Result<void> rebuild_pools(const std::vector<std::pair<uint32_t, PendingSockets>>& pools);
  Result<void> rebuild_pool(uint32_t destination, const PendingSockets& pending = {}) {
    return rebuild_pools({{destination, pending}});
  }
  Result<LivePool> live_pool(uint32_t destination) const;
  Result<LivePool> live_pool(uint32_t destination, uint32_t pools_epoch) const;
  Result<uint64_t> live_members(uint32_t destination) const;
  // Changes the records of the label's sockets that match (aside), passes the commit point,
  // and switches every pool of the label: unregister, drain, weight, promote.
  Result<size_t> change_sockets(const std::string& label, const char* verb,
                                const SocketFilter& filter,
                                const std::function<void(steer_slot&)>& change,
                                bool release_unused = false);
  Result<std::vector<steer_audit_entry>> audit_pool(uint32_t destination) const;
  Result<ExplainProgram*> explain_program() const;

  State state_;
  std::vector<std::string> notices_;
  // Free label and destination ids, read once (one batch) and kept while this process
  // holds the lock: a load-bindings creating thousands of labels reads them once.
  std::optional<std::set<uint32_t>> free_labels_, free_destinations_;
  mutable std::unique_ptr<ExplainProgram> explain_program_;  // loaded on first use
  mutable std::unique_ptr<ReuseportProgram> reuseport_program_;  // loaded on first use
  mutable std::unique_ptr<ReuseportProgram> group_iterators_;    // the iterators alone
  Result<ReuseportProgram*> reuseport_program() const;
  // Every socket of the namespace in a reuseport group, by cookie (the group iterators).
  Result<std::map<uint64_t, steer_group_member>> group_members() const;
  // Forgets the groups of a label that is being freed.
  Result<void> forget_groups(uint32_t label_id);
  // Tags a registered TCP listener so that its children are counted in its slots.
  Result<void> tag_listener(int socket_fd, uint64_t cookie);
};

// The sentence status prints for a socket the kernel refuses (from the audit's answer).
std::string refusal_reason(int assign_error, uint32_t tcp_state, Protocol protocol);

}  // namespace steer::core
