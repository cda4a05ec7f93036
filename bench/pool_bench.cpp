// SOCKMAP vs SOCKHASH for the socket pools: the cost of bpf_map_lookup_elem + bpf_sk_release
// on maps of the dispatcher's size holding the same listening sockets, by BPF_PROG_TEST_RUN.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/resource.h>

#include <cstring>

#include "benches.h"
#include "bpf/skeleton.h"
#include "bpf/test_run.h"
#include "common.h"
#include "pool_lookup.h"
#include "pool_lookup.skel.h"

namespace steer::bench {

namespace {

constexpr uint32_t kRepeat = 1000000;
constexpr int kRounds = 3;

double run_ns(const bpf_program* program, uint16_t port) {
  auto context = bpf::make_sk_lookup_context(IPPROTO_TCP, SocketAddress::ipv4(0xc0000201, 40000),
                                             SocketAddress::ipv4(0xc6336407, port));
  std::vector<double> durations;
  for (int round = 0; round < kRounds; ++round)
    durations.push_back(check(bpf::test_run_sk_lookup(bpf_program__fd(program), context, kRepeat),
                              std::string("BPF_PROG_TEST_RUN ") + bpf_program__name(program))
                            .duration_ns);
  return median(durations);
}

}  // namespace

std::string pool_bench(const Options& options) {
  progress("SOCKMAP vs SOCKHASH pool lookups (BPF_PROG_TEST_RUN)");
  auto bpffs = enter_fresh_netns();
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  auto skeleton = check(bpf::Skeleton<pool_lookup>::open_and_load("pool_lookup"), "load pool_lookup");
  std::vector<size_t> sizes = options.quick ? std::vector<size_t>{1, 64}
                                            : std::vector<size_t>{1, 64, 4096, 16384};
  std::vector<Fd> sockets;
  Table table({"sockets in the map", "empty program ns", "SOCKMAP 1 lookup ns",
               "SOCKHASH 1 lookup ns", "SOCKMAP ns/lookup (16 per run)",
               "SOCKHASH ns/lookup (16 per run)"});
  int sockmap = bpf_map__fd(skeleton->maps.pool_sockmap);
  int sockhash = bpf_map__fd(skeleton->maps.pool_sockhash);
  for (size_t size : sizes) {
    while (sockets.size() < size) {
      sockets.push_back(check(listen_tcp(SocketAddress::ipv4_loopback(0)), "listen"));
      uint32_t key = static_cast<uint32_t>(sockets.size() - 1);
      uint64_t fd = static_cast<uint32_t>(sockets.back().get());
      if (bpf_map_update_elem(sockmap, &key, &fd, BPF_ANY) != 0 ||
          bpf_map_update_elem(sockhash, &key, &fd, BPF_ANY) != 0)
        die(fmt::format("insert socket {} into the pool maps: {}", key, std::strerror(errno)));
    }
    skeleton->bss->sockets = static_cast<uint32_t>(size);
    uint16_t port = 1234;
    double empty = run_ns(skeleton->progs.empty, port);
    double map_once = run_ns(skeleton->progs.sockmap_once, port);
    if (skeleton->bss->found != 1) die("SOCKMAP lookup found no socket");
    double hash_once = run_ns(skeleton->progs.sockhash_once, port);
    if (skeleton->bss->found != 1) die("SOCKHASH lookup found no socket");
    double map_many = run_ns(skeleton->progs.sockmap_many, port);
    if (skeleton->bss->found != POOL_LOOKUPS_PER_RUN) die("SOCKMAP lookups missed");
    double hash_many = run_ns(skeleton->progs.sockhash_many, port);
    if (skeleton->bss->found != POOL_LOOKUPS_PER_RUN) die("SOCKHASH lookups missed");
    double per_map = (map_many - empty) / POOL_LOOKUPS_PER_RUN;
    double per_hash = (hash_many - empty) / POOL_LOOKUPS_PER_RUN;
    progress("  {} sockets: empty {:.0f}, SOCKMAP {:.0f} / {:.1f} per lookup, SOCKHASH {:.0f} / "
             "{:.1f} per lookup", size, empty, map_once, per_map, hash_once, per_hash);
    table.add({std::to_string(size), fmt::format("{:.0f}", empty), fmt::format("{:.0f}", map_once),
               fmt::format("{:.0f}", hash_once), fmt::format("{:.1f}", per_map),
               fmt::format("{:.1f}", per_hash)});
  }
  return table.markdown();
}

}  // namespace steer::bench
