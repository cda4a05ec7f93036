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

const char* const kPinnedMaps[] = {
    "meta",         "control",      "port_bindings_0",      "port_bindings_1",
    "range_bindings_0", "range_bindings_1", "destinations", "maglev",
    "sockets",      "slots",        "destination_counters", "socket_counters",
    "labels",       "label_names",  "prefix_counts", nullptr};

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
  auto bpffs = open_holding_directory(AT_FDCWD, target.bpffs);
  if (!bpffs) return std::unexpected(bpffs.error());
  auto fd = open_trusted_directory(bpffs->get(), "steer", create, 0750);
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

bpf_map* skeleton_map(dispatcher* skel, const char* name) {
  return bpf_object__find_map_by_name(skel->obj, name);
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

Result<void> check_meta(const steer_meta& meta, const std::string& path) {
  if (meta.schema_version != STEER_SCHEMA_VERSION || meta.pool_slots != STEER_POOL_SLOTS ||
      meta.max_destinations != STEER_MAX_DESTINATIONS || meta.maglev_size != STEER_MAGLEV_SIZE)
    return fail(EPROTO,
                "the state at {} was written by steer {} (schema {}), this is steer {} (schema "
                "{}): run `steer unload` (it removes state of any version) and `steer load` again",
                path, meta.steer_version, meta.schema_version, kSteerVersionString,
                STEER_SCHEMA_VERSION);
  return {};
}

}  // namespace

std::string state_directory(const std::string& bpffs, ino_t netns_inode) {
  return fmt::format("{}/{}", steer_root(bpffs), netns_inode);
}

Result<State> State::load(const Target& target, const LoadOptions& options) {
  bpf::set_libbpf_log(bpf::LibbpfLog::Warnings);
  auto netns = resolve_netns(target);
  if (!netns) return std::unexpected(netns.error());
  if (auto mounted = ensure_bpffs(target.bpffs); !mounted) return std::unexpected(mounted.error());
  auto lock = lock_root(target, LockMode::Exclusive, true);
  if (!lock) return std::unexpected(lock.error());

  std::string root = steer_root(target.bpffs);
  std::string final_dir = state_directory(target.bpffs, netns->inode());
  struct stat st {};
  if (::stat(final_dir.c_str(), &st) == 0)
    return fail(EEXIST, "steer is already loaded in network namespace {} ({}): see `steer "
                        "status`, or `steer unload` first to start over", netns->inode(), final_dir);
  remove_stale_temporaries(root, netns->inode());

  auto skeleton = DispatcherSkeleton::open("dispatcher");
  if (!skeleton) return std::unexpected(skeleton.error());
  for (const char* name : {"port_bindings_0", "port_bindings_1", "range_bindings_0", "range_bindings_1"})
    bpf_map__set_max_entries(skeleton_map(skeleton->get(), name), options.binding_capacity);
  if (auto loaded = skeleton->load(); !loaded) return std::unexpected(loaded.error());

  steer_meta meta = make_meta(options.binding_capacity);
  if (auto stored = bpf::store_single((*skeleton)->maps.meta, meta); !stored)
    return std::unexpected(stored.error());

  std::string temporary = fmt::format("{}/tmp-{}-{}", root, netns->inode(), ::getpid());
  if (::mkdir(temporary.c_str(), 0750) != 0) return fail_errno("create " + temporary);
  auto abandon = [&](Error error) {
    remove_pins(temporary);
    return std::unexpected(std::move(error));
  };
  for (int i = 0; kPinnedMaps[i]; ++i) {
    std::string pin = temporary + "/" + kPinnedMaps[i];
    if (int ret = bpf_map__pin(skeleton_map(skeleton->get(), kPinnedMaps[i]), pin.c_str()); ret < 0)
      return abandon(Error{-ret, fmt::format("pin map {} at {}", kPinnedMaps[i], pin)});
    ::chmod(pin.c_str(), 0640);
  }
  auto link = bpf::attach_sk_lookup((*skeleton)->progs.steer_dispatch, netns->fd());
  if (!link) return abandon(link.error());
  std::string link_pin = temporary + "/" + kLinkPin;
  if (auto pinned = link->pin(link_pin); !pinned) return abandon(pinned.error());
  ::chmod(link_pin.c_str(), 0640);
  // The rename is the commit point: before it nothing is visible, after it all is.
  if (::rename(temporary.c_str(), final_dir.c_str()) != 0)
    return abandon(fail_errno("rename " + temporary + " to " + final_dir).error());
  return open_at(final_dir, std::move(*netns), std::move(*lock));
}

Result<State> State::open(const Target& target, LockMode mode) {
  auto netns = resolve_netns(target);
  if (!netns) return std::unexpected(netns.error());
  if (!is_bpffs(target.bpffs))
    return fail(ENOENT, "steer is not loaded: {} is not a mounted bpf filesystem (run `steer "
                        "load`, or pass --bpffs)", target.bpffs);
  auto lock = lock_root(target, mode, false);
  if (!lock) return std::unexpected(lock.error());
  std::string dir = state_directory(target.bpffs, netns->inode());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return fail(ENOENT, "steer is not loaded in network namespace {} (no {}): run `steer load` "
                        "first", netns->inode(), dir);
  return open_at(dir, std::move(*netns), std::move(*lock));
}

Result<State> State::open_at(const std::string& path, NetNamespace netns, Fd lock) {
  State state;
  state.path_ = path;
  state.netns_.emplace(std::move(netns));
  state.lock_ = std::move(lock);
  auto open_map = [&](const char* name, bpf::Map& into) -> Result<void> {
    auto map = bpf::Map::open_pinned(path + "/" + name);
    if (!map)
      return fail(map.error().code, "the state at {} is damaged ({}): `steer unload` and `steer "
                                    "load` rebuild it", path, map.error().message);
    into = std::move(*map);
    return {};
  };
  // meta first: an incompatible layout is refused before anything else is read.
  if (auto ok = open_map("meta", state.meta_map_); !ok) return std::unexpected(ok.error());
  uint32_t zero = 0;
  if (auto read = state.meta_map_.lookup(&zero, &state.meta_); !read)
    return std::unexpected(read.error());
  if (state.meta_map_.value_size() != sizeof(steer_meta)) {
    return fail(EPROTO, "the state at {} has an unknown layout: unload it with the steer that "
                        "loaded it", path);
  }
  if (auto ok = check_meta(state.meta_, path); !ok) return std::unexpected(ok.error());
  struct Named {
    const char* name;
    bpf::Map* map;
  };
  for (auto [name, map] : {Named{"control", &state.control_},
                           Named{"port_bindings_0", &state.port_bindings_[0]},
                           Named{"port_bindings_1", &state.port_bindings_[1]},
                           Named{"range_bindings_0", &state.range_bindings_[0]},
                           Named{"range_bindings_1", &state.range_bindings_[1]},
                           Named{"destinations", &state.destinations_},
                           Named{"maglev", &state.maglev_}, Named{"slots", &state.slots_},
                           Named{"destination_counters", &state.destination_counters_},
                           Named{"socket_counters", &state.socket_counters_},
                           Named{"labels", &state.labels_},
                           Named{"label_names", &state.label_names_},
                           Named{"prefix_counts", &state.prefix_counts_}})
    if (auto ok = open_map(name, *map); !ok) return std::unexpected(ok.error());
  bpf::Map sockets;
  if (auto ok = open_map("sockets", sockets); !ok) return std::unexpected(ok.error());
  auto sockmap = bpf::SockMap::wrap(std::move(sockets));
  if (!sockmap) return std::unexpected(sockmap.error());
  state.sockets_.emplace(std::move(*sockmap));
  int link = bpf_obj_get((path + "/" + kLinkPin).c_str());
  if (link >= 0) state.link_.reset(link);
  return state;
}

uint32_t State::program_id() const {
  if (!link_) return 0;
  bpf_link_info info{};
  uint32_t length = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_.get(), &info, &length) != 0) return 0;
  return info.prog_id;
}

Result<void> State::unload(const Target& target) {
  auto netns = resolve_netns(target);
  if (!netns) return std::unexpected(netns.error());
  if (!is_bpffs(target.bpffs))
    return fail(ENOENT, "steer is not loaded: {} is not a mounted bpf filesystem", target.bpffs);
  auto lock = lock_root(target, LockMode::Exclusive, false);
  if (!lock) return std::unexpected(lock.error());
  std::string dir = state_directory(target.bpffs, netns->inode());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return fail(ENOENT, "steer is not loaded in network namespace {}: nothing to unload",
                netns->inode());
  // Rename first: a kill after this leaves only a temporary that the next load removes.
  std::string doomed = fmt::format("{}/tmp-{}-{}", steer_root(target.bpffs), netns->inode(), ::getpid());
  if (::rename(dir.c_str(), doomed.c_str()) != 0) return fail_errno("rename " + dir);
  remove_pins(doomed);  // the link's pin goes with it: the program detaches
  return {};
}

Result<void> State::reuse_maps(bpf_object* object) const {
  // Sized as pinned, so libbpf accepts the pinned map in place of its own definition.
  for (int i = 0; kPinnedMaps[i]; ++i) {
    bpf_map* map = bpf_object__find_map_by_name(object, kPinnedMaps[i]);
    if (map == nullptr) return fail(EPROTO, "the program has no map {}", kPinnedMaps[i]);
    auto pinned = bpf::Map::open_pinned(path_ + "/" + kPinnedMaps[i]);
    if (!pinned) return std::unexpected(pinned.error());
    bpf_map__set_max_entries(map, pinned->max_entries());
    if (int ret = bpf_map__reuse_fd(map, pinned->fd()); ret < 0)
      return fail_errno(-ret, fmt::format("reuse pinned map {}", kPinnedMaps[i]));
  }
  return {};
}

Result<void> State::upgrade() {
  if (!link_) return fail(ENOLINK, "the dispatcher's link is missing from {}: `steer unload` and "
                                   "`steer load` to recreate it", path_);
  auto skeleton = DispatcherSkeleton::open("dispatcher");
  if (!skeleton) return std::unexpected(skeleton.error());
  if (auto reused = reuse_maps((*skeleton)->obj); !reused) return reused;
  if (auto loaded = skeleton->load(); !loaded) return std::unexpected(loaded.error());
  // One syscall swaps the program: the hook is never empty.
  int ret = bpf_link_update(link_.get(), bpf_program__fd((*skeleton)->progs.steer_dispatch), nullptr);
  if (ret < 0) return fail_errno(-ret, "replace the dispatcher program through its link");
  return {};
}

}  // namespace steer::core
