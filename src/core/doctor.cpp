#include "core/doctor.h"

#include <poll.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "base/bpffs.h"
#include "base/cgroup.h"
#include "base/netns.h"
#include "base/socket.h"
#include "bpf/libbpf_log.h"
#include "bpf/link.h"
#include "bpf/map.h"
#include "bpf/probe_programs.h"
#include "bpf/test_run.h"

namespace steer::core {

namespace {

// The dispatcher's least-queue policy reads queues through bpf_rdonly_cast (6.2), the newest
// need (SELECT_OR_MIGRATE: 5.14); the program also needs the kernel's BTF (CO-RE).
constexpr int kMinimumMajor = 6, kMinimumMinor = 2;

Check check_kernel_version() {
  Check check{.name = "kernel version",
              .needed_for = "everything: steer needs Linux 6.2 or later, with BTF"};
  struct utsname name {};
  ::uname(&name);
  int major = 0, minor = 0;
  std::sscanf(name.release, "%d.%d", &major, &minor);
  bool recent = major > kMinimumMajor || (major == kMinimumMajor && minor >= kMinimumMinor);
  bool has_btf = ::access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  check.ok = recent && has_btf;
  check.detail = fmt::format("{}{}", name.release, has_btf ? "" : ", no /sys/kernel/btf/vmlinux");
  if (!recent) check.fix = "upgrade the kernel to 6.2 or later";
  else if (!has_btf) check.fix = "use a kernel built with CONFIG_DEBUG_INFO_BTF=y";
  return check;
}

Check check_bpffs(const std::string& path) {
  Check check{.name = "bpf filesystem", .needed_for = "pinned state that outlives steer processes"};
  std::ifstream filesystems("/proc/filesystems");
  std::string line;
  bool supported = false;
  while (std::getline(filesystems, line))
    if (line.find("\tbpf") != std::string::npos) supported = true;
  if (!supported) {
    check.detail = "the kernel has no bpf filesystem (CONFIG_BPF_SYSCALL)";
    check.fix = "use a kernel built with CONFIG_BPF_SYSCALL=y";
    return check;
  }
  check.ok = true;
  if (is_bpffs(path)) {
    check.detail = "mounted at " + path;
  } else {
    check.detail = "supported, not mounted at " + path + "; `steer load` mounts it";
    check.fix = "or mount it yourself: mount -t bpf bpf " + path;
  }
  return check;
}

Check check_capabilities() {
  Check check{.name = "capabilities",
              .needed_for = "loading programs and maps (CAP_BPF, CAP_NET_ADMIN), attaching to a "
                            "network namespace and mounting bpffs (CAP_SYS_ADMIN)"};
  std::ifstream status("/proc/self/status");
  std::string line;
  unsigned long long effective = 0;
  while (std::getline(status, line))
    if (line.rfind("CapEff:", 0) == 0) effective = std::stoull(line.substr(7), nullptr, 16);
  struct Cap {
    int bit;
    const char* name;
  };
  std::vector<std::string> missing;
  for (Cap cap : {Cap{39, "CAP_BPF"}, Cap{12, "CAP_NET_ADMIN"}, Cap{21, "CAP_SYS_ADMIN"}})
    if (!(effective & (1ULL << cap.bit))) missing.push_back(cap.name);
  check.ok = missing.empty();
  if (check.ok) {
    check.detail = "CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN";
  } else {
    check.detail = "missing:";
    for (const auto& name : missing) check.detail += " " + name;
    check.fix = "run as root, or grant the capabilities (e.g. AmbientCapabilities= in a unit)";
  }
  return check;
}

// Waits up to a second for a connection on `listener` and accepts it.
Result<Fd> accept_within_a_second(int listener) {
  pollfd entry{.fd = listener, .events = POLLIN, .revents = 0};
  if (::poll(&entry, 1, 1000) <= 0) return fail(ETIMEDOUT, "no connection arrived");
  Fd accepted(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!accepted) return fail_errno("accept");
  return accepted;
}

template <class MapT>
Result<std::string> probe_socket_map(int type) {
  auto map = STEER_TRY(MapT::create("steer_probe", 4));
  auto socket = STEER_TRY(type == SOCK_STREAM ? listen_tcp(SocketAddress::ipv4_loopback(0))
                                              : bind_udp(SocketAddress::ipv4_loopback(0)));
  STEER_TRY(map.insert(0, socket.get()));
  auto stored = STEER_TRY(map.cookie_at(0));
  auto cookie = STEER_TRY(socket_cookie(socket.get()));
  if (stored != cookie)
    return fail(EPROTO, "lookup gave cookie {}, SO_COOKIE is {}", stored, cookie);
  socket.reset();
  if (map.cookie_at(0)) return fail(EPROTO, "a closed socket stayed in the map");
  return std::string("insert, lookup by cookie, removed on close");
}

Result<std::string> probe_sk_lookup(const NetNamespace& netns) {
  auto skeleton = STEER_TRY(bpf::ProbeSkLookup::open_and_load("probe_sk_lookup"));
  auto listener = STEER_TRY(listen_tcp(SocketAddress::ipv4_loopback(0)));
  auto map = STEER_TRY(bpf::Map::from_fd(bpf_map__fd(skeleton->maps.probe_sockmap)));
  auto sockmap = STEER_TRY(bpf::SockMap::wrap(std::move(map)));
  STEER_TRY(sockmap.insert(0, listener.get()));
  steer_probe_lookup_config config{.action = STEER_PROBE_LOOKUP_ASSIGN,
                                   .map_kind = STEER_PROBE_SOCKMAP,
                                   .key = 0,
                                   .flags = 0,
                                   .verdict = 1,
                                   .match_port = 4242};
  STEER_TRY(bpf::store_single(skeleton->maps.lookup_config, config));
  auto link = STEER_TRY(bpf::attach_sk_lookup(skeleton->progs.probe_lookup, netns.fd()));
  // Port 4242 has no listener: only the program can make this connection succeed.
  auto client = connect_tcp(SocketAddress::ipv4_loopback(4242));
  if (!client) return fail(client.error().code, "connection not steered: {}", client.error().message);
  auto accepted = STEER_TRY(accept_within_a_second(listener.get()));
  return std::string("a connection to port 4242 reached a listener on another port");
}

Result<std::string> probe_test_run() {
  auto skeleton = STEER_TRY(bpf::ProbeSkLookup::open_and_load("probe_sk_lookup"));
  steer_probe_lookup_config config{.action = STEER_PROBE_LOOKUP_DROP};
  STEER_TRY(bpf::store_single(skeleton->maps.lookup_config, config));
  auto context = bpf::make_sk_lookup_context(IPPROTO_TCP, SocketAddress::ipv4(0xc0000201, 5555),
                                             SocketAddress::ipv4(0xc0000207, 80));
  auto run =
      STEER_TRY(bpf::test_run_sk_lookup(bpf_program__fd(skeleton->progs.probe_lookup), context));
  if (run.verdict != 0) return fail(EPROTO, "a dropping program returned verdict {}", run.verdict);
  return std::string("ran the program on a made-up lookup (SK_DROP seen)");
}

struct ReuseportGroup {
  bpf::ProbeReuseport skeleton;
  Fd first, second;
  SocketAddress address;
};

Result<ReuseportGroup> make_reuseport_group(steer_probe_reuseport_config config) {
  auto skeleton = STEER_TRY(bpf::ProbeReuseport::open_and_load("probe_reuseport"));
  SocketOptions options{.reuseport = true};
  auto first = STEER_TRY(listen_tcp(SocketAddress::ipv4_loopback(0), options));
  auto address = STEER_TRY(local_address(first.get()));
  auto second = STEER_TRY(listen_tcp(address, options));
  auto map = STEER_TRY(bpf::Map::from_fd(bpf_map__fd(skeleton->maps.probe_sockhash)));
  auto hash = STEER_TRY(bpf::SockHash<uint32_t>::wrap(std::move(map)));
  STEER_TRY(hash.insert(0, first.get()));
  STEER_TRY(hash.insert(1, second.get()));
  STEER_TRY(bpf::store_single(skeleton->maps.reuseport_config, config));
  return ReuseportGroup{std::move(skeleton), std::move(first), std::move(second), address};
}

Result<std::string> probe_reuseport_select() {
  auto group = STEER_TRY(make_reuseport_group({.mode = STEER_PROBE_REUSEPORT_FIXED,
                                               .map_kind = STEER_PROBE_SOCKHASH,
                                               .key = 1,
                                               .migrate_key = STEER_PROBE_NO_KEY}));
  STEER_TRY(bpf::attach_reuseport(group.skeleton->progs.probe_select, group.first.get()));
  for (int i = 0; i < 4; ++i) {
    auto client = STEER_TRY(connect_tcp(group.address));
    auto accepted = accept_within_a_second(group.second.get());
    if (!accepted) return fail(EPROTO, "connection {} did not reach the selected member", i);
  }
  return std::string("4 of 4 connections reached the member the program chose");
}

Result<std::string> probe_migrate() {
  auto group = STEER_TRY(make_reuseport_group({.mode = STEER_PROBE_REUSEPORT_FIXED,
                                               .map_kind = STEER_PROBE_SOCKHASH,
                                               .key = 0,
                                               .migrate_key = 1}));
  STEER_TRY(
      bpf::attach_reuseport(group.skeleton->progs.probe_select_or_migrate, group.first.get()));
  auto client = STEER_TRY(connect_tcp(group.address));  // queued on the first member
  group.first.reset();  // closing it migrates the queued connection
  auto accepted = accept_within_a_second(group.second.get());
  if (!accepted)
    return fail(EPROTO, "the queued connection was not migrated: {}", accepted.error().message);
  return std::string("a connection queued on a closing listener was accepted by the other");
}

Result<std::string> probe_sockops() {
  auto skeleton = STEER_TRY(bpf::ProbeSockops::open_and_load("probe_sockops"));
  auto cgroup = STEER_TRY(TemporaryCgroup::create("steer-doctor"));
  auto link = STEER_TRY(bpf::attach_sockops(skeleton->progs.probe_sockops, cgroup.fd()));
  return "attached to " + cgroup.path();
}

Check run_probe(Check check, const std::function<Result<std::string>()>& probe) {
  auto result = probe();
  check.ok = result.has_value();
  check.detail = result ? *result : result.error().message;
  return check;
}

}  // namespace

bool DoctorReport::all_ok() const {
  return std::all_of(checks.begin(), checks.end(), [](const Check& check) { return check.ok; });
}

DoctorReport run_doctor(const DoctorOptions& options) {
  bpf::set_libbpf_log(bpf::LibbpfLog::Quiet);
  DoctorReport report;
  report.checks.push_back(check_kernel_version());
  report.checks.push_back(check_bpffs(options.bpffs));
  report.checks.push_back(check_capabilities());

  auto netns = NetNamespace::create();
  std::optional<ScopedNetns> inside;
  if (netns) {
    if (auto entered = ScopedNetns::enter(*netns)) inside.emplace(std::move(*entered));
  }
  if (!inside) {
    report.checks.push_back({.name = "throw-away network namespace",
                             .ok = false,
                             .detail = netns ? "cannot enter it" : netns.error().message,
                             .needed_for = "the probes below, and `--netns`",
                             .fix = "run as root (CAP_SYS_ADMIN)"});
    return report;
  }
  if (auto up = bring_up_loopback(); !up)
    report.checks.push_back({.name = "loopback in a new namespace", .ok = false,
                             .detail = up.error().message});

  auto socket_map_check = [](const char* name, const char* needed_for, auto probe) {
    return run_probe({.name = name, .needed_for = needed_for}, probe);
  };
  report.checks.push_back(socket_map_check(
      "SOCKMAP holds TCP listeners", "socket pools (the seed feature)",
      [] { return probe_socket_map<bpf::SockMap>(SOCK_STREAM); }));
  report.checks.push_back(socket_map_check(
      "SOCKMAP holds UDP sockets", "UDP services (Linux 5.13+)",
      [] { return probe_socket_map<bpf::SockMap>(SOCK_DGRAM); }));
  report.checks.push_back(socket_map_check(
      "SOCKHASH holds TCP listeners", "socket pools keyed by slot",
      [] { return probe_socket_map<bpf::SockHash<uint32_t>>(SOCK_STREAM); }));
  report.checks.push_back(socket_map_check(
      "SOCKHASH holds UDP sockets", "UDP services (Linux 5.13+)",
      [] { return probe_socket_map<bpf::SockHash<uint32_t>>(SOCK_DGRAM); }));
  report.checks.push_back(run_probe(
      {.name = "sk_lookup attached to a netns", .needed_for = "bindings: steering any address and port (Linux 5.9+)"},
      [&] { return probe_sk_lookup(*netns); }));
  report.checks.push_back(run_probe(
      {.name = "sk_reuseport selects from SOCKHASH", .needed_for = "policies inside reuseport groups (Linux 5.7+)"},
      probe_reuseport_select));
  report.checks.push_back(run_probe(
      {.name = "SELECT_OR_MIGRATE on close", .needed_for = "restarts without resets (Linux 5.14+)"},
      probe_migrate));
  report.checks.push_back(run_probe(
      {.name = "BPF_PROG_TEST_RUN for sk_lookup", .needed_for = "`steer explain` and benchmarks"},
      probe_test_run));
  report.checks.push_back(run_probe(
      {.name = "sockops attached to a cgroup", .needed_for = "least-conn counting and listener auto-registration"},
      probe_sockops));
  for (auto& check : report.checks)
    if (!check.ok && check.fix.empty())
      check.fix = "this kernel lacks it: upgrade to Linux 5.14+ with CONFIG_BPF_SYSCALL, "
                  "CONFIG_NET_SOCK_MSG and CONFIG_CGROUP_BPF";
  return report;
}

}  // namespace steer::core
