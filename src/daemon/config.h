// steerd's configuration: a TOML file (docs/operations.md shows every key), or the built-in
// default when there is none. Parsing checks everything it can without the kernel: types,
// unknown keys, labels, policies, the bindings as a set; every error names file and line.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "abi/steer_abi.h"
#include "base/error.h"
#include "core/binding.h"

namespace steer::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/steer/steerd.toml";
inline constexpr const char* kDefaultControlSocket = "/run/steer/steerd.sock";
inline constexpr const char* kDefaultMetricsListen = "127.0.0.1:9641";

// A label steerd knows from its config: its policy, and who may register its sockets.
struct ServiceConfig {
  std::string label;
  std::optional<steer_policy> policy;  // none: whatever it is (hash for a new destination)
  // Peers (SO_PEERCRED) allowed to register, unregister, drain, undrain, promote and weigh
  // this label's sockets: a uid in allow_uids, or a primary or supplementary gid in
  // allow_gids. Root always may.
  std::vector<uid_t> allow_uids;
  std::vector<gid_t> allow_gids;
  // Sockets registered through steerd get steer's sk_reuseport program on their groups.
  bool reuseport = false;
  // The weight sockets registered through steerd join with (0: standby). Later changes
  // (steer weight, the weight op) are theirs: a reload does not reset them.
  uint32_t weight = 1;
  bool allows(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) const;
};

struct DaemonConfig {
  std::string source;  // the file, or "the built-in default"
  // Where the state is (as `steer --bpffs --netns`).
  std::string bpffs = "/sys/fs/bpf";
  std::string netns;  // a network namespace's path; empty: steerd's own
  // The control socket: path, mode (never world-writable) and group (none: steerd's).
  std::string control_socket = kDefaultControlSocket;
  mode_t control_mode = 0660;
  std::optional<gid_t> control_group;
  // host:port of /metrics and /healthz; empty: no HTTP server.
  std::string metrics_listen = kDefaultMetricsListen;
  std::map<std::string, ServiceConfig> services;
  // The bindings steerd keeps loaded: [[binding]] tables and the bindings file's. When the
  // config has neither (no `binding` key, no bindings_file), steerd leaves bindings alone
  // (the CLI manages them).
  bool manages_bindings = false;
  std::vector<core::Binding> bindings;
  std::string bindings_file;

  // Whether a peer may change the label's sockets.
  bool allows(const std::string& label, uid_t uid, gid_t gid,
              const std::vector<gid_t>& groups) const;
};

// The configuration with no file: the dispatcher in steerd's namespace, no bindings, the
// control socket at /run/steer/steerd.sock, metrics on 127.0.0.1:9641.
DaemonConfig default_config();

// Parses config text; `name` (the path) starts every message. The bindings file it names is
// read too, and the bindings are checked as a set.
Result<DaemonConfig> parse_config(std::string_view text, const std::string& name);
// Reads and parses a config file (a regular file of at most 16 MiB).
Result<DaemonConfig> read_config(const std::string& path);

}  // namespace steer::daemon
