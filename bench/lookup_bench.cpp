// Cost of one dispatcher lookup, and of the peer's LPM trie lookup, by BPF_PROG_TEST_RUN.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>

#include "benches.h"
#include "bpf/skeleton.h"
#include "bpf/test_run.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/state.h"
#include "lpm_baseline.h"
#include "lpm_baseline.skel.h"

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
  core::Target target{"", bpffs.path()};
  auto state = check(core::State::load(target, core::LoadOptions{}), "steer load");
  Fd program(bpf_prog_get_fd_by_id(state.program_id()));
  if (!program) die("open the attached dispatcher program by id");
  core::Dispatcher dispatcher(std::move(state));

  // One listening socket per family in the label's pools: a hit runs the whole assign path.
  Fd listeners[2] = {check(listen_tcp(SocketAddress::ipv4_loopback(0)), "listen 127.0.0.1"),
                     check(listen_tcp(SocketAddress::ipv6_loopback(0)), "listen [::1]")};
  uint64_t cookies[2];
  for (int i = 0; i < 2; ++i) {
    check(dispatcher.register_socket("bench", listeners[i].get(), core::Owner::of_process(::getpid())),
          "register a listener");
    cookies[i] = check(socket_cookie(listeners[i].get()), "SO_COOKIE");
  }

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

// ---- the peer's LPM trie --------------------------------------------------------------------

namespace {

lpm_baseline_key lpm_key(const core::Binding& binding) {
  lpm_baseline_key key{};
  key.protocol = static_cast<uint8_t>(binding.protocol);
  key.port = binding.ports.is_all() ? 0 : binding.ports.first;
  if (binding.prefix.family == AF_INET) {
    key.prefixlen = LPM_BASELINE_HEADER_BITS + 96 + binding.prefix.length;
    key.addr[2] = htonl(0xffff);
    std::memcpy(&key.addr[3], binding.prefix.bytes.data(), 4);
  } else {
    key.prefixlen = LPM_BASELINE_HEADER_BITS + binding.prefix.length;
    std::memcpy(key.addr, binding.prefix.bytes.data(), 16);
  }
  return key;
}

// Fills the trie; returns how many entries went in and the error that stopped it, if any.
std::pair<size_t, int> fill_trie(int map_fd, const std::vector<core::Binding>& bindings, uint32_t destination) {
  std::vector<lpm_baseline_key> keys;
  std::vector<lpm_baseline_value> values;
  keys.reserve(bindings.size());
  values.reserve(bindings.size());
  for (const auto& binding : bindings) {
    keys.push_back(lpm_key(binding));
    values.push_back({destination, keys.back().prefixlen});
  }
  size_t done = 0;
  while (done < keys.size()) {
    uint32_t count = static_cast<uint32_t>(std::min<size_t>(keys.size() - done, 1 << 16));
    LIBBPF_OPTS(bpf_map_batch_opts, batch_options);
    int ret = bpf_map_update_batch(map_fd, keys.data() + done, values.data() + done, &count,
                                   &batch_options);
    done += count;
    if (ret < 0) {
      if (-ret != EINVAL && -ret != ENOTSUP && -ret != EOPNOTSUPP) return {done, -ret};
      // No batch support for this map type: one update per entry.
      for (; done < keys.size(); ++done)
        if (bpf_map_update_elem(map_fd, &keys[done], &values[done], BPF_ANY) != 0)
          return {done, errno};
    }
  }
  return {done, 0};
}

}  // namespace

std::string lpm_bench(const Options& options) {
  progress("LPM trie baseline (BPF_PROG_TEST_RUN)");
  auto bpffs = enter_fresh_netns();
  Fd listeners[2] = {check(listen_tcp(SocketAddress::ipv4_loopback(0)), "listen 127.0.0.1"),
                     check(listen_tcp(SocketAddress::ipv6_loopback(0)), "listen [::1]")};
  std::vector<size_t> sizes = options.quick ? std::vector<size_t>{1, 1000}
                                            : std::vector<size_t>{1, 1000, 100000, 1000000};
  Table table({"family", "bindings (= max_entries)", "prefix lengths", "hit ns (socket assigned)",
               "miss ns", "fill s"});
  for (int family : {AF_INET, AF_INET6}) {
    uint32_t destination = family == AF_INET ? 0 : 1;
    uint64_t cookie = check(socket_cookie(listeners[destination].get()), "SO_COOKIE");
    for (size_t size : sizes) {
      for (int lengths : {1, 4}) {
        if (size < static_cast<size_t>(lengths)) continue;
        auto set = make_binding_set(family, size, lengths, "bench", lookup_target(family));
        // Sized to exactly the bindings: a trie that counted its inner nodes would not fit.
        auto skeleton = check(bpf::Skeleton<lpm_baseline>::open("lpm_baseline"), "open the LPM baseline");
        bpf_map__set_max_entries(skeleton->maps.bindings, static_cast<uint32_t>(size));
        check(skeleton.load(), "load the LPM baseline");
        int sockets_fd = bpf_map__fd(skeleton->maps.sockets);
        for (uint32_t key = 0; key < 2; ++key) {
          uint64_t fd = static_cast<uint32_t>(listeners[key].get());
          if (bpf_map_update_elem(sockets_fd, &key, &fd, BPF_ANY) != 0) die("fill the LPM sockets");
        }
        auto start = std::chrono::steady_clock::now();
        auto [inserted, error] = fill_trie(bpf_map__fd(skeleton->maps.bindings), set.bindings, destination);
        double load_seconds = seconds_since(start);
        std::vector<std::string> row{family_label(family), count_label(size), std::to_string(lengths)};
        if (error != 0) {
          progress("  {} {} bindings, {} lengths: {} after {} entries", family_label(family),
                   count_label(size), lengths, errno_name(error), inserted);
          row.insert(row.end(), {fmt::format("does not fit: {} after {} entries", errno_name(error),
                                             inserted), "", fmt::format("{:.2f}", load_seconds)});
          table.add(row);
          continue;
        }
        int program = bpf_program__fd(skeleton->progs.lpm_dispatch);
        auto source = lookup_source(family);
        auto hit = measure(program, source, set.hit);
        auto miss = measure(program, source, set.miss);
        if (hit.run.verdict != SK_PASS || hit.run.selected_cookie != cookie)
          die(fmt::format("LPM hit of {} did not select the listener", set.hit.to_string()));
        if (miss.run.verdict != SK_PASS || miss.run.selected_cookie != 0)
          die(fmt::format("LPM miss of {} selected a socket", set.miss.to_string()));
        progress("  {} {} bindings, {} lengths: hit {:.0f} ns, miss {:.0f} ns (load {:.2f} s)",
                 family_label(family), count_label(size), lengths, hit.ns, miss.ns, load_seconds);
        row.insert(row.end(), {ns(hit.ns), ns(miss.ns), fmt::format("{:.2f}", load_seconds)});
        table.add(row);
      }
    }
  }
  return table.markdown();
}

}  // namespace steer::bench
