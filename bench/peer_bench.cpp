// steer's dispatcher beside its nearest peer, cloudflare/tubular: a program that does tubular's
// per-packet work (bench/peers/lpm_peer.bpf.c, "tubular-like"; bench/peers/README.md says how
// it was checked against tubular's own), its maps filled as tubular's Go control plane fills
// them. One process, one fresh namespace, the same bindings and the same lookups for both,
// and an empty sk_lookup program for the floor; the BPF_PROG_TEST_RUN calls alternate
// between the three, so noise on the machine hits all alike. Then real connects.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "base/netns.h"
#include "benches.h"
#include "bpf/skeleton.h"
#include "bpf/test_run.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/state.h"
#include "lpm_peer.skel.h"
#include "peers/lpm_peer.h"
#include "pool_lookup.skel.h"
#include "traffic.h"

namespace steer::bench {

namespace {

constexpr uint32_t kRepeat = 200000;  // runs per BPF_PROG_TEST_RUN call
constexpr int kRounds = 5;            // calls per program and figure; the median is reported

// The upstream commit the tubular-like program was checked against (bench/peers/README.md).
constexpr const char* kTubularCommit = "3581799";

// ---- the tubular-like program's maps, as tubular's Go code writes them ---------------------
// cilium/ebpf writes Go structs field by field in native byte order, without padding: the
// layouts of peers/lpm_peer.h.
static_assert(sizeof(lpm_peer_key) == 23);
static_assert(sizeof(lpm_peer_binding) == 8);
static_assert(sizeof(lpm_peer_destination) == 257);
static_assert(sizeof(lpm_peer_allocation) == 8);
static_assert(sizeof(lpm_peer_counters) == 24);

lpm_peer_destination peer_destination(const std::string& label, int domain, int protocol) {
  lpm_peer_destination key{};
  if (label.empty() || label.size() > sizeof(key.label)) die("tubular labels are 1..255 bytes");
  std::memcpy(key.label, label.data(), label.size());
  key.domain = static_cast<uint8_t>(domain);
  key.protocol = static_cast<uint8_t>(protocol);
  return key;
}

// tubular's newBindingKey.
lpm_peer_key peer_binding_key(const core::Binding& binding) {
  if (!binding.ports.is_single() && !binding.ports.is_all())
    die("tubular binds one port or all of them, not " + binding.to_string());
  lpm_peer_key key{};
  key.protocol = static_cast<uint8_t>(binding.protocol);
  key.port = binding.ports.is_all() ? LPM_PEER_ALL_PORTS : binding.ports.first;
  auto* ip = reinterpret_cast<uint8_t*>(key.addr);
  if (binding.prefix.family == AF_INET) {
    key.prefixlen = LPM_PEER_HEADER_BITS + LPM_PEER_V4_MAPPED_BITS + binding.prefix.length;
    ip[10] = ip[11] = 0xff;
    std::memcpy(ip + 12, binding.prefix.bytes.data(), 4);
  } else {
    key.prefixlen = LPM_PEER_HEADER_BITS + binding.prefix.length;
    std::memcpy(ip, binding.prefix.bytes.data(), 16);
  }
  return key;
}

// The tubular-like program and its maps, driven as tubular's Dispatcher (internal/dispatcher.go)
// drives its own, map call for map call where this benchmark uses it, so the maps end up as
// `tubectl load-bindings` would leave them.
class LpmPeer {
 public:
  // CreateDispatcher, without the pins (tubular pins its maps in its state directory) and the
  // attach.
  static LpmPeer load() {
    auto skeleton = check(bpf::Skeleton<lpm_peer>::open_and_load("lpm_peer"), "load the tubular-like program");
    uint32_t sockets = bpf_map__max_entries(skeleton->maps.peer_sockets);
    if (bpf_map__max_entries(skeleton->maps.peer_dests) != sockets ||
        bpf_map__max_entries(skeleton->maps.peer_counters) != sockets)
      die("the tubular-like program's destinations and counters must be as large as its socket map");
    return LpmPeer(std::move(skeleton));
  }

  bpf_program* program() const { return skeleton_->progs.lpm_peer; }
  int program_fd() const { return bpf_program__fd(program()); }
  uint32_t max_bindings() const { return bpf_map__max_entries(skeleton_->maps.peer_trie); }

  // RegisterSocket: the destination is (label, SO_DOMAIN, SO_PROTOCOL) of the socket.
  void register_socket(const std::string& label, int socket_fd) {
    int domain = socket_option(socket_fd, SO_DOMAIN), protocol = socket_option(socket_fd, SO_PROTOCOL);
    auto alloc = allocation(peer_destination(label, domain, protocol));
    uint64_t value = static_cast<uint32_t>(socket_fd);
    if (bpf_map_update_elem(sockets(), &alloc.destination, &value, BPF_EXIST) != 0) {
      if (errno != ENOENT || bpf_map_update_elem(sockets(), &alloc.destination, &value, BPF_NOEXIST) != 0)
        die(fmt::format("tubular-like: update socket map: {}", std::strerror(errno)));
    }
  }

  // ReplaceBindings into an empty dispatcher: AddBinding for each binding. (tubular's Go code
  // also diffs against the trie, empty here, and sorts the additions; that is userspace only.)
  void add_bindings(const std::vector<core::Binding>& bindings, size_t from = 0) {
    for (size_t i = from; i < bindings.size(); ++i) add_binding(bindings[i]);
  }

  // The lookups counted in destination `id`, summed over CPUs.
  uint64_t lookups(uint32_t id) const {
    std::vector<lpm_peer_counters> per_cpu(libbpf_num_possible_cpus());
    if (bpf_map_lookup_elem(counters(), &id, per_cpu.data()) != 0) die("read the tubular-like counters");
    uint64_t sum = 0;
    for (const auto& cpu : per_cpu) sum += cpu.lookups;
    return sum;
  }

  uint32_t destination_id(const std::string& label, int domain) const {
    auto key = peer_destination(label, domain, IPPROTO_TCP);
    lpm_peer_allocation alloc{};
    if (bpf_map_lookup_elem(destinations(), &key, &alloc) != 0) die("tubular-like: no such destination");
    return alloc.destination;
  }

 private:
  explicit LpmPeer(bpf::Skeleton<lpm_peer> skeleton) : skeleton_(std::move(skeleton)) {}

  int bindings() const { return bpf_map__fd(skeleton_->maps.peer_trie); }
  int destinations() const { return bpf_map__fd(skeleton_->maps.peer_dests); }
  int sockets() const { return bpf_map__fd(skeleton_->maps.peer_sockets); }
  int counters() const { return bpf_map__fd(skeleton_->maps.peer_counters); }

  static int socket_option(int fd, int option) {
    int value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) != 0) die("getsockopt");
    return value;
  }

  // AddBinding.
  void add_binding(const core::Binding& binding) {
    auto key = peer_binding_key(binding);
    // The trie answers with the best match: only the same prefix length means a replacement.
    lpm_peer_binding old{};
    if (bpf_map_lookup_elem(bindings(), &key, &old) == 0) {
      if (old.prefixlen == key.prefixlen) die("tubular-like: the benchmark only adds new bindings");
    } else if (errno != ENOENT) {
      die(fmt::format("tubular-like: lookup binding: {}", std::strerror(errno)));
    }
    auto destination = peer_destination(binding.label, binding.prefix.family,
                                        static_cast<int>(binding.protocol));
    lpm_peer_binding value{acquire(destination), key.prefixlen};
    if (bpf_map_update_elem(bindings(), &key, &value, BPF_ANY) != 0)
      die(fmt::format("tubular-like: create binding {}: {}", binding.to_string(), std::strerror(errno)));
  }

  // destinations.Acquire: one more binding refers to the destination.
  uint32_t acquire(const lpm_peer_destination& key) {
    auto alloc = allocation(key);
    if (++alloc.references == 0) die("tubular-like: destination counter overflow");
    if (bpf_map_update_elem(destinations(), &key, &alloc, BPF_EXIST) != 0)
      die(fmt::format("tubular-like: acquire destination: {}", std::strerror(errno)));
    return alloc.destination;
  }

  // destinations.getAllocation: the existing one, or the lowest id that is not in use.
  lpm_peer_allocation allocation(const lpm_peer_destination& key) {
    lpm_peer_allocation alloc{};
    if (bpf_map_lookup_elem(destinations(), &key, &alloc) == 0) return alloc;
    std::vector<uint32_t> used;
    lpm_peer_destination current{}, next{};
    for (bool first = true; bpf_map_get_next_key(destinations(), first ? nullptr : &current, &next) == 0;
         first = false) {
      current = next;
      lpm_peer_allocation other{};
      if (bpf_map_lookup_elem(destinations(), &current, &other) != 0) continue;
      uint64_t cookie = 0;
      if (other.references > 0 || bpf_map_lookup_elem(sockets(), &other.destination, &cookie) == 0)
        used.push_back(other.destination);
    }
    std::sort(used.begin(), used.end());
    uint32_t id = 0;
    for (uint32_t taken : used) {
      if (id < taken) break;
      id = taken + 1;
      if (id >= bpf_map__max_entries(skeleton_->maps.peer_sockets)) die("tubular-like: ran out of ids");
    }
    // Its counters start at zero (read, then overwritten, as the Go code does).
    std::vector<lpm_peer_counters> per_cpu(libbpf_num_possible_cpus());
    if (bpf_map_lookup_elem(counters(), &id, per_cpu.data()) != 0) die("tubular-like: lookup counters");
    std::fill(per_cpu.begin(), per_cpu.end(), lpm_peer_counters{});
    if (bpf_map_update_elem(counters(), &id, per_cpu.data(), BPF_ANY) != 0) die("tubular-like: zero counters");
    alloc = {id, 0};
    if (bpf_map_update_elem(destinations(), &key, &alloc, BPF_ANY) != 0)
      die(fmt::format("tubular-like: allocate destination: {}", std::strerror(errno)));
    return alloc;
  }

  bpf::Skeleton<lpm_peer> skeleton_;
};

// The same keys through one BPF_MAP_UPDATE_BATCH into a trie like tubular's: the fastest fill
// the map allows (tubular's Go code does not batch). Seconds, or why it cannot.
std::string batch_fill(const std::vector<core::Binding>& bindings, uint32_t max_entries) {
  LIBBPF_OPTS(bpf_map_create_opts, create_options, .map_flags = BPF_F_NO_PREALLOC);
  Fd trie(bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "bindings", sizeof(lpm_peer_key),
                         sizeof(lpm_peer_binding), max_entries, &create_options));
  if (!trie) die(fmt::format("create an LPM trie: {}", std::strerror(errno)));
  auto start = std::chrono::steady_clock::now();
  std::vector<lpm_peer_key> keys;
  std::vector<lpm_peer_binding> values;
  keys.reserve(bindings.size());
  values.reserve(bindings.size());
  for (const auto& binding : bindings) {
    keys.push_back(peer_binding_key(binding));
    values.push_back({0, keys.back().prefixlen});
  }
  uint32_t count = static_cast<uint32_t>(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, batch_options);
  int ret = bpf_map_update_batch(trie.get(), keys.data(), values.data(), &count, &batch_options);
  double seconds = seconds_since(start);
  if (ret < 0) return fmt::format("no batch: {}", errno_name(-ret));
  if (count != keys.size()) die("the batch update stopped short");
  return fmt::format("{:.3f}", seconds);
}

// ---- the lookups ----------------------------------------------------------------------------

struct Mix {
  std::vector<int> ipv4, ipv6;  // longest first
  const std::vector<int>& lengths(int family) const { return family == AF_INET ? ipv4 : ipv6; }
};

// (c)'s IPv6 analogue keeps IPv4's distances from the full length: 0, 4, 8, 10, 12 bits.
const Mix kMixes[] = {{{32}, {128}},
                      {{32, 24, 16, 8}, {128, 64, 48, 32}},
                      {{32, 28, 24, 22, 20}, {128, 124, 120, 118, 116}}};

std::string mix_label(const std::vector<int>& lengths) {
  std::string text;
  for (int length : lengths) text += fmt::format("{}/{}", text.empty() ? "" : " ", length);
  return text;
}

SocketAddress lookup_source(int family) {
  return check(SocketAddress::parse(family == AF_INET ? "192.0.2.1:40000" : "[2001:db8::1]:40000"),
               "source address");
}

struct Lookup {
  std::string name;
  SocketAddress address;
  bool hit;  // must select the family's listener; else pass with no socket
};

struct Program {
  const char* name;
  int fd;
  bool steers;  // the empty program selects nothing, hit or not
};

// The median ns per run of each program over kRounds calls each, the calls alternating.
std::vector<double> measure(const std::vector<Program>& programs, const Lookup& lookup,
                            int family, uint64_t listener_cookie) {
  auto context = bpf::make_sk_lookup_context(IPPROTO_TCP, lookup_source(family), lookup.address);
  std::vector<std::vector<double>> durations(programs.size());
  for (int round = 0; round < kRounds; ++round) {
    for (size_t n = 0; n < programs.size(); ++n) {
      const auto& program = programs[n];
      auto run = check(bpf::test_run_sk_lookup(program.fd, context, kRepeat),
                       fmt::format("BPF_PROG_TEST_RUN of {} to {}", program.name, lookup.address.to_string()));
      uint64_t expected = program.steers && lookup.hit ? listener_cookie : 0;
      if (run.verdict != SK_PASS || run.selected_cookie != expected)
        die(fmt::format("{}: {} to {} gave verdict {} and socket {}, expected SK_PASS and {}",
                        lookup.name, program.name, lookup.address.to_string(), run.verdict,
                        run.selected_cookie, expected ? "the registered listener" : "none"));
      durations[n].push_back(run.duration_ns);
    }
  }
  std::vector<double> medians;
  for (auto& values : durations) medians.push_back(median(values));
  return medians;
}

std::vector<Lookup> lookups(const NestedBindingSet& set, const std::vector<int>& lengths) {
  std::vector<Lookup> list;
  if (set.longest_hit)
    list.push_back({fmt::format("hit /{}, busy port", lengths.front()), *set.longest_hit, true});
  if (set.shortest_hit)
    list.push_back({fmt::format("hit /{}, busy port", lengths.back()), *set.shortest_hit, true});
  list.push_back({set.longest_hit ? "hit, alone on its port" : "hit, the only binding", set.lone_hit, true});
  list.push_back({"miss, unbound port", set.unbound_port_miss, false});
  list.push_back({"miss, bound port, address not covered", set.bound_port_miss, false});
  return list;
}

std::string ns(double value) { return fmt::format("{:.0f}", value); }

// ---- real connects --------------------------------------------------------------------------

constexpr uint16_t kListenPort = 8080;  // where the steered-to listeners are bound
constexpr uint16_t kSteeredPort = 80;   // where clients connect

}  // namespace

std::string peer_bench(const Options& options) {
  progress("steer vs tubular-like (BPF_PROG_TEST_RUN, then real connects)");
  auto bpffs = enter_fresh_netns();
  auto here = check(NetNamespace::current(), "this namespace");
  // One listener per family; a hit must select it, through either program.
  auto steer = load_steer_with_listeners(bpffs.path(), "bench");
  auto& dispatcher = steer.dispatcher;
  auto& steer_program = steer.program;
  auto& listeners = steer.listeners;
  auto& cookies = steer.cookies;
  auto empty = check(bpf::Skeleton<pool_lookup>::open_and_load("pool_lookup"), "load the empty program");

  std::vector<size_t> sizes = options.quick ? std::vector<size_t>{1, 1000}
                                            : std::vector<size_t>{1, 1000, 100000, 1000000};
  Table lookup_table({"family", "bindings", "mix", "case", "steer ns", "tubular-like ns",
                      "empty-program ns", "steer/tubular-like"});
  Table fill_table({"family", "bindings", "mix", "busy ports × chains per port", "steer replace_bindings s",
                    "tubular-like, tubular's Go code's map calls s",
                    "tubular-like trie, one batch update s"});
  for (int family : {AF_INET, AF_INET6}) {
    int index = family == AF_INET ? 0 : 1;
    for (size_t size : sizes) {
      for (const auto& mix : kMixes) {
        const auto& lengths = mix.lengths(family);
        if (size == 1 && lengths.size() > 1) continue;  // one binding has one length
        auto set = make_nested_binding_set(family, size, lengths, "bench");
        std::string mix_name = mix_label(lengths);

        // Both fills start from empty.
        check(dispatcher.replace_bindings({}), "empty steer's bindings");
        auto start = std::chrono::steady_clock::now();
        check(dispatcher.replace_bindings(set.bindings), "replace steer's bindings");
        double steer_seconds = seconds_since(start);
        auto peer = LpmPeer::load();
        peer.register_socket("bench", listeners[0].get());
        peer.register_socket("bench", listeners[1].get());
        if (size > peer.max_bindings()) die("more bindings than tubular's trie holds");
        start = std::chrono::steady_clock::now();
        peer.add_bindings(set.bindings);
        double peer_seconds = seconds_since(start);
        std::string batch = batch_fill(set.bindings, peer.max_bindings());
        fill_table.add({family_label(family), count_label(size), mix_name,
                        set.chains ? fmt::format("{} × {}", set.busy_ports, std::min(set.chains_per_port, set.chains)) : "-",
                        fmt::format("{:.3f}", steer_seconds), fmt::format("{:.3f}", peer_seconds), batch});
        progress("  {} {} [{}]: filled in {:.2f} s (steer), {:.2f} s (tubular-like), batch {}",
                 family_label(family), count_label(size), mix_name, steer_seconds, peer_seconds, batch);

        std::vector<Program> programs{{"steer", steer_program.get(), true},
                                      {"tubular-like", peer.program_fd(), true},
                                      {"empty program", bpf_program__fd(empty->progs.empty), false}};
        uint64_t peer_lookups_before = peer.lookups(peer.destination_id("bench", family));
        uint64_t hits = 0;
        for (const auto& lookup : lookups(set, lengths)) {
          auto medians = measure(programs, lookup, family, cookies[index]);
          hits += lookup.hit;
          progress("    {}: steer {:.0f} ns, tubular-like {:.0f} ns, empty {:.0f} ns", lookup.name,
                   medians[0], medians[1], medians[2]);
          lookup_table.add({family_label(family), count_label(size), mix_name, lookup.name, ns(medians[0]),
                            ns(medians[1]), ns(medians[2]), fmt::format("{:.2f}", medians[0] / medians[1])});
        }
        // Its own counters saw every hit: the per-destination counters ran too.
        uint64_t counted = peer.lookups(peer.destination_id("bench", family)) - peer_lookups_before;
        if (counted != hits * kRounds * kRepeat)
          die(fmt::format("tubular-like counted {} lookups, expected {}", counted, hits * kRounds * kRepeat));
      }
    }
  }

  // ---- real connects: each program attached to a namespace of its own ----------------------
  progress("  real connects (BPF_ENABLE_STATS)");
  auto owner = core::Owner::of_process(::getpid());
  // steer: attached to this namespace since load.
  Fd steer_listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
  check(dispatcher.register_socket("web", steer_listener.get(), owner), "register 127.0.0.1:8080");
  // tubular-like, filled as tubular's control plane fills it, attached through a bpf_link to
  // its namespace.
  auto peer_ns = check(NetNamespace::create(), "create a namespace");
  Fd peer_listener;
  auto peer = LpmPeer::load();
  {
    auto inside = check(ScopedNetns::enter(peer_ns), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    peer_listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
  }
  peer.register_socket("web", peer_listener.get());
  bpf_link* peer_link = bpf_program__attach_netns(peer.program(), peer_ns.fd());
  if (!peer_link) die("attach the tubular-like program to its namespace");
  // The empty program, with a listener on 0.0.0.0:80 so the same connects land unsteered.
  auto empty_ns = check(NetNamespace::create(), "create a namespace");
  Fd empty_listener;
  {
    auto inside = check(ScopedNetns::enter(empty_ns), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    empty_listener = listen_for_bench(SocketAddress::ipv4(INADDR_ANY, kSteeredPort));
  }
  bpf_link* empty_link = bpf_program__attach_netns(empty->progs.empty, empty_ns.fd());
  if (!empty_link) die("attach the empty program to its namespace");
  AcceptLoop accept_steer(steer_listener.get()), accept_peer(peer_listener.get()),
      accept_empty(empty_listener.get());

  int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats < 0) die(fmt::format("bpf_enable_stats: {}", std::strerror(-stats)));
  Fd stats_fd(stats);
  struct Target {
    const char* name;
    int program_fd;
    const NetNamespace* netns;
  };
  const Target targets[] = {{"steer", steer_program.get(), &here},
                            {"tubular-like", peer.program_fd(), &peer_ns},
                            {"empty program", bpf_program__fd(empty->progs.empty), &empty_ns}};
  const size_t connects = options.quick ? 1000 : 4000;  // a round, per program
  Table connect_table({"program", "bindings (IPv4 /32s, port 80)", "connections go to",
                       "ns per run (median of rounds)", "runs per connection"});
  size_t peer_filled = 0;
  for (size_t size : {sizes.front(), sizes.back()}) {
    auto bindings = loopback_host_bindings(size, kSteeredPort, "web");
    check(dispatcher.replace_bindings(bindings), "replace steer's bindings");
    // tubular's ReplaceBindings adds what the smaller set did not have (same generator).
    peer.add_bindings(bindings, peer_filled);
    peer_filled = bindings.size();
    std::vector<std::vector<double>> per_run(std::size(targets));
    std::vector<uint64_t> runs(std::size(targets));
    for (int round = 0; round < kRounds; ++round) {
      // The same random bound addresses for every program; the order rotates by round.
      std::mt19937 random(round);
      std::vector<SocketAddress> addresses;
      for (size_t i = 0; i < connects; ++i) {
        uint32_t address;
        std::memcpy(&address, bindings[random() % bindings.size()].prefix.bytes.data(), 4);
        addresses.push_back(SocketAddress::ipv4(ntohl(address), kSteeredPort));
      }
      for (size_t n = 0; n < std::size(targets); ++n) {
        size_t which = (n + round) % std::size(targets);
        const auto& target = targets[which];
        RunStats before = read_stats(target.program_fd);
        connect_in(*target.netns, connects, [&](size_t i) { return addresses[i]; });
        RunStats after = read_stats(target.program_fd);
        uint64_t count = after.run_count - before.run_count;
        if (count == 0) die(fmt::format("{} did not run: stats are off?", target.name));
        per_run[which].push_back(double(after.run_time_ns - before.run_time_ns) / double(count));
        runs[which] += count;
      }
    }
    for (size_t n = 0; n < std::size(targets); ++n) {
      double runs_per_connection = double(runs[n]) / double(connects * kRounds);
      progress("    {} {} bindings: {:.0f} ns per run, {:.2f} runs per connection", targets[n].name,
               count_label(size), median(per_run[n]), runs_per_connection);
      connect_table.add({targets[n].name, n == 2 ? "0 (a listener on 0.0.0.0:80)" : count_label(size),
                         "a random bound /32, port 80", ns(median(per_run[n])),
                         fmt::format("{:.2f}", runs_per_connection)});
    }
  }
  bpf_link__destroy(peer_link);
  bpf_link__destroy(empty_link);
  check(dispatcher.replace_bindings({}), "empty the bindings");

  return fmt::format(
      "tubular-like: steer's reimplementation of tubular's per-packet work "
      "(bench/peers/lpm_peer.bpf.c; the same maps, map lookups, counters, helper calls and "
      "verdicts; the same 120 instructions, 141 after the verifier, as tubular's program at "
      "cloudflare/tubular {}, against which bench/peers/README.md checks it), its maps filled "
      "with the map calls of "
      "tubular's Go control plane. Both programs get the same bindings and the same lookups "
      "(TCP), with one listener per family registered in each; every hit is checked to select "
      "that listener, every miss to pass with no socket, and the tubular-like lookup counters "
      "must add up.\n\n"
      "Bindings nest as in deployments: chains of one binding per length of the mix, each "
      "inside the one before, many chains on each busy port (ports from 1024 up), every other "
      "shortest-length prefix left unbound; one more binding, at the longest length, is alone "
      "on port 60000 (the case that favours tubular-like: its walk stays out of the busy ports' "
      "subtrees, except where they share the port's first byte in its key, the low byte: "
      "tubular keeps ports in host order, so with hundreds of busy ports it walks deeper). "
      "IPv6 mix (c) keeps IPv4's distances from the full length. Cases: a hit on a "
      "chain's longest binding (steer: 1 hash probe; tubular-like: walks through every shorter "
      "binding above it), a hit inside only the shortest (steer probes every length), a hit on "
      "the lone binding, a miss on port 9 (no binding), a miss on a busy port at the unbound "
      "prefix next to the hit.\n\n"
      "BPF_PROG_TEST_RUN, repeat {}, median of {} calls per program; the calls alternate steer, "
      "tubular-like, empty program. Hot caches: this measures instructions, not memory.\n\n{}\n"
      "Fill times, both from empty. tubular-like's are tubular's Go code's kernel calls per binding "
      "(lookup in the trie, lookup and update of the destination's reference count, update of "
      "the trie: 4 bpf() calls), without its userspace diff and sort; steer's are "
      "Dispatcher::replace_bindings, all of it.\n\n{}\n"
      "Real connects over loopback, each program attached (bpf_link) to a fresh namespace of "
      "its own; BPF_ENABLE_STATS run_time_ns / run_cnt. {} rounds of {} connects per program, "
      "the programs taking turns, each round the same random bound addresses for all three.\n\n{}",
      kTubularCommit, kRepeat, kRounds, lookup_table.markdown(), fill_table.markdown(), kRounds, connects,
      connect_table.markdown());
}

}  // namespace steer::bench
