// The dispatcher under real connections: its run time as the kernel accounts it
// (BPF_ENABLE_STATS), and new connections per second through steer vs straight to a listener.
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>
#include <optional>
#include <random>

#include "base/netns.h"
#include "benches.h"
#include "bpf/skeleton.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/state.h"
#include "pool_lookup.skel.h"
#include "traffic.h"

namespace steer::bench {

namespace {

constexpr uint16_t kListenPort = 8080;  // where the listeners are bound
constexpr uint16_t kSteeredPort = 80;   // where clients connect; only steer answers there

SocketAddress ipv4_address(const core::Binding& binding, uint16_t port) {
  uint32_t address;
  std::memcpy(&address, binding.prefix.bytes.data(), 4);
  return SocketAddress::ipv4(ntohl(address), port);
}

// A random address in 127.0.0.0/8 that is neither the network nor the broadcast address.
SocketAddress random_loopback(std::mt19937& random, uint16_t port) {
  uint32_t low;
  do low = random() & 0xffffff;
  while (low == 0 || low == 0xffffff);
  return SocketAddress::ipv4((127u << 24) | low, port);
}

}  // namespace

std::string run_time_bench(const Options& options) {
  progress("dispatcher run time under real connections (BPF_ENABLE_STATS)");
  auto bpffs = enter_fresh_netns();
  auto here = check(NetNamespace::current(), "this namespace");
  core::Target target{"", bpffs.path()};
  auto state = check(core::State::load(target, core::LoadOptions{}), "steer load");
  Fd program(bpf_prog_get_fd_by_id(state.program_id()));
  if (!program) die("open the attached dispatcher program by id");
  core::Dispatcher dispatcher(std::move(state));
  Fd listener4 = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
  Fd listener6 = listen_for_bench(SocketAddress::ipv6_loopback(kListenPort));
  auto owner = core::Owner::of_process(::getpid());
  check(dispatcher.register_socket("web", listener4.get(), owner), "register 127.0.0.1:8080");
  check(dispatcher.register_socket("web", listener6.get(), owner), "register [::1]:8080");
  AcceptLoop accept4(listener4.get()), accept6(listener6.get());

  int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats < 0) die(fmt::format("bpf_enable_stats: {}", std::strerror(-stats)));
  Fd stats_fd(stats);

  const size_t connects = options.quick ? 2000 : 20000;
  std::vector<size_t> sizes = options.quick ? std::vector<size_t>{1, 1000}
                                            : std::vector<size_t>{1, 1000, 100000, 1000000};
  Table table({"program", "family", "bindings", "prefix lengths", "connections go to",
               "ns per run", "runs per connection"});
  std::mt19937 random(42);
  auto measure_program = [&](int program_fd, const NetNamespace& netns,
                             std::vector<std::string> row,
                             const std::function<SocketAddress(size_t)>& to) {
    RunStats before = read_stats(program_fd);
    connect_in(netns, connects, to);
    RunStats after = read_stats(program_fd);
    uint64_t runs = after.run_count - before.run_count;
    if (runs == 0) die("the program did not run: stats are off?");
    double per_run = double(after.run_time_ns - before.run_time_ns) / double(runs);
    progress("  {} {} {} bindings, {} lengths, {}: {:.0f} ns per run, {:.2f} runs per connection",
             row[0], row[1], row[2], row[3], row[4], per_run, double(runs) / connects);
    row.push_back(fmt::format("{:.0f}", per_run));
    row.push_back(fmt::format("{:.2f}", double(runs) / connects));
    table.add(std::move(row));
  };
  auto measure = [&](std::vector<std::string> row, const std::function<SocketAddress(size_t)>& to) {
    row.insert(row.begin(), "steer");
    measure_program(program.get(), here, std::move(row), to);
  };

  // IPv4: N bound /32s spread over 127/8; each connection to a random one of them.
  for (size_t size : sizes) {
    auto bindings = loopback_host_bindings(size, kSteeredPort, "web");
    check(dispatcher.replace_bindings(bindings), "replace the bindings");
    measure({"IPv4", count_label(size), "1", "a random bound /32, port 80 (steered)"},
            [&](size_t) { return ipv4_address(bindings[random() % bindings.size()], kSteeredPort); });
    if (size == sizes.back())
      measure({"IPv4", count_label(size), "1", "127.0.0.1:8080, not bound (the program passes)"},
              [&](size_t) { return SocketAddress::ipv4_loopback(kListenPort); });
  }
  // IPv4, 4 lengths: the hit is 127.0.0.0/8 port 80, the shortest; /32, /24, /16 are probed first.
  {
    size_t size = sizes.back();
    auto set = make_binding_set(AF_INET, size, 4, "web", SocketAddress::ipv4_loopback(kSteeredPort));
    check(dispatcher.replace_bindings(set.bindings), "replace the bindings");
    measure({"IPv4", count_label(size), "4", "a random 127.x.y.z, port 80: hits the /8 (steered)"},
            [&](size_t) { return random_loopback(random, kSteeredPort); });
  }
  // IPv6: only ::1 is on loopback, so every connection hits the same binding among N.
  for (size_t size : {sizes.front(), sizes.back()}) {
    auto set = make_binding_set(AF_INET6, size, 1, "web", SocketAddress::ipv6_loopback(kSteeredPort));
    check(dispatcher.replace_bindings(set.bindings), "replace the bindings");
    measure({"IPv6", count_label(size), "1", "[::1]:80 (steered)"},
            [&](size_t) { return SocketAddress::ipv6_loopback(kSteeredPort); });
  }
  check(dispatcher.replace_bindings({}), "empty the bindings");

  // The same with small binding tables (`steer load --binding-capacity 4096`): a lookup of a
  // random key touches a random bucket, and the default capacity's bucket arrays are 32 MiB.
  {
    auto netns = check(NetNamespace::create(), "create a namespace");
    auto inside = check(ScopedNetns::enter(netns), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    // Its own bpffs: the first steer holds the lock of this process's other one.
    auto small_bpffs = check(BpffsMount::create_temporary(), "mount a private bpffs");
    auto small_state = check(core::State::load(core::Target{"", small_bpffs.path()},
                                               core::LoadOptions{.binding_capacity = 4096}),
                             "steer load --binding-capacity 4096");
    Fd small_program(bpf_prog_get_fd_by_id(small_state.program_id()));
    core::Dispatcher small(std::move(small_state));
    Fd listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
    check(small.register_socket("web", listener.get(), owner), "register 127.0.0.1:8080");
    AcceptLoop accept(listener.get());
    const std::string name = "steer, --binding-capacity 4096";
    size_t size = 1000;
    auto bindings = loopback_host_bindings(size, kSteeredPort, "web");
    check(small.replace_bindings(bindings), "replace the bindings");
    measure_program(small_program.get(), netns,
                    {name, "IPv4", count_label(size), "1", "a random bound /32, port 80 (steered)"},
                    [&](size_t) { return ipv4_address(bindings[random() % bindings.size()], kSteeredPort); });
    auto set = make_binding_set(AF_INET, size, 4, "web", SocketAddress::ipv4_loopback(kSteeredPort));
    check(small.replace_bindings(set.bindings), "replace the bindings");
    measure_program(small_program.get(), netns,
                    {name, "IPv4", count_label(size), "4", "a random 127.x.y.z, port 80: hits the /8 (steered)"},
                    [&](size_t) { return random_loopback(random, kSteeredPort); });
  }

  // For comparison, under the same traffic in its own namespace: an empty sk_lookup program
  // (the floor: what stats accounting and a cold cache cost). The peer section runs the
  // tubular-like program.
  {
    auto netns = check(NetNamespace::create(), "create a namespace");
    auto inside = check(ScopedNetns::enter(netns), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    Fd listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
    AcceptLoop accept(listener.get());
    auto empty = check(bpf::Skeleton<pool_lookup>::open_and_load("pool_lookup"), "load pool_lookup");
    bpf_link* link = bpf_program__attach_netns(empty->progs.empty, netns.fd());
    if (!link) die("attach the empty program");
    int fd = bpf_program__fd(empty->progs.empty);
    measure_program(fd, netns, {"empty program", "IPv4", "0", "-", "127.0.0.1:8080 (passes)"},
                    [&](size_t) { return SocketAddress::ipv4_loopback(kListenPort); });
    bpf_link__destroy(link);
  }
  return table.markdown();
}

// ---- connections per second ---------------------------------------------------------------

namespace {

struct Variant {
  std::string name;
  const NetNamespace* netns;
  SocketAddress target;
  std::vector<double> rates;
};

double rate_in(const NetNamespace& netns, const SocketAddress& target, size_t count) {
  return double(count) / connect_in(netns, count, [&](size_t) { return target; });
}

}  // namespace

std::string connect_rate_bench(const Options& options) {
  progress("new TCP connections per second, through steer vs direct");
  auto bpffs = enter_fresh_netns();
  // Two namespaces: one without steer, one with steer loaded; the same client code in each.
  auto plain = check(NetNamespace::create(), "create a namespace");
  auto steered = check(NetNamespace::create(), "create a namespace");
  Fd plain_listener, steered_listener;
  std::optional<core::Dispatcher> dispatcher;
  {
    auto inside = check(ScopedNetns::enter(plain), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    plain_listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
  }
  {
    auto inside = check(ScopedNetns::enter(steered), "enter");
    require_private_netns();
    check(bring_up_loopback(), "lo up");
    steered_listener = listen_for_bench(SocketAddress::ipv4_loopback(kListenPort));
    auto state = check(core::State::load(core::Target{"", bpffs.path()}, core::LoadOptions{}), "steer load");
    dispatcher.emplace(std::move(state));
    check(dispatcher->register_socket("web", steered_listener.get(), core::Owner::of_process(::getpid())),
          "register");
    check(dispatcher->bind(check(core::Binding::parse("web", "tcp", "127.0.0.0/8", "80"), "binding")),
          "bind");
  }
  AcceptLoop accept_plain(plain_listener.get()), accept_steered(steered_listener.get());

  const size_t connects = options.quick ? 2000 : 20000;
  const int rounds = options.quick ? 2 : 11;
  std::vector<Variant> variants{
      {"straight to the listener, no steer", &plain, SocketAddress::ipv4_loopback(kListenPort), {}},
      {"straight to the listener, steer loaded (lookup misses)", &steered,
       SocketAddress::ipv4_loopback(kListenPort), {}},
      {"through steer (127.0.0.1:80 steered to the listener)", &steered,
       SocketAddress::ipv4_loopback(kSteeredPort), {}}};
  // Warm up both namespaces (first connections allocate), then interleave the variants.
  for (auto& variant : variants) rate_in(*variant.netns, variant.target, connects / 10);
  std::vector<double> ratios, loaded_ratios;
  for (int round = 0; round < rounds; ++round) {
    for (size_t n = 0; n < variants.size(); ++n) {
      auto& variant = variants[(n + round) % variants.size()];
      variant.rates.push_back(rate_in(*variant.netns, variant.target, connects));
    }
    ratios.push_back(variants[2].rates.back() / variants[0].rates.back());
    loaded_ratios.push_back(variants[1].rates.back() / variants[0].rates.back());
    progress("  round {}: direct {:.0f}/s, steer loaded {:.0f}/s, steered {:.0f}/s: ratio {:.3f}",
             round + 1, variants[0].rates.back(), variants[1].rates.back(),
             variants[2].rates.back(), ratios.back());
  }
  Table table({"connections", "median per second", "min", "max", "ratio to direct (median of rounds)"});
  for (size_t n = 0; n < variants.size(); ++n) {
    auto& rates = variants[n].rates;
    std::string ratio = n == 0 ? "1" : fmt::format("{:.3f}", median(n == 1 ? loaded_ratios : ratios));
    table.add({variants[n].name, fmt::format("{:.0f}", median(rates)),
               fmt::format("{:.0f}", *std::min_element(rates.begin(), rates.end())),
               fmt::format("{:.0f}", *std::max_element(rates.begin(), rates.end())), ratio});
  }
  return fmt::format("{} rounds of {} connections per variant, interleaved.\n\n{}", rounds,
                     connects, table.markdown());
}

}  // namespace steer::bench
