// steer's benchmarks (`make bench`): prints a Markdown report on stdout, progress on stderr.
// Every measurement runs in network namespaces this process creates, never the machine's own.
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "benches.h"
#include "bpf/libbpf_log.h"
#include "common.h"

namespace {

constexpr const char* kUsage =
    "usage: steer_bench --steer PATH [--quick] [SECTION...]\n"
    "sections: lookup peer pool run-time connect-rate load-bindings balance tail-latency\n"
    "          restarts program-cost (default: all)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace steer::bench;
  Options options;
  std::vector<std::string> sections;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--steer" && i + 1 < argc) options.steer_binary = argv[++i];
    else if (arg == "--quick") options.quick = true;
    else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else if (!arg.starts_with("-")) sections.push_back(arg);
    else {
      fmt::print(stderr, "{}", kUsage);
      return 2;
    }
  }
  if (::geteuid() != 0) die("the benchmarks need root (CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN)");
  if (sections.empty())
    sections = {"lookup", "peer", "pool", "run-time", "connect-rate", "load-bindings",
                "balance", "tail-latency", "restarts", "program-cost"};
  if (options.steer_binary.empty() &&
      std::find(sections.begin(), sections.end(), "load-bindings") != sections.end())
    die("load-bindings needs --steer PATH (the steer CLI)");
  steer::bpf::set_libbpf_log(steer::bpf::LibbpfLog::Warnings);
  enter_private_mounts();

  struct Section {
    const char* name;
    const char* title;
    std::string (*run)(const Options&);
  };
  const Section all[] = {
      {"lookup", "Dispatcher lookup cost (BPF_PROG_TEST_RUN)", lookup_bench},
      {"peer", "steer vs tubular-like (steer's reimplementation of tubular's per-packet work, checked against tubular 3581799)", peer_bench},
      {"pool", "Socket pool lookup: SOCKMAP vs SOCKHASH (BPF_PROG_TEST_RUN)", pool_bench},
      {"run-time", "Dispatcher run time under real connections (BPF_ENABLE_STATS)", run_time_bench},
      {"connect-rate", "New TCP connections per second on loopback", connect_rate_bench},
      {"load-bindings", "steer load-bindings", load_bindings_bench},
      {"balance", "Balance: connections per socket in a reuseport group, by policy", balance_bench},
      {"tail-latency", "Tail latency with one slow worker of four", tail_latency_bench},
      {"restarts", "Connections lost while a service restarts", restarts_bench},
      {"program-cost", "Cost per new connection of the reuseport and sockops programs",
       program_cost_bench},
  };
  for (const auto& wanted : sections) {
    const Section* section = nullptr;
    for (const auto& candidate : all)
      if (wanted == candidate.name) section = &candidate;
    if (!section) die("unknown section " + wanted);
    auto start = std::chrono::steady_clock::now();
    std::string body = section->run(options);
    fmt::print("### {}\n\n{}\n_(section took {:.0f} s)_\n\n", section->title, body, seconds_since(start));
    std::fflush(stdout);
  }
  return 0;
}
