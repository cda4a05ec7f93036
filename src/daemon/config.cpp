#include "daemon/config.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>

#include <toml++/toml.h>

#include "base/socket.h"
#include "base/trusted_dir.h"
#include "core/binding_toml.h"
#include "core/policy.h"

namespace steer::daemon {
namespace {

constexpr size_t kConfigMaxBytes = size_t{16} << 20;

// Where a node is, for messages: "steerd.toml:12".
std::string at(const std::string& name, const toml::source_region& source) {
  return fmt::format("{}:{}", name, source.begin.line);
}

template <class Table, class Check>
Result<void> each_key(const Table& table, const std::string& name, const char* what,
                      const char* keys, Check check) {
  for (auto&& [key, value] : table) {
    auto handled = check(std::string(key.str()), value);
    if (!handled) return std::unexpected(handled.error());
    if (!*handled && key.str() == "bindings_file")  // TOML puts it in the table above it
      return fail(EINVAL, "{}: bindings_file is in {}: move it above the first [table] of the "
                  "file, where top-level keys go", at(name, key.source()), what);
    if (!*handled)
      return fail(EINVAL, "{}: unknown key '{}' in {}: it takes {}", at(name, key.source()),
                  key.str(), what, keys);
  }
  return {};
}

Result<std::string> string_value(const toml::node& value, const std::string& name,
                                 std::string_view key) {
  if (const auto* text = value.as_string()) return text->get();
  return fail(EINVAL, "{}: {} is {}: it must be a string", at(name, value.source()), key,
              core::toml_type_name(value));
}

Result<bool> bool_value(const toml::node& value, const std::string& name, std::string_view key) {
  if (const auto* flag = value.as_boolean()) return flag->get();
  return fail(EINVAL, "{}: {} is {}: it must be true or false", at(name, value.source()), key,
              core::toml_type_name(value));
}

Result<std::vector<uint32_t>> id_list(const toml::node& value, const std::string& name,
                                      std::string_view key) {
  const auto* list = value.as_array();
  if (list == nullptr)
    return fail(EINVAL, "{}: {} is {}: it must be a list of numeric ids, such as [1000, 1001]",
                at(name, value.source()), key, core::toml_type_name(value));
  std::vector<uint32_t> ids;
  for (const auto& item : *list) {
    const auto* number = item.as_integer();
    if (number == nullptr || number->get() < 0 ||
        number->get() >= std::numeric_limits<uint32_t>::max())
      return fail(EINVAL, "{}: {} holds {}: each entry must be a numeric id from 0 to {}",
                  at(name, item.source()), key,
                  number ? std::to_string(number->get()) : core::toml_type_name(item),
                  std::numeric_limits<uint32_t>::max() - 1);
    ids.push_back(static_cast<uint32_t>(number->get()));
  }
  return ids;
}

Result<gid_t> group_id(const std::string& name, const std::string& where) {
  if (!name.empty() && name.size() < 10 &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return static_cast<gid_t>(std::stoul(name));
  struct group entry{};
  struct group* found = nullptr;
  std::vector<char> buffer(16384);
  if (::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found)
    return fail(ENOENT, "{}: group = \"{}\": no such group (give its name or number)", where, name);
  return found->gr_gid;
}

Result<void> parse_steerd(const toml::table& table, const std::string& name, DaemonConfig& config) {
  return each_key(table, name, "[steerd]", "bpffs, netns",
                  [&](const std::string& key, const toml::node& value) -> Result<bool> {
    if (key == "bpffs") {
      config.bpffs = STEER_TRY(string_value(value, name, key));
      if (config.bpffs.empty() || config.bpffs[0] != '/')
        return fail(EINVAL, "{}: bpffs = \"{}\": it must be an absolute path (the bpffs mount, "
                            "usually /sys/fs/bpf)", at(name, value.source()), config.bpffs);
    } else if (key == "netns") {
      config.netns = STEER_TRY(string_value(value, name, key));
    } else {
      return false;
    }
    return true;
  });
}

Result<void> parse_control(const toml::table& table, const std::string& name, DaemonConfig& config) {
  return each_key(table, name, "[control]", "socket, mode, group",
                  [&](const std::string& key, const toml::node& value) -> Result<bool> {
    std::string where = at(name, value.source());
    if (key == "socket") {
      config.control_socket = STEER_TRY(string_value(value, name, key));
      if (config.control_socket.empty() || config.control_socket[0] != '/' ||
          config.control_socket.size() >= 108)
        return fail(EINVAL, "{}: socket = \"{}\": it must be an absolute path of at most 107 "
                            "bytes", where, config.control_socket);
    } else if (key == "mode") {
      std::string mode = STEER_TRY(string_value(value, name, key));
      bool octal = !mode.empty() && mode.size() <= 4 &&
                   std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
      unsigned long bits = octal ? std::stoul(mode, nullptr, 8) : 0;
      if (!octal || bits > 0777)
        return fail(EINVAL, "{}: mode = \"{}\": it must be octal permission bits such as "
                            "\"0660\"", where, mode);
      if (bits & 0002)
        return fail(EINVAL, "{}: mode = \"{}\" lets every user write to the control socket: "
                            "use \"0660\" with a group (group = \"steer\")", where, mode);
      config.control_mode = static_cast<mode_t>(bits);
    } else if (key == "group") {
      config.control_group = STEER_TRY(group_id(STEER_TRY(string_value(value, name, key)), where));
    } else {
      return false;
    }
    return true;
  });
}

Result<void> parse_metrics(const toml::table& table, const std::string& name, DaemonConfig& config) {
  return each_key(table, name, "[metrics]", "listen",
                  [&](const std::string& key, const toml::node& value) -> Result<bool> {
    if (key != "listen") return false;
    config.metrics_listen = STEER_TRY(string_value(value, name, key));
    if (!config.metrics_listen.empty()) {
      auto address = SocketAddress::parse(config.metrics_listen);
      if (!address)
        return fail(EINVAL, "{}: listen = \"{}\": {} (write an IP address and a port, such as "
                            "\"127.0.0.1:9641\" or \"[::1]:9641\"; \"\" turns metrics off)",
                    at(name, value.source()), config.metrics_listen, address.error().message);
    }
    return true;
  });
}

Result<ServiceConfig> parse_service(const std::string& label, const toml::table& table,
                                    const std::string& name) {
  ServiceConfig service;
  service.label = label;
  if (auto valid = core::validate_label(label); !valid)
    return fail(EINVAL, "{}: [service.\"{}\"]: {}", at(name, table.source()), label,
                valid.error().message);
  STEER_TRY(each_key(table, name, "a [service.LABEL] table",
                     "policy, allow_uids, allow_gids, reuseport, weight",
                     [&](const std::string& key, const toml::node& value) -> Result<bool> {
    if (key == "policy") {
      std::string policy = STEER_TRY(string_value(value, name, key));
      service.policy = core::parse_policy(policy);
      if (!service.policy)
        return fail(EINVAL, "{}: policy = \"{}\": it must be one of {}", at(name, value.source()),
                    policy, core::policy_names());
    } else if (key == "allow_uids") {
      auto ids = STEER_TRY(id_list(value, name, key));
      service.allow_uids.assign(ids.begin(), ids.end());
    } else if (key == "allow_gids") {
      auto ids = STEER_TRY(id_list(value, name, key));
      service.allow_gids.assign(ids.begin(), ids.end());
    } else if (key == "reuseport") {
      service.reuseport = STEER_TRY(bool_value(value, name, key));
    } else if (key == "weight") {
      const auto* number = value.as_integer();
      if (number == nullptr || number->get() < 0 || number->get() > 1000)
        return fail(EINVAL, "{}: weight is {}: it must be an integer from 0 (standby) to 1000",
                    at(name, value.source()),
                    number ? std::to_string(number->get()) : core::toml_type_name(value));
      service.weight = static_cast<uint32_t>(number->get());
    } else {
      return false;
    }
    return true;
  }));
  return service;
}

}  // namespace

bool ServiceConfig::allows(uid_t uid, gid_t gid, const std::vector<gid_t>& groups) const {
  if (uid == 0) return true;
  if (std::find(allow_uids.begin(), allow_uids.end(), uid) != allow_uids.end()) return true;
  for (gid_t allowed : allow_gids)
    if (allowed == gid || std::find(groups.begin(), groups.end(), allowed) != groups.end())
      return true;
  return false;
}

bool DaemonConfig::allows(const std::string& label, uid_t uid, gid_t gid,
                          const std::vector<gid_t>& groups) const {
  if (uid == 0) return true;
  auto found = services.find(label);
  return found != services.end() && found->second.allows(uid, gid, groups);
}

DaemonConfig default_config() {
  DaemonConfig config;
  config.source = "the built-in default";
  return config;
}

Result<DaemonConfig> parse_config(std::string_view text, const std::string& name) {
  toml::table document;
  try {
    document = toml::parse(text, name);
  } catch (const toml::parse_error& error) {
    return fail(EINVAL, "{}:{}: not valid TOML: {}", name, error.source().begin.line,
                error.description());
  }
  DaemonConfig config;
  config.source = name;
  STEER_TRY(each_key(document, name, "the config",
                     "[steerd], [control], [metrics], [service.LABEL], [[binding]], bindings_file",
                     [&](const std::string& key, const toml::node& value) -> Result<bool> {
    const toml::table* table = value.as_table();
    auto need_table = [&]() -> Result<void> {
      if (table == nullptr)
        return fail(EINVAL, "{}: {} is {}: write it as a [{}] table", at(name, value.source()),
                    key, core::toml_type_name(value), key);
      return {};
    };
    if (key == "steerd") {
      STEER_TRY(need_table());
      STEER_TRY(parse_steerd(*table, name, config));
    } else if (key == "control") {
      STEER_TRY(need_table());
      STEER_TRY(parse_control(*table, name, config));
    } else if (key == "metrics") {
      STEER_TRY(need_table());
      STEER_TRY(parse_metrics(*table, name, config));
    } else if (key == "service") {
      STEER_TRY(need_table());
      for (auto&& [label, entry] : *table) {
        const toml::table* service = entry.as_table();
        if (service == nullptr)
          return fail(EINVAL, "{}: service.{} is {}: write it as a [service.{}] table",
                      at(name, entry.source()), label.str(), core::toml_type_name(entry),
                      label.str());
        config.services[std::string(label.str())] =
            STEER_TRY(parse_service(std::string(label.str()), *service, name));
      }
    } else if (key == "binding") {
      const toml::array* list = value.as_array();
      if (list == nullptr)
        return fail(EINVAL, "{}: binding is {}: write each binding as a [[binding]] table",
                    at(name, value.source()), core::toml_type_name(value));
      config.manages_bindings = true;
      auto bindings = STEER_TRY(core::bindings_from_toml(*list, name));
      config.bindings.insert(config.bindings.end(), bindings.begin(), bindings.end());
    } else if (key == "bindings_file") {
      config.bindings_file = STEER_TRY(string_value(value, name, key));
      config.manages_bindings = true;
      auto bindings = core::read_bindings_file(config.bindings_file);
      if (!bindings)
        return fail(bindings.error().code, "{}: bindings_file = \"{}\": {}",
                    at(name, value.source()), config.bindings_file, bindings.error().message);
      config.bindings.insert(config.bindings.end(), bindings->begin(), bindings->end());
    } else {
      return false;
    }
    return true;
  }));
  if (auto valid = core::validate_binding_set(config.bindings); !valid)
    return fail(EINVAL, "{}: the bindings do not fit together: {}", name, valid.error().message);
  return config;
}

Result<DaemonConfig> read_config(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!file) return fail_errno(path);
  struct stat info{};
  if (::fstat(file.get(), &info) != 0) return fail_errno(path);
  if (!S_ISREG(info.st_mode))
    return fail(EINVAL, "{}: not a regular file: give the path of a TOML config file", path);
  // The config says who may register what: only its owner (root, or the user steerd runs
  // as) may be able to change it.
  if (!is_trusted_owner(info.st_uid) || (info.st_mode & (S_IWGRP | S_IWOTH)))
    return fail(EPERM, "{}: owned by uid {} with mode {:04o}: steerd reads only a config that "
                       "root (or its own user) owns and no one else may write (chown root "
                       "{}; chmod 644 {})", path, info.st_uid, info.st_mode & 07777, path, path);
  if (static_cast<size_t>(info.st_size) > kConfigMaxBytes)
    return fail(EFBIG, "{}: {} bytes: a config file is at most 16 MiB (put many bindings in a "
                       "bindings_file)", path, info.st_size);
  std::string text(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t got = ::read(file.get(), text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail_errno(path);
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  text.resize(done);
  return parse_config(text, path);
}

}  // namespace steer::daemon
