// The crash-point sweep. steer promises: every command is all-or-nothing as users see it, and
// a kill at ANY point leaves a state the next command reads and completes. A random kill -9
// rarely hits the dangerous instant, so this kills at an exact system call instead:
//
//   strace -f -qq -e trace=SYSCALLS -e inject=SYSCALL:signal=KILL:when=J steer ...
//
// kills steer on entering the J-th call of SYSCALL: every traced call before it ran, that one
// did not. SYSCALLS are bpf() (every map update, pin and link change), the calls that change
// the state directory (rename, unlink, mkdir, rmdir): `unload` makes no bpf() call at all,
// and setsockopt (a reuseport group's program is set and taken away with it).
//
// For each case (a verb on a setup) the uninterrupted command runs first, under strace, in a
// fresh network namespace and bpffs: its trace numbers the crash points 1..COUNT (the J-th
// traced call), its before and after states are the two states users may see. Then for each
// crash point N, in another fresh namespace with the same setup:
//   - steer is killed entering call N while a client connects to `keep`'s binding over and
//     over (keep is a label no case touches: no connection may fail, except under unload);
//   - (1) `steer --json bindings` and `steer --json status` work (or both say "not loaded")
//     and agree on the count; (0) what they show is the state before or the state after the
//     command, nothing in between; (2) explain, for every listed binding (a sample of at most
//     kExplained when there are more) and for the bindings the command adds or removes, names
//     the most specific listed binding and the outcome status implies; (3) a real connect to
//     every listed binding reaches a socket status lists for its label, or is refused when it
//     lists none, and flows from many source ports reach every socket of a listed pool; not
//     loaded: nothing is steered;
//   - the same command runs again and must complete: exit 0, or, only when the state after
//     the kill already is the state after the command, the verb's plain refusal to redo it
//     (load: "already loaded", unload: "not loaded", unbind: "no binding", unregister: "no
//     registered socket"; bind, load-bindings, register, register-pid and upgrade must exit
//     0); it must leave exactly the state of the uninterrupted run, which passes (1)-(3)
//     again, with one sk_lookup link in the namespace when loaded and none when not.
//
// STEER_CRASH_SWEEP picks the crash points:
//   sampled (default)  COUNT, and kSampledSpread points spread over those right after a
//                      state-changing step (a run of like changes to one map is one step),
//                      the first and the last included: what `make test` runs (a few
//                      seconds a point);
//   mutations          1, COUNT, and every point right after a state-changing call: every
//                      distinct state a kill can leave;
//   full               every N in 1..COUNT (`make soak`; hours: some verbs make 8000 calls);
//   N,N,...            these points only (to replay a failure).
// The uninterrupted run (N = COUNT+1) is checked every time. STEER_CRASH_SWEEP_CALLS=1 lists
// the state-changing calls of the uninterrupted run with their N.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/binding.h"
#include "support/kernel_test.h"
#include "support/peers.h"
#include "support/steer_cli.h"

namespace steer::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kTracedSyscalls =
    "bpf,?rename,?renameat,?renameat2,?unlink,?unlinkat,?mkdir,?mkdirat,?rmdir,?setsockopt";
constexpr int kSampledSpread = 2;  // sampled: this many points after state-changing calls
constexpr size_t kExplained = 10;  // listed bindings explained at most (connects: all of them)
constexpr size_t kTouchedExplained = 4;  // and of those the command adds or removes
constexpr const char* kKeepPoint = "127.0.0.2:7000";  // keep's binding: 127.0.0.2/32 7000
constexpr const char* kExplainSource = "127.0.0.1:40000";
// Flows over a pool: this many a socket, from source ports kFirstSourcePort and up (below
// the ephemeral ports the test's listeners take).
constexpr size_t kFlowsPerSocket = 32;
constexpr uint16_t kFirstSourcePort = 21000;

// ---- the trace of a run --------------------------------------------------------------------

struct TracedCall {
  int index = 0;        // 1-based over every traced call: the crash point N
  std::string syscall;  // "bpf", "rename", ...
  int nth = 0;          // the how-many-th call of this syscall (strace's when=)
  bool changes_state = false;
  std::string kind;     // "bpf BPF_MAP_UPDATE_ELEM", "rename": the same in every run
  std::string what;     // "bpf BPF_MAP_UPDATE_ELEM port_bindings_0", "rename .../1234 -> tmp-..."
  std::string line;     // strace's line, without the pid
};

std::string field(const std::string& line, const std::string& name) {
  auto at = line.find(name + "=");
  if (at == std::string::npos) return "";
  auto start = at + name.size() + 1;
  if (line[start] == '"') return line.substr(start + 1, line.find('"', start + 1) - start - 1);
  return line.substr(start, line.find_first_of(",}) ", start) - start);
}

std::string basename_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// Parses `strace -f -o` output: "PID name(args) = result" lines; exits and signals skipped.
// bpf calls are named by their command and the map they act on (from the pathname of the
// BPF_OBJ_GET or the map_name of the BPF_MAP_CREATE that returned the fd).
std::vector<TracedCall> parse_trace(const std::string& text) {
  static const std::set<std::string> kChangingCommands{
      "BPF_MAP_UPDATE_ELEM",  "BPF_MAP_DELETE_ELEM",     "BPF_MAP_UPDATE_BATCH",
      "BPF_MAP_DELETE_BATCH", "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
      "BPF_MAP_LOOKUP_AND_DELETE_ELEM", "BPF_MAP_FREEZE", "BPF_OBJ_PIN", "BPF_LINK_CREATE",
      "BPF_LINK_UPDATE",      "BPF_LINK_DETACH",         "BPF_PROG_ATTACH", "BPF_PROG_DETACH"};
  std::vector<TracedCall> calls;
  std::map<std::string, int> counts;
  std::map<std::string, std::string> fd_names;  // fd -> map or pin name
  std::istringstream lines(text);
  std::string raw;
  while (std::getline(lines, raw)) {
    // "PID  name(args) = result": the pid is padded to a width.
    auto after_pid = raw.find_first_not_of("0123456789");
    if (after_pid == 0 || after_pid == std::string::npos) continue;
    auto start = raw.find_first_not_of(' ', after_pid);
    if (start == std::string::npos) continue;
    std::string line = raw.substr(start);
    auto paren = line.find('(');
    if (paren == std::string::npos || paren == 0) continue;
    std::string name = line.substr(0, paren);
    if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
      continue;  // "+++ killed by SIGKILL +++", "--- SIGCHLD ... ---"
    TracedCall call;
    call.index = static_cast<int>(calls.size()) + 1;
    call.syscall = name;
    call.nth = ++counts[name];
    call.line = line;
    auto equals = line.rfind(" = ");
    std::string result = equals == std::string::npos ? "" : line.substr(equals + 3);
    if (name == "bpf") {
      std::string command = line.substr(paren + 1, line.find(',', paren) - paren - 1);
      call.changes_state = kChangingCommands.contains(command);
      // An iterator's link (reading the reuseport groups) lives and dies with the process:
      // a kill there leaves the state as it was.
      if (command == "BPF_LINK_CREATE" && line.find("BPF_TRACE_ITER") != std::string::npos)
        call.changes_state = false;
      call.kind = "bpf " + command;
      call.what = call.kind;
      for (const char* fd_field : {"map_fd", "link_fd", "bpf_fd"}) {
        auto fd = field(line, fd_field);
        if (!fd.empty() && fd_names.contains(fd)) {
          call.what += " " + fd_names[fd];
          break;
        }
      }
      auto pathname = field(line, "pathname");
      if (command == "BPF_OBJ_PIN" && !pathname.empty()) call.what += " at " + pathname;
      if (!result.empty() && std::isdigit(static_cast<unsigned char>(result[0]))) {
        if (command == "BPF_OBJ_GET" && !pathname.empty()) fd_names[result] = basename_of(pathname);
        if (command == "BPF_MAP_CREATE") fd_names[result] = field(line, "map_name");
      }
    } else {
      call.changes_state = true;
      call.kind = name;
      call.what = line.substr(0, line.rfind(')') + 1);
    }
    calls.push_back(std::move(call));
  }
  return calls;
}

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

std::string shorten(const std::string& text, size_t limit = 300) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

// ---- which crash points ----------------------------------------------------------------------

struct SweepPlan {
  enum Mode { Sampled, Mutations, Full, Listed } mode = Sampled;
  std::vector<int> listed;
  std::string error;
};

SweepPlan plan_from_environment() {
  SweepPlan plan;
  const char* value = std::getenv("STEER_CRASH_SWEEP");
  std::string text = value ? value : "";
  if (text.empty() || text == "sampled") return plan;
  if (text == "full") plan.mode = SweepPlan::Full;
  else if (text == "mutations") plan.mode = SweepPlan::Mutations;
  else {
    plan.mode = SweepPlan::Listed;
    std::istringstream numbers(text);
    std::string number;
    while (std::getline(numbers, number, ',')) {
      if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos) {
        plan.error = "STEER_CRASH_SWEEP=" + text +
                     ": use sampled, mutations, full, or crash points like 3,17,40";
        return plan;
      }
      plan.listed.push_back(std::stoi(number));
    }
  }
  return plan;
}

// The crash points to sweep, 1..count (count+1, the uninterrupted run, is always checked).
std::vector<int> crash_points(const std::vector<TracedCall>& calls, const SweepPlan& plan) {
  int count = static_cast<int>(calls.size());
  std::set<int> points;
  if (plan.mode == SweepPlan::Full) {
    for (int n = 1; n <= count; ++n) points.insert(n);
  } else if (plan.mode == SweepPlan::Listed) {
    for (int n : plan.listed)
      if (n >= 1 && n <= count) points.insert(n);
  } else {
    // Sampled leaves out N=1 (nothing done yet: the same state as the run's start, which
    // every other point's re-run checks too); mutations keeps it.
    if (plan.mode == SweepPlan::Mutations) points.insert(1);
    points.insert(count);
    // Right after each state-changing call: a kill there leaves that change alone, without
    // the ones after it. Every other point leaves the same state as one of these.
    std::vector<int> after_changes, after_steps;
    const TracedCall* previous = nullptr;
    for (const auto& call : calls) {
      if (!call.changes_state || call.index + 1 > count) continue;
      after_changes.push_back(call.index + 1);
      // A step: a run of changes of one kind to one map (the 516 counters a set has, say)
      // counts once, by the point after its last change.
      if (previous && previous->what == call.what) after_steps.back() = call.index + 1;
      else after_steps.push_back(call.index + 1);
      previous = &call;
    }
    if (plan.mode == SweepPlan::Mutations) {
      points.insert(after_changes.begin(), after_changes.end());
    } else if (after_steps.size() <= kSampledSpread) {
      points.insert(after_steps.begin(), after_steps.end());
    } else {
      // Evenly spread over the steps, both ends included: deterministic.
      for (int i = 0; i < kSampledSpread; ++i)
        points.insert(after_steps[i * (after_steps.size() - 1) / (kSampledSpread - 1)]);
    }
  }
  points.erase(0);
  return {points.begin(), points.end()};
}

// ---- one clean slate: a fresh namespace, bpffs, sockets and their holders --------------------

struct TestSocket {
  std::string role;   // "keep", "web-1", ...: names a socket across namespaces
  std::string label;  // the label it is (or is meant to be) registered for
  Fd fd;              // the test's own copy: it accepts on it, and keeps the socket open
  uint64_t cookie = 0;
};

struct SetupFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Scene {
 public:
  explicit Scene(ScratchNamespace scratch) : scratch_(std::move(scratch)) {}
  Scene(const Scene&) = delete;
  Scene& operator=(const Scene&) = delete;

  const std::string& bpffs() const { return scratch_.bpffs(); }
  ino_t netns_inode() const { return scratch_.inode(); }

  // A TCP listener (127.0.0.1, any port, unless `at`) with a deep backlog.
  int listen(const std::string& role, const std::string& label,
             const std::string& at = "127.0.0.1:0", bool reuseport = false) {
    auto address = SocketAddress::parse(at);
    if (!address) throw SetupFailed(address.error().message);
    auto fd = listen_tcp(*address, {.reuseport = reuseport, .backlog = 4096});
    if (!fd) throw SetupFailed("listen on " + at + ": " + fd.error().message);
    auto cookie = socket_cookie(fd->get());
    if (!cookie) throw SetupFailed(cookie.error().message);
    sockets_.push_back({role, label, std::move(*fd), *cookie});
    return sockets_.back().fd.get();
  }
  // A `sleep` that holds these sockets (at fds 3, 4, ...): register-pid takes them from it.
  pid_t hold(const std::vector<std::string>& roles) {
    std::vector<PassedFd> passed;
    for (const auto& role : roles) passed.push_back({socket(role).fd.get(), 3 + int(passed.size())});
    holders_.push_back(std::make_unique<FdHolder>(std::vector<std::string>{"sleep", "100000"}, passed));
    return holders_.back()->pid();
  }
  const TestSocket& socket(const std::string& role) const {
    for (const auto& socket : sockets_)
      if (socket.role == role) return socket;
    throw SetupFailed("no socket " + role);
  }
  const std::vector<TestSocket>& sockets() const { return sockets_; }
  std::string role_of(uint64_t cookie) const {
    for (const auto& socket : sockets_)
      if (socket.cookie == cookie) return socket.role;
    return "unknown-socket-" + std::to_string(cookie);
  }

  SteerCall call(std::vector<std::string> args) const {
    return SteerCall{.bpffs = bpffs(), .args = std::move(args)};
  }
  void steer_ok(const std::vector<std::string>& args) {
    auto run = call(args);
    auto result = run_steer(run);
    if (result.exit_code != 0) throw SetupFailed(describe(run, result));
  }
  void register_pid(const std::vector<std::string>& roles, const std::string& label) {
    steer_ok({"register-pid", std::to_string(hold(roles)), label});
  }
  std::string write_file(const std::string& name, const std::string& content) {
    return files_.write(name, content);
  }
  std::string path(const std::string& name) const { return (files_.path() / name).string(); }

  // Values a case's command needs from its setup (a cookie, a pid).
  std::map<std::string, std::string> facts;

  // Takes every connection waiting on the test's sockets.
  void drain() const {
    for (const auto& socket : sockets_) accept_all(socket.fd.get());
  }

 private:
  // Destroyed bottom up: holders killed, sockets closed, files removed, namespace left.
  ScratchNamespace scratch_;
  TempDir files_;
  std::vector<TestSocket> sockets_;
  std::vector<std::unique_ptr<FdHolder>> holders_;
};

std::unique_ptr<Scene> new_scene() {
  auto scratch = ScratchNamespace::enter();
  if (!scratch) throw SetupFailed("scratch namespace: " + scratch.error().message);
  return std::make_unique<Scene>(std::move(*scratch));
}

// ---- the cases -------------------------------------------------------------------------------

struct SweepCase {
  std::string name;
  std::function<void(Scene&)> arrange;          // the setup, load included
  std::function<SteerCall(Scene&)> command;     // the command killed (bpffs set by arrange's scene)
  bool touches_keep = false;                    // unload ends keep's steering too
  // Running the command again may fail with this message when the state after the kill
  // already is the state after the command ("already loaded", "no binding", ...).
  std::string refusal_when_done;
};

void PrintTo(const SweepCase& c, std::ostream* out) { *out << c.name; }

// The setup every loaded case shares: keep (a binding, a registered socket held by a
// process), and web (a range binding; one registered socket unless `web_socket` is false).
void base_setup(Scene& s, bool web_socket = true) {
  s.steer_ok({"load"});
  s.listen("keep", "keep");
  s.steer_ok({"bind", "keep", "tcp", "127.0.0.2/32", "7000"});
  s.register_pid({"keep"}, "keep");
  s.steer_ok({"bind", "web", "tcp", "127.0.0.0/24", "8000-8999"});
  if (web_socket) {
    s.listen("web-1", "web");
    s.register_pid({"web-1"}, "web");
  }
}

// base_setup, and web-2 registered in web's pool too (its cookie in facts["cookie"]).
void with_second_web_socket(Scene& s) {
  base_setup(s);
  s.listen("web-2", "web");
  s.register_pid({"web-2"}, "web");
  s.facts["cookie"] = std::to_string(s.socket("web-2").cookie);
}

// base_setup, and a reuseport group of two more of web's sockets, held by a process (so
// `steer reuseport` can take them from their owner), with steer's program on it or not.
void with_reuseport_group(Scene& s, bool attached) {
  base_setup(s);
  int first = s.listen("web-r1", "web", "127.0.0.1:0", /*reuseport=*/true);
  auto bound = local_address(first);
  if (!bound) throw SetupFailed(bound.error().message);
  s.listen("web-r2", "web", bound->to_string(), /*reuseport=*/true);
  std::vector<std::string> args{"register-pid", std::to_string(s.hold({"web-r1", "web-r2"})), "web"};
  if (attached) args.push_back("--reuseport");
  s.steer_ok(args);
}

std::function<SteerCall(Scene&)> words(std::vector<std::string> args) {
  return [args](Scene& s) { return s.call(args); };
}

// A few hundred bindings over four labels and five prefix lengths (/16 to /32, nested, inside
// 127/8 so every one is local), single ports and ranges, with keep's and web's bindings.
std::string many_bindings_toml() {
  const char* labels[] = {"web", "api", "batch", "spare"};
  const int lengths[] = {16, 20, 24, 28, 32};
  std::string toml =
      "[[binding]]\nlabel = \"keep\"\nprotocol = \"tcp\"\nprefix = \"127.0.0.2/32\"\nports = \"7000\"\n\n"
      "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"127.0.0.0/24\"\nports = \"8000-8999\"\n\n";
  for (int i = 0; i < 300; ++i) {
    int length = lengths[i % 5];
    // 127.X.(16*k).0/length: host bits zero for every length, nested within one X.
    std::string prefix = fmt::format("127.{}.{}.0/{}", 16 + i / 5, (i % 5) * 16, length);
    std::string ports = i % 2 ? std::to_string(80 + i % 7) : fmt::format("{}-{}", 1000 + i % 3 * 1000, 1999 + i % 3 * 1000);
    toml += fmt::format("[[binding]]\nlabel = \"{}\"\nprotocol = \"tcp\"\nprefix = \"{}\"\nports = \"{}\"\n\n",
                        labels[i % 4], prefix, ports);
  }
  return toml;
}

std::vector<SweepCase> sweep_cases() {
  return {
      {.name = "load",
       // Nothing loaded; keep's socket listens on keep's address itself: with no binding the
       // program must let every connection through while it is being loaded.
       .arrange =
           [](Scene& s) {
             s.listen("keep", "keep", kKeepPoint);
             s.hold({"keep"});
           },
       .command = words({"load"}),
       .refusal_when_done = "already loaded"},
      {.name = "unload",
       .arrange = [](Scene& s) { base_setup(s); },
       .command = words({"unload"}),
       .touches_keep = true,
       .refusal_when_done = "not loaded"},
      {.name = "upgrade", .arrange = [](Scene& s) { base_setup(s); }, .command = words({"upgrade"})},
      // The issue's own example: a second range on web's /24.
      {.name = "bind_range_existing_label",
       .arrange = [](Scene& s) { base_setup(s); },
       .command = words({"bind", "web", "tcp", "127.0.0.0/24", "9000-9099"})},
      {.name = "bind_port_existing_label",
       .arrange = [](Scene& s) { base_setup(s); },
       .command = words({"bind", "web", "tcp", "127.0.1.0/28", "8080"})},
      {.name = "bind_range_new_label",
       .arrange = [](Scene& s) { base_setup(s); },
       .command = words({"bind", "api", "tcp", "127.0.2.0/23", "5000-5999"})},
      {.name = "bind_port_new_label",
       .arrange = [](Scene& s) { base_setup(s); },
       .command = words({"bind", "api", "tcp", "127.0.3.0/30", "443"})},
      {.name = "unbind_range",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.steer_ok({"bind", "web", "tcp", "127.0.0.0/24", "9000-9099"});
           },
       .command = words({"unbind", "web", "tcp", "127.0.0.0/24", "9000-9099"}),
       .refusal_when_done = "no binding"},
      {.name = "unbind_port",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.steer_ok({"bind", "web", "tcp", "127.0.1.0/28", "8080"});
           },
       .command = words({"unbind", "web", "tcp", "127.0.1.0/28", "8080"}),
       .refusal_when_done = "no binding"},
      {.name = "load_bindings",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             // Bindings the new set drops, and sockets for its labels (all but spare).
             s.steer_ok({"bind", "web", "tcp", "127.1.0.0/16", "80"});
             s.steer_ok({"bind", "api", "tcp", "127.1.2.0/24", "443"});
             s.listen("api-1", "api");
             s.register_pid({"api-1"}, "api");
             s.listen("batch-1", "batch");
             s.register_pid({"batch-1"}, "batch");
             s.write_file("bindings.toml", many_bindings_toml());
           },
       .command = [](Scene& s) { return s.call({"load-bindings", s.path("bindings.toml")}); }},
      // A second socket into web's pool, by fd (the test keeps it open).
      {.name = "register_fd",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.listen("web-2", "web");
           },
       .command =
           [](Scene& s) {
             auto call = s.call({"register", "web", "--fd", "5"});
             call.fds = {{s.socket("web-2").fd.get(), 5}};
             return call;
           }},
      // Two sockets of one process into web's empty pool: connections are refused until then.
      {.name = "register_pid",
       .arrange =
           [](Scene& s) {
             base_setup(s, /*web_socket=*/false);
             s.listen("web-1", "web");
             s.listen("web-2", "web");
             s.facts["pid"] = std::to_string(s.hold({"web-1", "web-2"}));
           },
       .command = [](Scene& s) { return s.call({"register-pid", s.facts["pid"], "web"}); }},
      // An IPv4 and an IPv6 socket: two pools (web's IPv4 pool, and its IPv6 pool, created by
      // the command), switched in by one update.
      {.name = "register_pid_two_pools",
       .arrange =
           [](Scene& s) {
             base_setup(s, /*web_socket=*/false);
             s.listen("web-1", "web");
             s.listen("web-6", "web", "[::1]:0");
             s.facts["pid"] = std::to_string(s.hold({"web-1", "web-6"}));
           },
       .command = [](Scene& s) { return s.call({"register-pid", s.facts["pid"], "web"}); }},
      {.name = "unregister_cookie",
       .arrange = with_second_web_socket,
       .command =
           [](Scene& s) { return s.call({"unregister", "web", "--cookie", s.facts["cookie"]}); },
       .refusal_when_done = "no registered socket"},
      // Two of web's three sockets, owned by one process.
      {.name = "unregister_pid",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.listen("web-2", "web");
             s.listen("web-3", "web");
             pid_t pid = s.hold({"web-2", "web-3"});
             s.steer_ok({"register-pid", std::to_string(pid), "web"});
             s.facts["pid"] = std::to_string(pid);
           },
       .command = [](Scene& s) { return s.call({"unregister", "web", "--pid", s.facts["pid"]}); },
       .refusal_when_done = "no registered socket"},
      // web-2 of web's two sockets stops taking connections.
      {.name = "drain",
       .arrange = with_second_web_socket,
       .command =
           [](Scene& s) { return s.call({"drain", "web", "--cookie", s.facts["cookie"]}); }},
      // web-2 becomes a standby: web-1 takes everything.
      {.name = "weight",
       .arrange = with_second_web_socket,
       .command =
           [](Scene& s) { return s.call({"weight", "web", "--cookie", s.facts["cookie"], "0"}); }},
      // Both of web's pools (IPv4 and IPv6) change policy in one update.
      {.name = "policy_two_pools",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.listen("web-2", "web");
             s.listen("web-6", "web", "[::1]:0");
             s.register_pid({"web-2", "web-6"}, "web");
           },
       .command = words({"policy", "web", "round-robin"})},
      // Generation 2 (an IPv4 and an IPv6 socket) active, generation 1 draining: changes in
      // two pools, switched in one update.
      {.name = "promote_two_pools",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.listen("web-2", "web");
             s.listen("web-6", "web", "[::1]:0");
             s.steer_ok({"register-pid", std::to_string(s.hold({"web-2", "web-6"})), "web",
                         "--generation", "2"});
           },
       .command = words({"promote", "web", "2"})},
      // Both of web's pools lose their sockets in one update; the IPv6 pool is freed.
      {.name = "unregister_pid_two_pools",
       .arrange =
           [](Scene& s) {
             base_setup(s);
             s.listen("web-2", "web");
             s.listen("web-6", "web", "[::1]:0");
             pid_t pid = s.hold({"web-2", "web-6"});
             s.steer_ok({"register-pid", std::to_string(pid), "web"});
             s.facts["pid"] = std::to_string(pid);
           },
       .command = [](Scene& s) { return s.call({"unregister", "web", "--pid", s.facts["pid"]}); },
       .refusal_when_done = "no registered socket"},
      // Steer's program onto a reuseport group of two of web's sockets (the program first,
      // then the record), and off it (the record first).
      {.name = "reuseport_attach",
       .arrange = [](Scene& s) { with_reuseport_group(s, false); },
       .command = words({"reuseport", "attach", "web"})},
      {.name = "reuseport_detach",
       .arrange = [](Scene& s) { with_reuseport_group(s, true); },
       .command = words({"reuseport", "detach", "web"}),
       .refusal_when_done = "no reuseport group"},
  };
}

// ---- what users see: `steer --json bindings` and `steer --json status` ----------------------

struct View {
  bool loaded = false;
  // What the all-or-nothing check compares: sockets by role, not by cookie, so views of two
  // namespaces compare.
  std::set<std::string> bindings;      // "web tcp 127.0.0.0/24 8000-8999"
  std::set<std::string> destinations;  // "web tcp ipv4 hash" (with its policy)
  std::set<std::string> sockets;       // "web tcp ipv4 web-1 gen 1 weight 1 active"
  std::set<std::string> groups;        // "web tcp steered members 2 registered 2"
  // For the steering checks.
  std::vector<core::Binding> listed;
  // label -> cookies of its tcp/ipv4 pool that take new connections: the active ones, or
  // when there are none, the standby ones (weight 0); never draining ones.
  std::map<std::string, std::set<uint64_t>> usable;

  bool operator==(const View& other) const {
    return loaded == other.loaded && bindings == other.bindings &&
           destinations == other.destinations && sockets == other.sockets &&
           groups == other.groups;
  }
};

// What `actual` has that `expected` lacks and the other way round (a few of each).
std::string difference(const View& expected, const View& actual) {
  if (expected.loaded != actual.loaded)
    return actual.loaded ? "loaded, expected not loaded" : "not loaded, expected loaded";
  std::string text;
  auto compare = [&](const char* what, const std::set<std::string>& want,
                     const std::set<std::string>& have) {
    std::vector<std::string> missing, extra;
    std::ranges::set_difference(want, have, std::back_inserter(missing));
    std::ranges::set_difference(have, want, std::back_inserter(extra));
    auto list = [](const std::vector<std::string>& items) {
      std::string joined;
      for (size_t i = 0; i < items.size() && i < 4; ++i) joined += (i ? ", " : "") + items[i];
      if (items.size() > 4) joined += fmt::format(" and {} more", items.size() - 4);
      return joined;
    };
    if (!missing.empty()) text += fmt::format(" missing {} {};", what, list(missing));
    if (!extra.empty()) text += fmt::format(" extra {} {};", what, list(extra));
  };
  compare("bindings", expected.bindings, actual.bindings);
  compare("destinations", expected.destinations, actual.destinations);
  compare("sockets", expected.sockets, actual.sockets);
  compare("reuseport groups", expected.groups, actual.groups);
  return text.empty() ? "the same" : text;
}

using Problems = std::vector<std::string>;

std::string ports_text(const core::PortRange& ports) {
  return ports.is_all() ? "0" : ports.to_string();
}

// As View::bindings has it, and as the JSON writes a binding: "web tcp 127.0.0.0/24 80".
std::string binding_text(const core::Binding& binding) {
  return fmt::format("{} {} {} {}", binding.label, core::to_string(binding.protocol),
                     binding.prefix.to_string(), ports_text(binding.ports));
}

std::string binding_text(const json& entry) {
  return fmt::format("{} {} {} {}", entry.at("label").get<std::string>(),
                     entry.at("protocol").get<std::string>(), entry.at("prefix").get<std::string>(),
                     entry.at("ports").get<std::string>());
}

// Reads the view; on a failure of check (1) adds the problem and returns nothing.
std::optional<View> read_view(const Scene& scene, const std::string& stage, Problems& problems) {
  auto bindings_call = scene.call({"bindings"});
  bindings_call.json = true;
  auto status_call = scene.call({"status"});
  status_call.json = true;
  auto bindings = run_steer(bindings_call);
  auto status = run_steer(status_call);
  auto bindings_json = json::parse(bindings.out, nullptr, false);
  auto status_json = json::parse(status.out, nullptr, false);
  auto report = [&](const std::string& what) {
    problems.push_back(fmt::format("(1) {}: {}\n{}{}", stage, what,
                                   describe(bindings_call, bindings), describe(status_call, status)));
    return std::nullopt;
  };
  if (bindings_json.is_discarded() || status_json.is_discarded())
    return report("bindings or status printed no valid JSON");
  View view;
  if (bindings.exit_code != 0 || status.exit_code != 0) {
    auto not_loaded = [](const CommandResult& result, const json& output) {
      return result.exit_code != 0 && output.contains("error") &&
             output["error"].value("code", "") == "ENOENT" &&
             output["error"].value("message", "").find("not loaded") != std::string::npos;
    };
    if (not_loaded(bindings, bindings_json) && not_loaded(status, status_json)) return view;
    return report("bindings or status failed");
  }
  // Loaded but not attached (a load or unload killed between its rename and its link):
  // nothing is steered, and `load` or `unload` finishes it. Users see it as not loaded.
  if (!status_json.value("attached", true)) return view;
  view.loaded = true;
  try {
    for (const auto& entry : bindings_json.at("bindings")) {
      view.bindings.insert(binding_text(entry));
      auto parsed = core::Binding::parse(entry.at("label").get<std::string>(),
                                         entry.at("protocol").get<std::string>(),
                                         entry.at("prefix").get<std::string>(),
                                         entry.at("ports").get<std::string>());
      if (!parsed) return report("bindings lists " + binding_text(entry) + ": " + parsed.error().message);
      view.listed.push_back(*parsed);
    }
    auto count = status_json.at("binding_count").get<size_t>();
    if (count != view.bindings.size())
      problems.push_back(fmt::format("(1) {}: status counts {} bindings, bindings lists {}", stage,
                                     count, view.bindings.size()));
    if (status_json.contains("bindings")) {
      std::set<std::string> in_status;
      for (const auto& entry : status_json["bindings"]) in_status.insert(binding_text(entry));
      if (in_status != view.bindings)
        problems.push_back(fmt::format("(1) {}: status and bindings list different bindings", stage));
    }
    for (const auto& destination : status_json.at("destinations")) {
      auto label = destination.at("label").get<std::string>();
      auto protocol = destination.at("protocol").get<std::string>();
      auto family = destination.at("family").get<std::string>();
      view.destinations.insert(fmt::format("{} {} {} {}", label, protocol, family,
                                           destination.at("policy").get<std::string>()));
      std::set<uint64_t> active, standby;
      for (const auto& socket : destination.at("sockets")) {
        auto cookie = socket.at("cookie").get<uint64_t>();
        auto state = socket.at("state").get<std::string>();
        view.sockets.insert(fmt::format("{} {} {} {} gen {} weight {} {}", label, protocol,
                                        family, scene.role_of(cookie),
                                        socket.at("generation").get<uint32_t>(),
                                        socket.at("weight").get<uint32_t>(), state));
        if (state == "active") active.insert(cookie);
        if (state == "standby") standby.insert(cookie);
      }
      if (protocol == "tcp" && family == "ipv4" && !(active.empty() && standby.empty()))
        view.usable[label] = active.empty() ? standby : active;
    }
    // A group is listed with what the kernel runs for it (read from the kernel itself).
    for (const auto& group : status_json.at("reuseport_groups"))
      view.groups.insert(fmt::format("{} {} {} members {} registered {}",
                                     group.at("label").get<std::string>(),
                                     group.at("protocol").get<std::string>(),
                                     group.at("steered").get<bool>() ? "steered" : "not steered",
                                     group.at("members").get<size_t>(),
                                     group.at("registered").get<size_t>()));
  } catch (const json::exception& error) {
    return report(std::string("unexpected JSON: ") + error.what());
  }
  return view;
}

// ---- is what is listed what the program does? -------------------------------------------------

struct Point {
  core::Prefix address;  // a /32
  uint16_t port = 0;
  std::string text;      // "127.0.0.1:8000"
};

// An address:port a binding covers (TCP over IPv4: the cases bind nothing else).
Point point_in(const core::Binding& binding) {
  Point point;
  point.address = binding.prefix;
  point.address.length = 32;
  if (binding.prefix.length < 32) point.address.bytes[3] |= 1;  // not the network address
  point.port = binding.ports.first;
  point.text = fmt::format("{}.{}.{}.{}:{}", point.address.bytes[0], point.address.bytes[1],
                           point.address.bytes[2], point.address.bytes[3], point.port);
  return point;
}

// The binding the program must pick for a TCP connection to `point`: the longest prefix;
// on an equal prefix a single port, then the narrowest range (all ports is the widest).
const core::Binding* most_specific(const std::vector<core::Binding>& listed, const Point& point) {
  const core::Binding* best = nullptr;
  auto rank = [](const core::Binding& b) {
    return std::make_tuple(int(b.prefix.length), b.ports.is_single(), -int(b.ports.width()));
  };
  for (const auto& binding : listed) {
    if (binding.protocol != core::Protocol::Tcp || binding.prefix.family != AF_INET) continue;
    if (!binding.prefix.contains(point.address)) continue;
    if (point.port < binding.ports.first || point.port > binding.ports.last) continue;
    if (!best || rank(binding) > rank(*best)) best = &binding;
  }
  return best;
}

// A TCP connect with a deadline. error 0: connected; keep `client` until the connection is
// accepted (it closes with RST: no TIME_WAIT left behind).
struct Connection {
  int error = 0;
  Fd client;
};
// From 127.0.0.1:source_port when given (a flow of its own), else from any port.
Connection connect_to(const std::string& to, uint16_t source_port = 0,
                      std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  auto address = SocketAddress::parse(to);
  if (!address) return {EINVAL, Fd()};
  Fd fd(::socket(address->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return {errno, Fd()};
  linger reset{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  if (source_port != 0) {
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    auto source = SocketAddress::ipv4_loopback(source_port);
    if (::bind(fd.get(), source.data(), source.size()) != 0) return {errno, Fd()};
  }
  if (::connect(fd.get(), address->data(), address->size()) == 0) return {0, std::move(fd)};
  if (errno != EINPROGRESS) return {errno, Fd()};
  pollfd ready{fd.get(), POLLOUT, 0};
  if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) return {ETIMEDOUT, Fd()};
  int error = 0;
  socklen_t length = sizeof(error);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
  return {error, error == 0 ? std::move(fd) : Fd()};
}

// Which of the test's sockets took the connection just made (none if none did in time).
const TestSocket* who_accepted(const Scene& scene) {
  std::vector<pollfd> entries;
  for (const auto& socket : scene.sockets()) entries.push_back({socket.fd.get(), POLLIN, 0});
  if (::poll(entries.data(), entries.size(), 2000) <= 0) return nullptr;
  for (size_t i = 0; i < entries.size(); ++i)
    if ((entries[i].revents & POLLIN) && accept_now(entries[i].fd)) return &scene.sockets()[i];
  return nullptr;
}

std::string role_text(const TestSocket* socket) { return socket ? socket->role : "no socket of the test"; }

// `n` items of `items`, evenly spread (all of them if there are no more).
template <class T>
std::vector<T> spread(const std::vector<T>& items, size_t n) {
  if (items.size() <= n) return items;
  std::vector<T> chosen;
  for (size_t i = 0; i < n; ++i) chosen.push_back(items[i * (items.size() - 1) / (n - 1)]);
  return chosen;
}

struct Reference {
  std::string command;  // the command's words
  View before, after;
  std::vector<TracedCall> calls;
  std::vector<core::Binding> touched;  // listed before or after, not both
};

// Checks (2) and (3) on a view: the program steers what is listed, and nothing else.
void check_steering(const Scene& scene, const View& view, const Reference& reference,
                    const std::string& stage, Problems& problems) {
  scene.drain();
  if (!view.loaded) {
    // Nothing may be steered: every binding of the loaded states gets the kernel's own
    // answer, and nothing listens on those addresses.
    std::vector<core::Binding> all = reference.before.listed;
    all.insert(all.end(), reference.after.listed.begin(), reference.after.listed.end());
    for (const auto& binding : all) {
      if (binding.protocol != core::Protocol::Tcp || binding.prefix.family != AF_INET) continue;
      auto point = point_in(binding);
      auto connection = connect_to(point.text);
      int error = connection.error;
      if (error == 0)
        problems.push_back(fmt::format(
            "(3) {}: steer is not loaded, yet a connect to {} ({}) reached {}", stage, point.text,
            binding.to_string(), role_text(who_accepted(scene))));
      else if (error != ECONNREFUSED)
        problems.push_back(fmt::format("(3) {}: steer is not loaded; a connect to {} failed "
                                       "with {}, not refused", stage, point.text, errno_name(error)));
    }
    scene.drain();
    return;
  }
  std::vector<core::Binding> candidates = view.listed;
  candidates.insert(candidates.end(), reference.touched.begin(), reference.touched.end());
  std::set<std::string> seen;
  std::vector<Point> points;
  for (const auto& binding : candidates) {
    if (binding.protocol != core::Protocol::Tcp || binding.prefix.family != AF_INET) continue;
    if (auto point = point_in(binding); seen.insert(point.text).second) points.push_back(point);
  }

  // (3) A real connect to every point. The first time a label with several sockets comes up,
  // flows from many source ports: each socket status lists must take some.
  std::set<std::string> spread_checked;
  for (const auto& point : points) {
    const auto* winner = most_specific(view.listed, point);
    if (winner && view.usable.contains(winner->label)) {
      const auto& cookies = view.usable.at(winner->label);
      bool over_the_pool = cookies.size() > 1 && spread_checked.insert(winner->label).second;
      size_t flows = over_the_pool ? kFlowsPerSocket * cookies.size() : 1;
      std::set<uint64_t> reached;
      bool all_reached_the_pool = true;
      for (size_t i = 0; i < flows && all_reached_the_pool; ++i) {
        auto connection =
            connect_to(point.text, over_the_pool ? static_cast<uint16_t>(kFirstSourcePort + i) : 0);
        if (connection.error != 0) {
          problems.push_back(fmt::format(
              "(3) {}: connect to {} failed ({}); it is {}'s ({}) and status lists {} usable "
              "socket(s) for {}", stage, point.text, errno_name(connection.error), winner->label,
              winner->to_string(), cookies.size(), winner->label));
          all_reached_the_pool = false;
          break;
        }
        const TestSocket* socket = who_accepted(scene);
        if (!socket || !cookies.contains(socket->cookie)) {
          problems.push_back(fmt::format(
              "(3) {}: connect to {} ({}) reached {}, not a socket status lists for {}", stage,
              point.text, winner->to_string(), role_text(socket), winner->label));
          all_reached_the_pool = false;
          break;
        }
        reached.insert(socket->cookie);
      }
      if (over_the_pool && all_reached_the_pool && reached.size() != cookies.size()) {
        std::string missed;
        for (uint64_t cookie : cookies)
          if (!reached.contains(cookie)) missed += (missed.empty() ? "" : ", ") + scene.role_of(cookie);
        problems.push_back(fmt::format(
            "(3) {}: {} flows to {} ({}) never reached {}, though status lists it in {}'s pool",
            stage, flows, point.text, winner->to_string(), missed, winner->label));
      }
    } else {
      auto connection = connect_to(point.text);
      int error = connection.error;
      std::string whose = winner ? fmt::format("{}'s ({}), whose pool status shows empty",
                                               winner->label, winner->to_string())
                                 : "covered by no listed binding, and nothing listens there";
      if (error == 0)
        problems.push_back(fmt::format("(3) {}: connect to {} succeeded (reached {}); it is {}",
                                       stage, point.text, role_text(who_accepted(scene)), whose));
      else if (error != ECONNREFUSED)
        problems.push_back(fmt::format("(3) {}: connect to {} failed with {}, not refused; it is {}",
                                       stage, point.text, errno_name(error), whose));
    }
  }
  scene.drain();

  // (2) explain: every listed binding (a spread sample past kExplained), keep's, and the
  // ones the command adds or removes.
  std::vector<core::Binding> explained = spread(view.listed, kExplained);
  for (const auto& binding : view.listed)
    if (binding.label == "keep") explained.push_back(binding);
  auto touched = spread(reference.touched, kTouchedExplained);
  explained.insert(explained.end(), touched.begin(), touched.end());
  std::set<std::string> explained_points;
  for (const auto& binding : explained) {
    if (binding.protocol != core::Protocol::Tcp || binding.prefix.family != AF_INET) continue;
    auto point = point_in(binding);
    if (!explained_points.insert(point.text).second) continue;
    const auto* winner = most_specific(view.listed, point);
    auto call = scene.call({"explain", "tcp", kExplainSource, point.text});
    call.json = true;
    auto result = run_steer(call);
    auto answer = json::parse(result.out, nullptr, false);
    std::string where = fmt::format("(2) {}: explain tcp {}", stage, point.text);
    if (result.exit_code != 0 || answer.is_discarded() || !answer.contains("outcome")) {
      problems.push_back(where + " failed:\n" + describe(call, result));
      continue;
    }
    std::string outcome = answer["outcome"];
    std::string matched = answer.contains("binding") ? binding_text(answer["binding"]) : "no binding";
    if (!winner) {
      if (outcome != "pass" || answer.contains("binding"))
        problems.push_back(fmt::format("{}: {} by {}, but no listed binding covers it", where,
                                       outcome, matched));
      continue;
    }
    std::string expected_binding = binding_text(*winner);
    bool has_socket = view.usable.contains(winner->label);
    std::string expected_outcome = has_socket ? "steered" : "refused";
    if (matched != expected_binding)
      problems.push_back(fmt::format("{}: matched {}, but the most specific listed binding is {}",
                                     where, matched, expected_binding));
    else if (outcome != expected_outcome)
      problems.push_back(fmt::format("{}: {} ({}), but status lists {} usable socket(s) for {}",
                                     where, outcome, answer.value("reason", ""),
                                     has_socket ? view.usable.at(winner->label).size() : 0,
                                     winner->label));
    else if (has_socket && !view.usable.at(winner->label).contains(
                               answer["socket"].value("cookie", uint64_t{0})))
      problems.push_back(fmt::format("{}: steered to cookie {}, not one status lists for {}", where,
                                     answer["socket"].value("cookie", uint64_t{0}), winner->label));
  }
}

// sk_lookup links attached to the scene's namespace.
int sk_lookup_links(const Scene& scene, Problems& problems) {
  auto links = run_command({"bpftool", "--json", "link", "show"});
  auto parsed = json::parse(links.out, nullptr, false);
  if (links.exit_code != 0 || !parsed.is_array()) {
    problems.push_back("bpftool link show failed: " + links.err);
    return -1;
  }
  int count = 0;
  for (const auto& link : parsed)
    if (link.value("attach_type", "") == "sk_lookup" &&
        link.value("netns_ino", uint64_t{0}) == static_cast<uint64_t>(scene.netns_inode()))
      ++count;
  return count;
}

// ---- the command under test, killed or not, with a client connecting meanwhile --------------

// Connects to keep's binding over and over while it runs; keep's socket must take each one.
class KeepClient {
 public:
  explicit KeepClient(int keep_listener)
      : thread_([this, keep_listener] { loop(keep_listener); }) {}
  ~KeepClient() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int connects() const { return connects_; }
  int failures() const { return failures_; }
  int misrouted() const { return misrouted_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void loop(int listener) {
    while ((!done_ || connects_ < 5) && connects_ < 1000000) {
      ++connects_;
      auto connection = connect_to(kKeepPoint, 0, std::chrono::seconds(2));
      int error = connection.error;
      if (error != 0) {
        if (failures_++ == 0) first_failure_ = errno_name(error);
      } else {
        pollfd ready{listener, POLLIN, 0};
        if (::poll(&ready, 1, 1000) != 1 || !accept_now(listener)) ++misrouted_;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));  // share the two cores
    }
  }
  std::atomic<bool> done_{false};
  std::atomic<int> connects_{0}, failures_{0}, misrouted_{0};
  std::string first_failure_;
  std::thread thread_;
};

struct TracedRun {
  SteerCall call;
  CommandResult result;
  int connects = 0, failures = 0, misrouted = 0;
  std::string first_failure;
};

// Runs the case's command under strace (`kill`: the call to kill it at; none: just traced).
TracedRun run_traced(Scene& scene, const SweepCase& c, const TracedCall* kill, const std::string& trace) {
  TracedRun run;
  run.call = c.command(scene);
  run.call.wrapper = {"strace", "-f", "-qq", "-o", trace, "-e", std::string("trace=") + kTracedSyscalls};
  if (kill)
    run.call.wrapper.insert(run.call.wrapper.end(),
                            {"-e", fmt::format("inject={}:signal=KILL:when={}", kill->syscall, kill->nth)});
  KeepClient client(scene.socket("keep").fd.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the client is connecting
  run.result = run_steer(run.call);
  client.stop();
  run.connects = client.connects();
  run.failures = client.failures();
  run.misrouted = client.misrouted();
  run.first_failure = client.first_failure();
  return run;
}

// Everything after the command (killed or not): the checks, the command again, the checks.
void check_after(Scene& scene, const SweepCase& c, const Reference& reference, const TracedRun& run,
                 Problems& problems) {
  if (!c.touches_keep && (run.failures > 0 || run.misrouted > 0))
    problems.push_back(fmt::format(
        "(client) while the command ran, {} of {} connects to keep's binding {} failed (first: "
        "{}) and {} did not reach keep's socket; the command does not touch keep",
        run.failures, run.connects, kKeepPoint, run.first_failure, run.misrouted));
  scene.drain();

  const std::string after_kill = "after the kill";
  auto view = read_view(scene, after_kill, problems);
  if (view) {
    if (!(*view == reference.before) && !(*view == reference.after))
      problems.push_back(fmt::format(
          "(0) {}: neither the state before the command nor the state after it. Against "
          "before:{} Against after:{}", after_kill, difference(reference.before, *view),
          difference(reference.after, *view)));
    check_steering(scene, *view, reference, after_kill, problems);
  }

  SteerCall again = run.call;
  again.wrapper.clear();
  auto result = run_steer(again);
  // Done already: by the kill's time, or by the repair that starts the rerun (a kill past
  // the commit point of a pool change, which the repair completes and says so).
  bool done_already = (view && *view == reference.after) ||
                      result.err.find("steer: note: completed the interrupted") != std::string::npos;
  if (result.exit_code != 0 &&
      !(done_already && !c.refusal_when_done.empty() &&
        (result.out + result.err).find(c.refusal_when_done) != std::string::npos))
    problems.push_back("(rerun) the same command again did not complete:\n" + describe(again, result));

  const std::string after_rerun = "after the command ran again";
  auto final_view = read_view(scene, after_rerun, problems);
  if (!final_view) return;
  if (!(*final_view == reference.after))
    problems.push_back(fmt::format("(final) {}: not the state of an uninterrupted run:{}",
                                   after_rerun, difference(reference.after, *final_view)));
  check_steering(scene, *final_view, reference, after_rerun, problems);
  int links = sk_lookup_links(scene, problems);
  int expected_links = reference.after.loaded ? 1 : 0;
  if (links >= 0 && links != expected_links)
    problems.push_back(fmt::format("(final) {}: {} sk_lookup link(s) attached to the namespace, "
                                   "expected {} ({})", after_rerun, links, expected_links,
                                   final_view->loaded ? "loaded" : "not loaded"));
}

struct PointResult {
  int n = 0;                 // the crash point; count+1 for the uninterrupted run
  std::string call;          // the reference trace's call N ("bpf BPF_MAP_UPDATE_ELEM control")
  std::string killed_line;   // strace's line of the call the kill stopped at
  Problems problems;
  int connects = 0;
};

// The bindings the command adds or removes.
std::vector<core::Binding> touched_bindings(const View& before, const View& after) {
  std::vector<core::Binding> touched;
  for (const auto& binding : before.listed)
    if (!after.bindings.contains(binding_text(binding))) touched.push_back(binding);
  for (const auto& binding : after.listed)
    if (!before.bindings.contains(binding_text(binding))) touched.push_back(binding);
  return touched;
}

class Kill : public KernelTest, public ::testing::WithParamInterface<SweepCase> {};

// Issue: every command is all-or-nothing as users see it, and a kill at any point leaves a
// state the next command reads and completes.
TEST_P(Kill, AtEachCall) {
  const auto& c = GetParam();
  auto plan = plan_from_environment();
  ASSERT_TRUE(plan.error.empty()) << plan.error;
  ASSERT_EQ(run_command({"strace", "-V"}).exit_code, 0) << "strace is missing: scripts/install-deps";
  auto started = Clock::now();

  // The uninterrupted command: its trace numbers the crash points; its before and after
  // states are the only two users may see.
  Reference reference;
  std::vector<PointResult> results;
  {
    std::unique_ptr<Scene> scene;
    try {
      scene = new_scene();
      c.arrange(*scene);
    } catch (const std::exception& error) {
      FAIL() << "setup: " << error.what();
    }
    Problems problems;
    auto before = read_view(*scene, "before the command", problems);
    ASSERT_TRUE(before && problems.empty()) << (problems.empty() ? "" : problems.front());
    reference.before = *before;
    std::string trace = scene->path("reference.trace");
    TracedRun run = run_traced(*scene, c, nullptr, trace);
    ASSERT_EQ(run.result.exit_code, 0) << "the uninterrupted command failed:\n"
                                       << describe(run.call, run.result);
    reference.command = shell_words(run.call.args);
    reference.calls = parse_trace(read_file(trace));
    ASSERT_FALSE(reference.calls.empty()) << "strace traced no call of:\n"
                                          << describe(run.call, run.result);
    auto after = read_view(*scene, "after the command", problems);
    ASSERT_TRUE(after && problems.empty()) << (problems.empty() ? "" : problems.front());
    reference.after = *after;
    reference.touched = touched_bindings(reference.before, reference.after);
    check_after(*scene, c, reference, run, problems);
    results.push_back({.n = static_cast<int>(reference.calls.size()) + 1,
                       .call = "none: the uninterrupted run",
                       .killed_line = "",
                       .problems = problems,
                       .connects = run.connects});
  }
  int count = static_cast<int>(reference.calls.size());
  auto points = crash_points(reference.calls, plan);
  auto changing = std::ranges::count_if(reference.calls, &TracedCall::changes_state);
  std::cout << fmt::format("[ sweep    ] {}: `steer {}` makes {} traced calls ({} change state); "
                           "{} crash points and the uninterrupted run\n",
                           c.name, reference.command, count, changing, points.size())
            << std::flush;
  if (std::getenv("STEER_CRASH_SWEEP_CALLS"))  // to choose points to replay
    for (const auto& call : reference.calls)
      if (call.changes_state)
        std::cout << fmt::format("[ call     ] N={} changes state: {}\n", call.index, call.what);

  for (int n : points) {
    const TracedCall& kill = reference.calls[n - 1];
    PointResult point{.n = n, .call = kill.what};
    try {
      auto scene = new_scene();
      c.arrange(*scene);
      auto before = read_view(*scene, "before the command", point.problems);
      if (before && !(*before == reference.before))
        point.problems.push_back("(setup) not the setup of the uninterrupted run:" +
                                 difference(reference.before, *before));
      std::string trace = scene->path("killed.trace");
      TracedRun run = run_traced(*scene, c, &kill, trace);
      auto killed_calls = parse_trace(read_file(trace));
      point.killed_line = killed_calls.empty() ? "(no traced call)" : killed_calls.back().line;
      if (!killed_calls.empty() && (killed_calls.back().index != n ||
                                    killed_calls.back().kind != kill.kind))
        point.problems.push_back(fmt::format(
            "(kill) killed at call {} ({}), but the uninterrupted run's call {} is {}: the "
            "command's calls differ from run to run", killed_calls.back().index,
            killed_calls.back().what, n, kill.what));
      point.connects = run.connects;
      if (run.result.signal != SIGKILL)
        point.problems.push_back(fmt::format(
            "(kill) the command was not killed at {} #{}: it made fewer calls than the "
            "uninterrupted run\n{}", kill.syscall, kill.nth, describe(run.call, run.result)));
      check_after(*scene, c, reference, run, point.problems);
    } catch (const std::exception& error) {
      point.problems.push_back(std::string("(setup) ") + error.what());
    }
    // Every point of a short sweep; of a long one the failures, and progress now and then.
    if (points.size() <= 200 || !point.problems.empty())
      std::cout << fmt::format("[ point    ] {} N={}/{} at {}: {}\n", c.name, n, count + 1,
                               shorten(point.call, 80),
                               point.problems.empty()
                                   ? "ok"
                                   : fmt::format("FAILED ({} problems)", point.problems.size()));
    results.push_back(std::move(point));
    if (points.size() > 200 && results.size() % 100 == 1)
      std::cout << fmt::format(
          "[ progress ] {}: {} of {} points, {} failed, {} s\n", c.name, results.size() - 1,
          points.size(), std::ranges::count_if(results, [](const PointResult& r) { return !r.problems.empty(); }),
          std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count());
    std::cout << std::flush;
  }

  // The report: each failing point with its call and every check that failed.
  std::vector<const PointResult*> failed;
  for (const auto& result : results)
    if (!result.problems.empty()) failed.push_back(&result);
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count();
  std::cout << fmt::format("[ sweep    ] {}: {} of {} points failed ({} s)\n", c.name,
                           failed.size(), results.size(), seconds);
  if (failed.empty()) return;
  std::string report = fmt::format("`steer {}`: {} of {} crash points failed\n", reference.command,
                                   failed.size(), results.size());
  constexpr size_t kDetailed = 40;
  for (size_t i = 0; i < failed.size(); ++i) {
    const auto& point = *failed[i];
    if (i == kDetailed) {
      report += "... and the points";
      for (size_t j = i; j < failed.size(); ++j) report += " " + std::to_string(failed[j]->n);
      report += "\n";
      break;
    }
    report += point.n == count + 1
                  ? fmt::format("\n* N={} (no kill: the uninterrupted run)\n", point.n)
                  : fmt::format("\n* N={} (of 1..{}): killed entering {}\n  strace: {}\n",
                                point.n, count, point.call, shorten(point.killed_line));
    for (const auto& problem : point.problems) report += "  - " + problem + "\n";
  }
  std::string replay;
  for (const auto* point : failed)
    if (point->n <= count && std::ranges::count(replay, ',') < 20)
      replay += (replay.empty() ? "" : ",") + std::to_string(point->n);
  report += fmt::format("\nReplay: STEER_CRASH_SWEEP={} build/tests/steer_e2e_tests "
                        "--gtest_filter='CrashSweep/Kill.AtEachCall/{}'\n",
                        replay.empty() ? "sampled" : replay, c.name);
  ADD_FAILURE() << report;
}

INSTANTIATE_TEST_SUITE_P(CrashSweep, Kill, ::testing::ValuesIn(sweep_cases()),
                         [](const ::testing::TestParamInfo<SweepCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace steer::testing
