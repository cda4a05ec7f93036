// Issue 7's figures, with real TCP connections through a SO_REUSEPORT group on loopback: how
// evenly each policy spreads connections (against the kernel's own reuseport hash), tail
// latency with one slow worker, connections lost while a service restarts once a second
// (plain SO_REUSEPORT against steer's migration), and what the reuseport and sockops programs
// cost per new connection. Each section runs in a fresh network namespace of its own.
#include <bpf/bpf.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <memory>
#include <optional>
#include <thread>

#include "base/cgroup.h"
#include "benches.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/policy.h"
#include "core/state.h"
#include "traffic.h"

namespace steer::bench {

namespace {

constexpr uint16_t kGroupPort = 7000;

SocketAddress group_address() { return SocketAddress::ipv4_loopback(kGroupPort); }

// A member of the group, non-blocking (an accept loop drains its queue and goes back to
// poll; a connection migrated away between the two must not block it).
Fd group_member() {
  auto fd = check(listen_tcp(group_address(), SocketOptions{.reuseport = true, .backlog = 4096}),
                  "listen in the group");
  int on = 1;
  ::ioctl(fd.get(), FIONBIO, &on);
  return fd;
}

// steer loaded in the calling thread's namespace (a fresh one).
core::Dispatcher load_steer(const BpffsMount& bpffs) {
  auto state = check(core::State::load(core::Target{"", bpffs.path()}, core::LoadOptions{}),
                     "steer load");
  return core::Dispatcher(std::move(state));
}

std::vector<int> raw(const std::vector<Fd>& fds) {
  std::vector<int> out;
  for (const auto& fd : fds) out.push_back(fd.get());
  return out;
}

// "kernel": no program on web's group (the kernel's hash); else steer's program with this
// policy.
void use_policy(core::Dispatcher& dispatcher, const std::vector<Fd>& members,
                const std::string& policy) {
  if (policy == "kernel") {
    (void)dispatcher.detach_reuseport("web", raw(members));
    return;
  }
  check(dispatcher.attach_reuseport("web", raw(members), true), "attach");
  check(dispatcher.set_policy("web", *core::parse_policy(policy)), "policy " + policy);
}

// A worker: accepts on its listener and answers each connection with one byte after reading
// one, `delay` later (the slow worker); closes its listener when told to stop accepting.
class Worker {
 public:
  Worker(int listener, std::chrono::microseconds delay) : listener_(listener), delay_(delay) {
    thread_ = std::thread([this] { serve(); });
  }
  ~Worker() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t served() const { return served_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, 10) <= 0) continue;
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      char byte = 0;
      if (::read(fd, &byte, 1) == 1) {
        if (delay_.count()) std::this_thread::sleep_for(delay_);
        (void)!::write(fd, "k", 1);
      }
      ::close(fd);
      ++served_;
    }
  }
  int listener_;
  std::chrono::microseconds delay_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> served_{0};
  std::thread thread_;
};

// One request: connect, write a byte, read the answer. Seconds, or a negative value on failure
// (refused, reset, closed without an answer).
double request(const SocketAddress& to) {
  auto start = std::chrono::steady_clock::now();
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(client.get(), to.data(), to.size()) != 0) return -1;
  if (::write(client.get(), "r", 1) != 1) return -1;
  char answer = 0;
  if (::read(client.get(), &answer, 1) != 1) return -1;
  linger reset{1, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  return seconds_since(start);
}

// Puts this process back into the cgroup it started in when destroyed.
class ReturnToCgroup {
 public:
  ReturnToCgroup() {
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    while (std::getline(self, line))
      if (line.starts_with("0::")) path_ = line.substr(3);
  }
  ~ReturnToCgroup() {
    auto root = find_cgroup2_mount();
    if (!root || path_.empty()) return;
    std::ofstream procs(*root + path_ + "/cgroup.procs");
    procs << ::getpid() << "\n";
  }

 private:
  std::string path_;
};

// A program's run time and runs (BPF_ENABLE_STATS), added up over the programs given.
struct ProgramTime {
  uint64_t runs = 0, nanoseconds = 0;
  void add(uint32_t program_id) {
    Fd program(bpf_prog_get_fd_by_id(program_id));
    if (!program) return;
    bpf_prog_info info{};
    __u32 length = sizeof(info);
    if (bpf_obj_get_info_by_fd(program.get(), &info, &length) != 0) return;
    runs += info.run_cnt;
    nanoseconds += info.run_time_ns;
  }
  double per_run() const { return runs ? static_cast<double>(nanoseconds) / static_cast<double>(runs) : 0; }
};

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = std::min(values.size() - 1, static_cast<size_t>(p * (values.size() - 1) + 0.5));
  return values[index];
}

}  // namespace

// ---- balance ----------------------------------------------------------------------------------

std::string balance_bench(const Options& options) {
  progress("balance: connections per socket, each policy vs the kernel's reuseport hash");
  auto bpffs = enter_fresh_netns();
  auto dispatcher = load_steer(bpffs);
  const std::vector<size_t> sizes = options.quick ? std::vector<size_t>{2, 4}
                                                  : std::vector<size_t>{2, 4, 8, 16};
  const size_t per_socket = options.quick ? 50 : 200;
  const std::vector<const char*> policies{"kernel", "hash", "round-robin", "random",
                                          "least-queue", "least-conn"};
  Table table({"sockets", "connections", "kernel reuseport hash", "hash", "round-robin", "random",
               "least-queue", "least-conn"});
  for (size_t size : sizes) {
    std::vector<Fd> members;
    for (size_t i = 0; i < size; ++i) members.push_back(group_member());
    check(dispatcher.register_sockets("web", raw(members), core::Owner::of_process(::getpid())),
          "register");
    std::vector<std::string> row{std::to_string(size), std::to_string(size * per_socket)};
    for (const char* policy : policies) {
      use_policy(dispatcher, members, policy);
      std::vector<std::unique_ptr<AcceptLoop>> loops;
      for (const auto& member : members) loops.push_back(std::make_unique<AcceptLoop>(member.get()));
      const size_t total = size * per_socket;
      connect_loop(total, [](size_t) { return group_address(); });
      uint64_t accepted = 0;
      for (int wait = 0; wait < 500; ++wait) {
        accepted = 0;
        for (const auto& loop : loops) accepted += loop->accepted();
        if (accepted == total) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (accepted != total) die(fmt::format("balance: {} of {} accepted", accepted, total));
      uint64_t most = 0;
      for (const auto& loop : loops) most = std::max(most, loop->accepted());
      double mean = static_cast<double>(total) / static_cast<double>(size);
      row.push_back(fmt::format("{:.2f}", static_cast<double>(most) / mean));
      progress("  {} sockets, {}: max/mean {:.2f}", size, policy, static_cast<double>(most) / mean);
    }
    table.add(row);
    check(dispatcher.unregister("web", core::SocketFilter{}), "unregister");
  }
  return fmt::format(
      "A reuseport group of N listeners on 127.0.0.1:{} (no binding: every connection reaches "
      "the group through the kernel's lookup), {} connections per socket from one client, one "
      "at a time, each closed at once. Figure: the busiest socket's connections over the mean "
      "(1.00 is perfectly even). `kernel`: no program on the group (the kernel hashes the "
      "4-tuple); the others: steer's program with that policy. least-queue and least-conn see "
      "no queue and no open connection here (each is accepted and closed at once), so they "
      "follow their hash order.\n\n{}",
      kGroupPort, per_socket, table.markdown());
}

// ---- tail latency with one slow worker -----------------------------------------------------------

std::string tail_latency_bench(const Options& options) {
  progress("tail latency: 4 workers, one slow, hash vs least-queue vs the kernel's hash");
  auto bpffs = enter_fresh_netns();
  auto dispatcher = load_steer(bpffs);
  constexpr size_t kWorkers = 4;
  const auto slow = std::chrono::milliseconds(5);
  const int clients = 8;
  const int requests_per_client = options.quick ? 50 : 400;
  std::vector<Fd> members;
  for (size_t i = 0; i < kWorkers; ++i) members.push_back(group_member());
  check(dispatcher.register_sockets("web", raw(members), core::Owner::of_process(::getpid())),
        "register");
  Table table({"policy", "requests", "p50 (ms)", "p99 (ms)", "p99.9 (ms)", "to the slow worker"});
  for (const char* policy : {"kernel", "hash", "least-queue"}) {
    use_policy(dispatcher, members, policy);
    std::vector<std::unique_ptr<Worker>> workers;
    for (size_t i = 0; i < kWorkers; ++i)
      workers.push_back(std::make_unique<Worker>(
          members[i].get(), i == 0 ? std::chrono::duration_cast<std::chrono::microseconds>(slow)
                                   : std::chrono::microseconds(0)));
    std::vector<std::vector<double>> latencies(clients);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        require_private_netns();
        for (int r = 0; r < requests_per_client; ++r) {
          double seconds = request(group_address());
          if (seconds < 0) ++failures;
          else latencies[c].push_back(seconds * 1000);
        }
      });
    for (auto& thread : threads) thread.join();
    uint64_t to_slow = workers[0]->served();
    for (auto& worker : workers) worker->stop();
    std::vector<double> all;
    for (const auto& each : latencies) all.insert(all.end(), each.begin(), each.end());
    if (failures) die(fmt::format("tail latency: {} requests failed", failures.load()));
    table.add({policy, std::to_string(all.size()), fmt::format("{:.2f}", percentile(all, 0.5)),
               fmt::format("{:.2f}", percentile(all, 0.99)),
               fmt::format("{:.2f}", percentile(all, 0.999)), std::to_string(to_slow)});
    progress("  {}: p50 {:.2f} ms, p99 {:.2f} ms, slow worker served {}", policy,
             percentile(all, 0.5), percentile(all, 0.99), to_slow);
  }
  return fmt::format(
      "A reuseport group of {} workers on 127.0.0.1:{}, each one thread that accepts, reads a "
      "byte and answers; worker 0 sleeps {} ms before answering. {} clients, {} requests each "
      "(connect, write, read, close), one at a time per client. `kernel`: no program on the "
      "group.\n\n{}",
      kWorkers, kGroupPort, slow.count(), clients, requests_per_client, table.markdown());
}

// ---- restarts ------------------------------------------------------------------------------------

std::string restarts_bench(const Options& options) {
  progress("restarts: connections lost while the service restarts, plain SO_REUSEPORT vs steer");
  const int restarts = options.quick ? 3 : 20;
  Table table({"variant", "restarts", "requests", "failed", "failed per million"});
  for (bool with_steer : {false, true}) {
    auto bpffs = enter_fresh_netns();
    std::optional<core::Dispatcher> dispatcher;
    if (with_steer) dispatcher.emplace(load_steer(bpffs));
    std::vector<Fd> current;
    current.push_back(group_member());
    auto worker = std::make_unique<Worker>(current[0].get(), std::chrono::microseconds(0));
    if (dispatcher) {
      check(dispatcher->register_sockets("web", raw(current), core::Owner::of_process(::getpid()),
                                      {.generation = 1}),
            "register");
      check(dispatcher->attach_reuseport("web", raw(current), false), "attach");
    }
    std::atomic<bool> done{false};
    std::atomic<uint64_t> requests{0}, failed{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&] {
        require_private_netns();
        while (!done) {
          ++requests;
          if (request(group_address()) < 0) ++failed;
        }
      });
    for (int generation = 2; generation <= restarts + 1; ++generation) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options.quick ? 300 : 1000));
      // The new release binds its socket into the group and starts serving...
      std::vector<Fd> next;
      next.push_back(group_member());
      auto next_worker = std::make_unique<Worker>(next[0].get(), std::chrono::microseconds(0));
      if (dispatcher) {
        check(dispatcher->register_sockets("web", raw(next), core::Owner::of_process(::getpid()),
                                           {.generation = static_cast<uint32_t>(generation)}),
              "register the next generation");
        check(dispatcher->promote("web", static_cast<uint32_t>(generation)), "promote");
      }
      // ...and the old one stops accepting and exits without taking what is queued.
      worker->stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      current = std::move(next);
      worker = std::move(next_worker);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    done = true;
    for (auto& client : clients) client.join();
    worker->stop();
    double per_million = requests ? 1e6 * static_cast<double>(failed) / static_cast<double>(requests) : 0;
    table.add({with_steer ? "steer (promote, then the old listener closes; queue migrated)"
                          : "plain SO_REUSEPORT (new listener joins, old one closes)",
               std::to_string(restarts), std::to_string(requests.load()),
               std::to_string(failed.load()), fmt::format("{:.0f}", per_million)});
    progress("  {}: {} of {} requests failed", with_steer ? "steer" : "plain", failed.load(),
             requests.load());
  }
  return fmt::format(
      "4 clients make requests without pause (connect, write, read, close) to a service in a "
      "reuseport group on 127.0.0.1:{}, which restarts {} times, {} apart: the new release "
      "binds its own SO_REUSEPORT socket and serves; the old one stops accepting, and 20 ms "
      "later closes its listener with whatever is queued. With steer, the new release registers "
      "as the next generation and is promoted before the old one stops. A failed request: "
      "refused, reset, or closed without an answer.\n\n{}",
      kGroupPort, restarts, options.quick ? "0.3 s" : "1 s", table.markdown());
}

// ---- program cost ------------------------------------------------------------------------------

std::string program_cost_bench(const Options& options) {
  progress("cost per new connection: the reuseport and sockops programs vs none");
  auto bpffs = enter_fresh_netns();
  auto dispatcher = load_steer(bpffs);
  auto cgroup = check(TemporaryCgroup::create("steer-bench"), "a cgroup for the sockops program");
  // The sockets must be created inside the cgroup the sockops program is attached to; the
  // process goes back where it was before the cgroup is removed.
  ReturnToCgroup back;
  check(cgroup.add_process(::getpid()), "join the bench cgroup");
  std::vector<Fd> members;
  for (int i = 0; i < 2; ++i) members.push_back(group_member());
  check(dispatcher.register_sockets("web", raw(members), core::Owner::of_process(::getpid())),
        "register");
  std::vector<std::unique_ptr<AcceptLoop>> loops;
  for (const auto& member : members) loops.push_back(std::make_unique<AcceptLoop>(member.get()));
  const size_t connects = options.quick ? 2000 : 20000;
  const int rounds = options.quick ? 2 : 7;
  struct Variant {
    const char* name;
    bool reuseport, sockops;
    std::vector<double> rates;
  };
  uint32_t reuseport_program_id = 0;
  std::vector<Variant> variants{{"no program (the kernel's reuseport hash)", false, false, {}},
                                {"steer's reuseport program (hash policy)", true, false, {}},
                                {"steer's reuseport program + sockops counting", true, true, {}}};
  // The programs' own run time as the kernel accounts it, summed over the rounds.
  Fd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
  if (!stats) die("bpf_enable_stats");
  ProgramTime reuseport_time, sockops_time;
  auto set_up = [&](const Variant& variant) {
    if (auto tracking = dispatcher.connection_tracking(); tracking && *tracking)
      sockops_time.add((*tracking)->program_id);
    (void)dispatcher.detach_reuseport("web", raw(members));
    (void)dispatcher.untrack_connections();
    if (variant.reuseport) {
      auto attached = check(dispatcher.attach_reuseport("web", raw(members), true), "attach");
      reuseport_program_id = attached.at(0).record.program_id;
    }
    if (variant.sockops) check(dispatcher.track_connections(cgroup.path()), "track");
  };
  for (auto& variant : variants) {
    set_up(variant);
    connect_loop(connects / 10, [](size_t) { return group_address(); });
  }
  for (int round = 0; round < rounds; ++round)
    for (size_t n = 0; n < variants.size(); ++n) {
      auto& variant = variants[(n + static_cast<size_t>(round)) % variants.size()];
      set_up(variant);
      double seconds = connect_loop(connects, [](size_t) { return group_address(); });
      variant.rates.push_back(static_cast<double>(connects) / seconds);
    }
  set_up(variants[0]);  // the last sockops round counted, everything detached
  reuseport_time.add(reuseport_program_id);
  Table table({"variant", "median connections/s", "ratio to no program"});
  double base = median(variants[0].rates);
  for (const auto& variant : variants)
    table.add({variant.name, fmt::format("{:.0f}", median(variant.rates)),
               fmt::format("{:.3f}", median(variant.rates) / base)});
  Table runs({"program", "runs", "ns per run (BPF_ENABLE_STATS)"});
  runs.add({"steer_reuseport (sk_reuseport, once per SYN)", std::to_string(reuseport_time.runs),
            fmt::format("{:.0f}", reuseport_time.per_run())});
  runs.add({"steer_count_connections (sockops, every callback of the cgroup's sockets)",
            std::to_string(sockops_time.runs), fmt::format("{:.0f}", sockops_time.per_run())});
  return fmt::format(
      "New TCP connections per second from one client to a reuseport group of 2 listeners "
      "(accepted and closed by a thread each), {} rounds of {} connections per variant, "
      "interleaved. The client and the listeners are in the cgroup the sockops program is "
      "attached to, so it runs for both ends of each connection.\n\n{}\n{}",
      rounds, connects, table.markdown(), runs.markdown());
}

}  // namespace steer::bench
