// What users do with a loaded dispatcher: labels, bindings, socket pools, status, explain.
// Every method runs under the state's flock (exclusive for changes) and leaves the kernel's
// state consistent after each single map update, so a kill at any point is survivable.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/socket.h"
#include "core/binding.h"
#include "core/state.h"

namespace steer::core {

struct Destination {
  uint32_t id = 0;
  std::string label;
  int family = 0;  // AF_INET / AF_INET6
  Protocol protocol = Protocol::Tcp;
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

struct PooledSocket {
  uint32_t destination = 0;
  uint32_t slot = 0;
  uint64_t cookie = 0;
  Owner owner;
  SocketAddress address;  // what the socket is bound to
  steer_slot_state state = STEER_SLOT_ACTIVE;
  uint64_t selected = 0;  // connections or datagrams steered to it
};

// Which registered sockets `unregister` removes.
struct SocketFilter {
  std::optional<uint64_t> cookie;
  std::optional<pid_t> pid;  // none of the two: all sockets of the label
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

class Dispatcher {
 public:
  static Result<Dispatcher> open(const Target& target, LockMode mode);
  explicit Dispatcher(State state) : state_(std::move(state)) {}

  // Bindings.
  Result<void> bind(const Binding& binding);
  Result<void> unbind(const Binding& binding);
  Result<std::vector<BoundBinding>> bindings() const;
  Result<size_t> binding_count() const;
  // Replaces every binding at once: the new set is built aside and switched in with one
  // update; on any error the old set stays, untouched.
  Result<void> replace_bindings(const std::vector<Binding>& bindings);

  // Sockets. A dual-stack IPv6 socket joins the label's IPv4 and IPv6 pools.
  Result<std::vector<PooledSocket>> register_socket(const std::string& label, int socket_fd,
                                                    const Owner& owner);
  // Several sockets, all or nothing: on an error the ones this call added are taken out again.
  Result<std::vector<PooledSocket>> register_sockets(const std::string& label,
                                                     const std::vector<int>& socket_fds,
                                                     const Owner& owner);
  Result<size_t> unregister(const std::string& label, const SocketFilter& filter);

  // Status.
  Result<std::vector<Destination>> destinations() const;
  Result<std::vector<PooledSocket>> sockets(uint32_t destination) const;

  // Runs the explain build of the program on a made-up lookup (BPF_PROG_TEST_RUN).
  Result<Explanation> explain(Protocol protocol, const SocketAddress& source,
                              const SocketAddress& destination);

  const State& state() const { return state_; }

 private:
  Result<steer_control> read_control() const;
  Result<uint32_t> label_id(const std::string& label, bool create);
  Result<std::string> label_name(uint32_t id) const;
  Result<uint32_t> destination_id(const std::string& label, int family, Protocol protocol,
                                  bool create);
  Result<Destination> destination(uint32_t id) const;
  Result<void> set_prefix_count(uint32_t set, const Binding& binding, int delta);
  Result<void> rebuild_pool(uint32_t destination);
  // Adds one binding to a set; with check_only, only says whether it could.
  Result<void> bind_in_set(uint32_t set, const Binding& binding, uint32_t destination,
                           bool check_only);
  Result<void> clear_set(uint32_t set);

  State state_;
};

}  // namespace steer::core
