// `steer load-bindings` of 1M bindings through the CLI, as a user runs it: wall time, the
// steer process's peak RSS, and the kernel memory the binding maps take.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "benches.h"
#include "common.h"
#include "core/dispatcher.h"
#include "core/state.h"

namespace steer::bench {

namespace {

struct ChildRun {
  int exit_code = -1;
  double seconds = 0;
  long max_rss_kib = 0;
};

// Runs argv with its output in `log` (shown when it fails), measuring time and peak RSS.
ChildRun run_child(const std::vector<std::string>& argv, const std::string& log) {
  require_private_netns();
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    if (out) ::dup2(STDOUT_FILENO, STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  if (::wait4(pid, &status, 0, &usage) < 0) die("wait4");
  ChildRun run;
  run.seconds = seconds_since(start);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.max_rss_kib = usage.ru_maxrss;
  if (run.exit_code != 0) {
    std::ifstream text(log);
    std::string output((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
    die(fmt::format("{} exited {}: {}", argv[3], run.exit_code, output));
  }
  return run;
}

// Fields of /proc/meminfo, in KiB.
std::map<std::string, long> meminfo() {
  std::map<std::string, long> fields;
  std::ifstream file("/proc/meminfo");
  std::string name;
  long value;
  std::string unit;
  while (file >> name >> value) {
    name.pop_back();  // the colon
    fields[name] = value;
    std::getline(file, unit);
  }
  return fields;
}

// What the kernel charges a map (fdinfo's memlock), in bytes.
long map_memlock(const std::string& pin) {
  Fd fd(bpf_obj_get(pin.c_str()));
  if (!fd) die("open " + pin);
  std::ifstream info(fmt::format("/proc/self/fdinfo/{}", fd.get()));
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("memlock:", 0) == 0) return std::stol(line.substr(8));
  return -1;
}

void write_json(const std::string& path, const std::vector<core::Binding>& bindings) {
  std::ofstream out(path);
  out << "{\"bindings\": [\n";
  for (size_t i = 0; i < bindings.size(); ++i)
    out << fmt::format("{{\"label\": \"{}\", \"protocol\": \"tcp\", \"prefix\": \"{}\", \"ports\": \"{}\"}}{}\n",
                       bindings[i].label, bindings[i].prefix.to_string(),
                       bindings[i].ports.first, i + 1 < bindings.size() ? "," : "");
  out << "]}\n";
}

void write_toml(const std::string& path, const std::vector<core::Binding>& bindings) {
  std::ofstream out(path);
  for (const auto& binding : bindings)
    out << fmt::format("[[binding]]\nlabel = \"{}\"\nprotocol = \"tcp\"\nprefix = \"{}\"\nports = \"{}\"\n\n",
                       binding.label, binding.prefix.to_string(), binding.ports.first);
}

}  // namespace

std::string load_bindings_bench(const Options& options) {
  progress("steer load-bindings (the CLI)");
  auto bpffs = enter_fresh_netns();
  const size_t size = options.quick ? 10000 : 1000000;
  std::string dir = "/tmp/steer-bench.XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) die("create a directory for the bindings files");
  const std::string log = dir + "/steer.log";
  // Two different sets (port 80, then 443), so the second load really replaces the first.
  auto first = loopback_host_bindings(size, 80, "web");
  auto second = loopback_host_bindings(size, 443, "web");
  std::string json = dir + "/bindings.json", toml = dir + "/bindings.toml";
  write_json(json, first);
  write_toml(toml, second);
  auto file_size = [](const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return double(st.st_size) / (1 << 20);
  };

  const std::string& steer = options.steer_binary;
  run_child({steer, "--bpffs", bpffs.path(), "load"}, log);
  std::string state_dir = core::state_directory(bpffs.path(), check(current_netns_inode(), "netns"));

  Table table({"step", "file", "seconds", "steer peak RSS MiB", "binding maps memlock MiB",
               "kernel Slab delta MiB"});
  auto step = [&](const std::string& name, const std::string& file) {
    auto before = meminfo();
    auto run = run_child({steer, "--bpffs", bpffs.path(), "load-bindings", file}, log);
    auto after = meminfo();
    long memlock = 0;
    for (const char* map : {"port_bindings_0", "port_bindings_1", "range_bindings_0", "range_bindings_1"})
      memlock += map_memlock(state_dir + "/" + map);
    auto dispatcher = check(core::Dispatcher::open(core::Target{"", bpffs.path()}, core::LockMode::Shared),
                            "open the state");
    size_t loaded = check(dispatcher.binding_count(), "count the bindings");
    if (loaded != size) die(fmt::format("{} bindings loaded, expected {}", loaded, size));
    double slab = double(after["Slab"] - before["Slab"]) / 1024;
    progress("  {}: {:.2f} s, peak RSS {} MiB, memlock {:.1f} MiB, Slab delta {:.1f} MiB", name,
             run.seconds, run.max_rss_kib / 1024, double(memlock) / (1 << 20), slab);
    table.add({name, fmt::format("{} ({:.0f} MiB)", file.substr(file.rfind('/') + 1), file_size(file)),
               fmt::format("{:.2f}", run.seconds), fmt::format("{}", run.max_rss_kib / 1024),
               fmt::format("{:.1f}", double(memlock) / (1 << 20)), fmt::format("{:.1f}", slab)});
  };
  step(fmt::format("{} bindings into an empty steer", count_label(size)), json);
  step(fmt::format("{} bindings replacing {} others", count_label(size), count_label(size)), toml);
  run_child({steer, "--bpffs", bpffs.path(), "unload"}, log);
  ::unlink(log.c_str());
  ::unlink(json.c_str());
  ::unlink(toml.c_str());
  ::rmdir(dir.c_str());
  return fmt::format("Each binding: label \"web\", tcp, a distinct /32 in 127.0.0.0/8, one port.\n\n{}",
                     table.markdown());
}

}  // namespace steer::bench
