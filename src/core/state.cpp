#include "core/state.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <vector>

#include "base/bpffs.h"
#include "base/flock.h"
#include "base/trusted_dir.h"
#include "bpf/libbpf_log.h"
#include "bpf/skeleton.h"
#include "base/version.h"
#include "dispatcher.skel.h"

namespace steer::core {

namespace {

using DispatcherSkeleton = bpf::Skeleton<dispatcher>;

std::string steer_root(const std::string& bpffs) { return bpffs + "/steer"; }

// The bpffs must be there; the default location is mounted on demand, as systemd would.
Result<void> ensure_bpffs(const std::string& bpffs) {
  if (is_bpffs(bpffs)) return {};
  if (bpffs == kDefaultBpffs) {
    ::mkdir(bpffs.c_str(), 0755);
    if (::mount("bpf", bpffs.c_str(), "bpf", 0, "mode=0700") == 0) return {};
    return fail_errno("mount bpffs on " + bpffs + " (needs CAP_SYS_ADMIN; or: mount -t bpf bpf " +
                      bpffs + ")");
  }
  return fail(ENOTDIR, "{} is not a bpf filesystem: mount one there (mount -t bpf bpf {}) or "
                       "pass --bpffs with a bpffs directory", bpffs, bpffs);
}

// Opens <bpffs>/steer (creating it, 0750) and takes its flock: one lock for every writer.
// Refused when another user could have planted it or could rename it: the bpffs root must
// be private or sticky, and <bpffs>/steer root's own, with no permission for others.
Result<Fd> lock_root(const Target& target, LockMode mode, bool create) {
  std::string root = steer_root(target.bpffs);
  auto bpffs = STEER_TRY(open_holding_directory(AT_FDCWD, target.bpffs));
  auto fd = open_trusted_directory(bpffs.get(), "steer", create, 0750);
  if (!fd) {
    if (fd.error().code == ENOENT)
      return fail(ENOENT, "steer is not loaded (no {}): run `steer load` first", root);
    return std::unexpected(fd.error());
  }
  STEER_TRY(lock_with_timeout(fd->get(), mode == LockMode::Exclusive, target.lock_timeout, root,
                              target.on_lock_wait));
  return fd;
}

Result<NetNamespace> resolve_netns(const Target& target) {
  return target.netns_path.empty() ? NetNamespace::current() : NetNamespace::open(target.netns_path);
}

// Removes a directory of pins (maps, links) and the directory.
void remove_pins(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* entry = ::readdir(d)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

// Leftovers of a load or unload that was killed half-way: never visible as state. (bpffs
// refuses names with a dot, so temporaries are "tmp-<inode>-<pid>".)
void remove_stale_temporaries(const std::string& root, ino_t inode) {
  std::string prefix = fmt::format("tmp-{}-", inode);
  std::vector<std::string> stale;
  if (DIR* d = ::opendir(root.c_str())) {
    while (dirent* entry = ::readdir(d))
      if (std::string(entry->d_name).rfind(prefix, 0) == 0) stale.push_back(entry->d_name);
    ::closedir(d);
  }
  for (const auto& name : stale) remove_pins(root + "/" + name);
}

// The maps a state directory pins: every map of the dispatcher object but its internal
// ones (.bss, .rodata). Read from the object itself, so the list is written once.
std::vector<std::string> object_map_names(const bpf_object* object) {
  std::vector<std::string> names;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, object) {
    if (!bpf_map__is_internal(map)) names.emplace_back(bpf_map__name(map));
  }
  return names;
}

// The maps sized by the state's binding capacity (steer load --capacity), not by the object.
bool sized_by_binding_capacity(std::string_view name) {
  return name.starts_with("port_bindings_") || name.starts_with("range_bindings_") ||
         name == "port_counts";
}

steer_meta make_meta(uint32_t binding_capacity) {
  steer_meta meta{};
  meta.schema_version = STEER_SCHEMA_VERSION;
  meta.max_destinations = STEER_MAX_DESTINATIONS;
  meta.pool_slots = STEER_POOL_SLOTS;
  meta.maglev_size = STEER_MAGLEV_SIZE;
  meta.binding_capacity = binding_capacity;
  meta.created_unix = static_cast<uint64_t>(::time(nullptr));
  std::strncpy(meta.steer_version, kSteerVersionString, sizeof(meta.steer_version) - 1);
  return meta;
}

// Oldest schema this release can upgrade from (src/core/migrations.cpp has the steps).
constexpr uint32_t kOldestUpgradableSchema = 1;

Result<void> check_meta(const steer_meta& meta, const std::string& path, bool for_upgrade) {
  if (meta.pool_slots != STEER_POOL_SLOTS || meta.max_destinations != STEER_MAX_DESTINATIONS ||
      meta.maglev_size != STEER_MAGLEV_SIZE || meta.schema_version > STEER_SCHEMA_VERSION ||
      meta.schema_version < kOldestUpgradableSchema)
    return fail(EPROTO,
                "the state at {} was written by steer {} (schema {}), which this steer {} "
                "(schema {}) cannot read: use that steer, or `steer unload` (it removes state "
                "of any version; connections are refused until `steer load`)",
                path, meta.steer_version, meta.schema_version, kSteerVersionString,
                STEER_SCHEMA_VERSION);
  if (meta.schema_version < STEER_SCHEMA_VERSION && !for_upgrade)
    return fail(EPROTO,
                "the state at {} was written by steer {} (schema {}); this is steer {} (schema "
                "{}): run `steer upgrade` to bring it up to date (bindings, sockets and "
                "counters are kept, no connection is refused)",
                path, meta.steer_version, meta.schema_version, kSteerVersionString,
                STEER_SCHEMA_VERSION);
  return {};
}

// A pinned map must be what this build's object declares, map by map (a release may add
// maps; it changes one only through a migration step).
Result<void> check_compatible(const bpf::Map& pinned, const bpf_map* declared,
                              const steer_meta& meta, const std::string& path) {
  std::string name = bpf_map__name(declared);
  uint32_t max_entries = sized_by_binding_capacity(name) ? static_cast<uint32_t>(meta.binding_capacity)
                                                : bpf_map__max_entries(declared);
  if (pinned.type() != bpf_map__type(declared) || pinned.key_size() != bpf_map__key_size(declared) ||
      pinned.value_size() != bpf_map__value_size(declared) || pinned.max_entries() != max_entries)
    return fail(EPROTO,
                "map {} at {} has type {}, {}-byte keys, {}-byte values, {} entries; this steer "
                "expects type {}, {}, {}, {}: the state needs a migration this release does not "
                "have (`steer unload` and `steer load` start over)",
                name, path, static_cast<int>(pinned.type()), pinned.key_size(),
                pinned.value_size(), pinned.max_entries(), static_cast<int>(bpf_map__type(declared)),
                bpf_map__key_size(declared), bpf_map__value_size(declared), max_entries);
  return {};
}

Result<DispatcherSkeleton> open_dispatcher_object() {
  return DispatcherSkeleton::open("dispatcher");
}

}  // namespace

std::string state_directory(const std::string& bpffs, ino_t netns_inode) {
  return fmt::format("{}/{}", steer_root(bpffs), netns_inode);
}

namespace {

// Attaches the dispatcher program of a loaded object to the namespace and pins the link into
// the state directory. Until the pin exists a kill detaches it again (the link's fd closes).
Result<void> attach_and_pin(const bpf_program* program, const NetNamespace& netns,
                            const std::string& dir) {
  auto link = STEER_TRY(bpf::attach_sk_lookup(program, netns.fd()));
  std::string link_pin = dir + "/" + kLinkPin;
  STEER_TRY(link.pin(link_pin));
  ::chmod(link_pin.c_str(), 0640);
  return {};
}

}  // namespace

Result<State> State::load(const Target& target, const LoadOptions& options) {
  bpf::set_libbpf_log(bpf::LibbpfLog::Warnings);
  auto netns = STEER_TRY(resolve_netns(target));
  STEER_TRY(ensure_bpffs(target.bpffs));
  auto lock = STEER_TRY(lock_root(target, LockMode::Exclusive, true));

  std::string root = steer_root(target.bpffs);
  std::string final_dir = state_directory(target.bpffs, netns.inode());
  remove_stale_temporaries(root, netns.inode());
  struct stat st {};
  if (::stat(final_dir.c_str(), &st) == 0) {
    ino_t inode = netns.inode();
    auto opened = open_at(final_dir, std::move(netns), std::move(lock), Opening::CurrentSchema);
    if (!opened)
      return fail(EEXIST, "steer is already loaded in network namespace {} ({}), and: {}", inode,
                  final_dir, opened.error().message);
    auto state = std::move(*opened);
    if (state.attached())
      return fail(EEXIST, "steer is already loaded in network namespace {} ({}): see `steer "
                          "status`, or `steer unload` first to start over",
                  state.netns_inode(), final_dir);
    // A load or unload was killed between the state's rename and the link's pin: attach.
    auto skeleton = STEER_TRY(open_dispatcher_object());
    STEER_TRY(state.reuse_maps(skeleton->obj));
    STEER_TRY(skeleton.load());
    STEER_TRY(attach_and_pin(skeleton->progs.steer_dispatch, state.netns(), final_dir));
    int link = bpf_obj_get((final_dir + "/" + kLinkPin).c_str());
    if (link < 0) return fail_errno("open the dispatcher's link pin in " + final_dir);
    state.link_.reset(link);
    return state;
  }

  auto skeleton = STEER_TRY(open_dispatcher_object());
  for (const auto& name : object_map_names(skeleton->obj))
    if (sized_by_binding_capacity(name))
      bpf_map__set_max_entries(bpf_object__find_map_by_name(skeleton->obj, name.c_str()),
                               options.binding_capacity);
  STEER_TRY(skeleton.load());
  STEER_TRY(bpf::store_single(skeleton->maps.meta, make_meta(options.binding_capacity)));

  // Maps are pinned aside and renamed into place: the state exists whole or not at all. The
  // program is attached only after the rename, so a kill before it leaves nothing steering
  // (the temporary is removed by the next load), and a kill after it leaves loaded state
  // that is not attached: status says so and `steer load` attaches it.
  std::string temporary = fmt::format("{}/tmp-{}-{}", root, netns.inode(), ::getpid());
  if (::mkdir(temporary.c_str(), 0750) != 0) return fail_errno("create " + temporary);
  auto abandon = [&](Error error) {
    remove_pins(temporary);
    return std::unexpected(std::move(error));
  };
  for (const auto& name : object_map_names(skeleton->obj)) {
    std::string pin = temporary + "/" + name;
    if (int ret = bpf_map__pin(bpf_object__find_map_by_name(skeleton->obj, name.c_str()),
                               pin.c_str());
        ret < 0)
      return abandon(Error{-ret, fmt::format("pin map {} at {}", name, pin)});
    ::chmod(pin.c_str(), 0640);
  }
  if (::rename(temporary.c_str(), final_dir.c_str()) != 0)
    return abandon(fail_errno("rename " + temporary + " to " + final_dir).error());
  STEER_TRY(attach_and_pin(skeleton->progs.steer_dispatch, netns, final_dir));
  return open_at(final_dir, std::move(netns), std::move(lock), Opening::CurrentSchema);
}

Result<State> State::open(const Target& target, LockMode mode) {
  return open_existing(target, mode, Opening::CurrentSchema);
}

Result<State> State::open_for_upgrade(const Target& target) {
  return open_existing(target, LockMode::Exclusive, Opening::ForUpgrade);
}

Result<State> State::open_existing(const Target& target, LockMode mode, Opening opening) {
  auto netns = STEER_TRY(resolve_netns(target));
  if (!is_bpffs(target.bpffs))
    return fail(ENOENT, "steer is not loaded: {} is not a mounted bpf filesystem (run `steer "
                        "load`, or pass --bpffs)", target.bpffs);
  auto lock = STEER_TRY(lock_root(target, mode, false));
  std::string dir = state_directory(target.bpffs, netns.inode());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return fail(ENOENT, "steer is not loaded in network namespace {} (no {}): run `steer load` "
                        "first", netns.inode(), dir);
  return open_at(dir, std::move(netns), std::move(lock), opening);
}

Result<State> State::open_at(const std::string& path, NetNamespace netns, Fd lock,
                             Opening opening) {
  State state;
  state.path_ = path;
  state.netns_.emplace(std::move(netns));
  state.lock_ = std::move(lock);
  auto damaged = [&](const Error& error) {
    return fail(error.code, "the state at {} is damaged ({}): `steer unload` and `steer load` "
                            "rebuild it", path, error.message);
  };
  // meta first: an incompatible layout is refused before anything else is read.
  auto meta_map = bpf::Map::open_pinned(path + "/meta");
  if (!meta_map) return damaged(meta_map.error());
  if (meta_map->value_size() != sizeof(steer_meta))
    return fail(EPROTO, "the state at {} has an unknown layout: unload it with the steer that "
                        "loaded it", path);
  uint32_t zero = 0;
  STEER_TRY(meta_map->lookup(&zero, &state.meta_));
  STEER_TRY(check_meta(state.meta_, path, opening == Opening::ForUpgrade));

  // Pins are opened through the directory's fd without following links, and only when
  // owned by a trusted user and writable by nobody else (trusted_dir.h).
  auto directory = STEER_TRY(open_trusted_directory(AT_FDCWD, path, false, 0750));
  auto open_pin = [&](const std::string& name) -> Result<bpf::Map> {
    return bpf::Map::adopt(STEER_TRY(open_pinned(directory.get(), name)));
  };
  auto skeleton = STEER_TRY(open_dispatcher_object());
  for (const auto& name : object_map_names(skeleton->obj)) {
    auto map = open_pin(name);
    if (!map) {
      // A map this release adds: `steer upgrade` creates it.
      if (map.error().code == ENOENT && opening == Opening::ForUpgrade) continue;
      return damaged(map.error());
    }
    STEER_TRY(check_compatible(*map, bpf_object__find_map_by_name(skeleton->obj, name.c_str()),
                               state.meta_, path));
    state.maps_.emplace(name, std::move(*map));
  }
  auto sockets = STEER_TRY(open_pin("sockets"));
  state.sockets_.emplace(STEER_TRY(bpf::SockMap::wrap(std::move(sockets))));
  if (auto link = open_pinned(directory.get(), kLinkPin)) state.link_ = std::move(*link);
  return state;
}

const bpf::Map& State::map(std::string_view name) const {
  auto found = maps_.find(name);
  if (found == maps_.end())  // a programming error: every name is one of the object's maps
    throw FatalError(fmt::format("steer's state has no map {} (opened for upgrade?)", name));
  return found->second;
}

uint32_t State::program_id() const {
  if (!link_) return 0;
  bpf_link_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_.get(), &info, &length) != 0) return 0;
  // A detached netns link keeps its program but no longer names a namespace.
  if (info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == 0) return 0;
  return info.prog_id;
}

namespace {

Result<void> forget_all_groups(const std::string& dir) {
  int pinned = bpf_obj_get((dir + "/reuseport_groups").c_str());
  if (pinned < 0) return {};  // an older release's state: it never had groups
  Fd groups(pinned);
  steer_group_key key{};
  while (bpf_map_get_next_key(groups.get(), nullptr, &key) == 0)
    if (bpf_map_delete_elem(groups.get(), &key) != 0 && errno != ENOENT)
      return fail_errno("forget the reuseport groups in " + dir);
  return {};
}

}  // namespace

Result<void> State::unload(const Target& target) {
  auto netns = STEER_TRY(resolve_netns(target));
  if (!is_bpffs(target.bpffs))
    return fail(ENOENT, "steer is not loaded: {} is not a mounted bpf filesystem", target.bpffs);
  auto lock = STEER_TRY(lock_root(target, LockMode::Exclusive, false));
  std::string root = steer_root(target.bpffs);
  remove_stale_temporaries(root, netns.inode());
  std::string dir = state_directory(target.bpffs, netns.inode());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return fail(ENOENT, "steer is not loaded in network namespace {}: nothing to unload",
                netns.inode());
  // Detach first, synchronously: from here on nothing is steered, whatever happens next. A
  // kill before the rename leaves loaded state that is not attached (status says so, and
  // `steer unload` again finishes); after it, a temporary the next load or unload removes.
  int link = bpf_obj_get((dir + "/" + kLinkPin).c_str());
  if (link >= 0) {
    Fd link_fd(link);
    if (bpf_link_detach(link_fd.get()) != 0 && errno != ENOLINK && errno != EINVAL)
      return fail_errno("detach the dispatcher from network namespace " +
                        std::to_string(netns.inode()));
  }
  // The connection counter goes with it (its link is pinned here).
  if (int conns = bpf_obj_get((dir + "/" + kConnsLinkPin).c_str()); conns >= 0) {
    Fd conns_fd(conns);
    if (bpf_link_detach(conns_fd.get()) != 0 && errno != ENOLINK && errno != EINVAL)
      return fail_errno("detach the connection counter");
  }
  // Reuseport groups may still run steer's program (it holds the maps): with no record of
  // its group, it leaves every connection to the kernel's hash.
  STEER_TRY(forget_all_groups(dir));
  std::string doomed = fmt::format("{}/tmp-{}-{}", root, netns.inode(), ::getpid());
  if (::rename(dir.c_str(), doomed.c_str()) != 0) return fail_errno("rename " + dir);
  remove_pins(doomed);
  return {};
}

Result<void> State::reuse_maps(bpf_object* object) const {
  // Sized as pinned, so libbpf accepts the pinned map in place of its own definition.
  for (const auto& [name, pinned] : maps_) {
    bpf_map* map = bpf_object__find_map_by_name(object, name.c_str());
    if (map == nullptr) return fail(EPROTO, "the program has no map {}", name);
    bpf_map__set_max_entries(map, pinned.max_entries());
    if (int ret = bpf_map__reuse_fd(map, pinned.fd()); ret < 0)
      return fail_errno(-ret, fmt::format("reuse pinned map {}", name));
  }
  return {};
}

Result<void> State::add_missing_maps() {
  auto skeleton = STEER_TRY(open_dispatcher_object());
  STEER_TRY(reuse_maps(skeleton->obj));
  for (const auto& name : object_map_names(skeleton->obj))
    if (!maps_.count(name) && sized_by_binding_capacity(name))
      bpf_map__set_max_entries(bpf_object__find_map_by_name(skeleton->obj, name.c_str()),
                               static_cast<uint32_t>(meta_.binding_capacity));
  STEER_TRY(skeleton.load());  // creates the maps that were not pinned
  for (const auto& name : object_map_names(skeleton->obj)) {
    if (maps_.count(name)) continue;
    std::string pin = path_ + "/" + name;
    bpf_map* created = bpf_object__find_map_by_name(skeleton->obj, name.c_str());
    if (int ret = bpf_map__pin(created, pin.c_str()); ret < 0)
      return fail_errno(-ret, fmt::format("pin the new map {} at {}", name, pin));
    ::chmod(pin.c_str(), 0640);
    maps_.emplace(name, STEER_TRY(bpf::Map::open_pinned(pin)));
  }
  return {};
}

Result<void> State::swap_program() {
  if (!attached())
    return fail(ENOLINK, "the dispatcher is not attached in {} (a load or unload was "
                         "interrupted): `steer load` attaches it, `steer unload` removes it", path_);
  auto skeleton = STEER_TRY(open_dispatcher_object());
  STEER_TRY(reuse_maps(skeleton->obj));
  STEER_TRY(skeleton.load());
  // One syscall swaps the program: the hook is never empty.
  int ret = bpf_link_update(link_.get(), bpf_program__fd(skeleton->progs.steer_dispatch), nullptr);
  if (ret < 0) return fail_errno(-ret, "replace the dispatcher program through its link");
  return {};
}

Result<void> State::record_schema() {
  steer_meta meta = meta_;
  meta.schema_version = STEER_SCHEMA_VERSION;
  std::memset(meta.steer_version, 0, sizeof(meta.steer_version));
  std::strncpy(meta.steer_version, kSteerVersionString, sizeof(meta.steer_version) - 1);
  uint32_t zero = 0;
  STEER_TRY(map("meta").update(&zero, &meta, bpf::UpdateMode::Any));
  meta_ = meta;
  return {};
}

}  // namespace steer::core
