// Cost of one dispatcher lookup, by BPF_PROG_TEST_RUN (peer_bench.cpp sets it beside the
// tubular-like program's).
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <chrono>

#include "benches.h"
#include "bpf/test_run.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/state.h"

namespace steer::bench {

namespace {

constexpr uint32_t kRepeat = 1000000;  // runs per BPF_PROG_TEST_RUN call
constexpr int kRounds = 3;             // calls per figure; the median is reported

struct Case {
  size_t bindings;
  int lengths;
};

std::vector<Case> cases(bool quick) {
  if (quick) return {{1, 1}, {1000, 1}, {1000, 4}, {1000, 32}};
  return {{1, 1},      {1000, 1},    {1000, 4},    {1000, 32},    {100000, 1},
          {100000, 4}, {100000, 32}, {1000000, 1}, {1000000, 4}, {1000000, 32}};
}

SocketAddress lookup_target(int family) {
  return check(SocketAddress::parse(family == AF_INET ? "198.51.100.7:7" : "[2001:db8::7]:7"),
               "target address");
}
SocketAddress lookup_source(int family) {
  return check(SocketAddress::parse(family == AF_INET ? "192.0.2.1:40000" : "[2001:db8::1]:40000"),
               "source address");
}

struct Measured {
  double ns = 0;
  bpf::SkLookupRun run;
};

// The median over kRounds calls of the kernel's average ns per run.
Measured measure(int program_fd, const SocketAddress& source, const SocketAddress& destination) {
  auto context = bpf::make_sk_lookup_context(IPPROTO_TCP, source, destination);
  std::vector<double> durations;
  Measured measured;
  for (int round = 0; round < kRounds; ++round) {
    measured.run = check(bpf::test_run_sk_lookup(program_fd, context, kRepeat),
                         "BPF_PROG_TEST_RUN to " + destination.to_string());
    durations.push_back(measured.run.duration_ns);
  }
  measured.ns = median(durations);
  return measured;
}

std::string ns(double value) { return fmt::format("{:.0f}", value); }

}  // namespace

std::string lookup_bench(const Options& options) {
  progress("dispatcher lookups (BPF_PROG_TEST_RUN)");
  auto bpffs = enter_fresh_netns();
  // One listening socket per family in the label's pools: a hit runs the whole assign path.
  auto steer = load_steer_with_listeners(bpffs.path(), "bench");
  auto& dispatcher = steer.dispatcher;
  auto& program = steer.program;
  auto& cookies = steer.cookies;

  Table table({"family", "bindings", "prefix lengths", "hit ns (socket assigned)", "miss ns",
               "replace_bindings s"});
  for (int family : {AF_INET, AF_INET6}) {
    for (const auto& c : cases(options.quick)) {
      auto set = make_binding_set(family, c.bindings, c.lengths, "bench", lookup_target(family));
      auto start = std::chrono::steady_clock::now();
      check(dispatcher.replace_bindings(set.bindings), "replace the bindings");
      double load_seconds = seconds_since(start);
      auto source = lookup_source(family);
      auto hit = measure(program.get(), source, set.hit);
      auto miss = measure(program.get(), source, set.miss);
      uint64_t cookie = cookies[family == AF_INET ? 0 : 1];
      if (hit.run.verdict != SK_PASS || hit.run.selected_cookie != cookie)
        die(fmt::format("hit lookup of {} did not select the listener (verdict {}, cookie {}, "
                        "expected {})", set.hit.to_string(), hit.run.verdict,
                        hit.run.selected_cookie, cookie));
      if (miss.run.verdict != SK_PASS || miss.run.selected_cookie != 0)
        die(fmt::format("miss lookup of {} selected a socket", set.miss.to_string()));
      progress("  {} {} bindings, {} lengths: hit {:.0f} ns, miss {:.0f} ns (load {:.2f} s)",
               family_label(family), count_label(c.bindings), c.lengths, hit.ns, miss.ns,
               load_seconds);
      table.add({family_label(family), count_label(c.bindings), std::to_string(c.lengths),
                 ns(hit.ns), ns(miss.ns), fmt::format("{:.2f}", load_seconds)});
    }
  }
  check(dispatcher.replace_bindings({}), "empty the bindings");
  return table.markdown();
}

}  // namespace steer::bench
