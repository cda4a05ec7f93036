// <bpffs>/steer, the directory holding every namespace's state, as issue 6 (defect 9) asks:
// steer never adopts a directory someone else planted or can change, and a held lock is
// reported and given up on instead of hanging forever.
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/flock.h"
#include "base/trusted_dir.h"
#include "bpf/map.h"
#include "support/kernel_test.h"
#include "support/process.h"

extern char** environ;

namespace steer::testing {
namespace {

constexpr const char* kNobody = "65534";

// Runs `argv` as user nobody (uid and gid 65534, no supplementary groups).
CommandResult as_nobody(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"setpriv", std::string("--reuid=") + kNobody,
                             std::string("--regid=") + kNobody, "--clear-groups"});
  return run_command(argv);
}

// A process started in its own process group, killed with the whole group on destruction
// (`flock DIR sleep 60` leaves the sleep behind otherwise).
class Background {
 public:
  explicit Background(const std::vector<std::string>& argv) {
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    auto args = c_argv(argv);
    if (::posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), environ) != 0)
      pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  ~Background() { stop(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// A bpffs mounted with the given mode on a fresh directory; unmounted on destruction.
class ModeBpffs {
 public:
  explicit ModeBpffs(const std::string& mode) {
    path_ = "/tmp/steer-pin-root.XXXXXX";
    if (::mkdtemp(path_.data()) == nullptr) throw std::runtime_error("mkdtemp");
    error_ = ::mount("bpf", path_.c_str(), "bpf", 0, ("mode=" + mode).c_str()) == 0 ? 0 : errno;
  }
  ~ModeBpffs() {
    if (error_ == 0) ::umount2(path_.c_str(), MNT_DETACH);
    ::rmdir(path_.c_str());
  }
  ModeBpffs(const ModeBpffs&) = delete;
  ModeBpffs& operator=(const ModeBpffs&) = delete;

  const std::string& path() const { return path_; }
  int error() const { return error_; }

 private:
  std::string path_;
  int error_ = 0;
};

class PinRoot : public KernelTest {
 protected:
  CommandResult steer(const std::string& bpffs, std::vector<std::string> args) {
    // `timeout`: a verb hanging on a lock (the defect) fails the test instead of hanging it.
    args.insert(args.begin(), {"timeout", "120", steer_binary(), "--bpffs", bpffs});
    return run_command(args);
  }
  CommandResult steer(std::vector<std::string> args) { return steer(bpffs(), std::move(args)); }

  static ino_t netns_inode() {
    struct stat st {};
    ::stat("/proc/thread-self/ns/net", &st);
    return st.st_ino;
  }
  // The sk_lookup links attached to this test's namespace (from bpftool).
  static int links_in_this_netns() {
    auto listed = run_command({"bpftool", "--json", "link", "show"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    int count = 0;
    for (const auto& link : nlohmann::json::parse(listed.out.empty() ? "[]" : listed.out))
      if (link.value("netns_ino", uint64_t{0}) == netns_inode()) ++count;
    return count;
  }
  static bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }
};

// (a) On a bpffs anyone may write to (1777), user nobody makes <bpffs>/steer first. The
// old steer adopted it: nobody could then rename the state away or hold its lock forever.
TEST_F(PinRoot, DirectoryPlantedByAnotherUserIsRefused) {
  ModeBpffs shared("1777");
  ASSERT_EQ(shared.error(), 0) << std::strerror(shared.error());
  std::string root = shared.path() + "/steer";
  auto planted = as_nobody({"mkdir", root});
  ASSERT_EQ(planted.exit_code, 0) << planted.err;

  auto load = steer(shared.path(), {"load"});
  EXPECT_NE(load.exit_code, 0) << load.out;
  EXPECT_NE(load.exit_code, 124) << "steer load hung";
  EXPECT_NE(load.err.find(root), std::string::npos) << load.err;
  EXPECT_NE(load.err.find("uid 65534 (nobody)"), std::string::npos) << load.err;
  EXPECT_NE(load.err.find("rm -r " + root), std::string::npos) << load.err;
  EXPECT_FALSE(exists(fmt::format("{}/{}", root, netns_inode()))) << "state was pinned";
  EXPECT_EQ(links_in_this_netns(), 0) << "the dispatcher was attached";
  // Every verb refuses it, not only load.
  auto status = steer(shared.path(), {"status"});
  EXPECT_NE(status.exit_code, 0);
  EXPECT_NE(status.err.find("uid 65534 (nobody)"), std::string::npos) << status.err;
}

// The same 1777 bpffs is fine when steer made its own directory first: other users cannot
// rename it (sticky bit) nor enter it (0750).
TEST_F(PinRoot, StickyWorldWritableBpffsWorksWithSteersOwnDirectory) {
  ModeBpffs shared("1777");
  ASSERT_EQ(shared.error(), 0) << std::strerror(shared.error());
  auto load = steer(shared.path(), {"load"});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(steer(shared.path(), {"status"}).exit_code, 0);
  std::string root = shared.path() + "/steer";
  EXPECT_NE(as_nobody({"mv", root, shared.path() + "/moved"}).exit_code, 0);
  EXPECT_NE(as_nobody({"flock", "--nonblock", root, "true"}).exit_code, 0);
  EXPECT_EQ(steer(shared.path(), {"unload"}).exit_code, 0);
}

// (b) Root's own directory, but open to everyone: refused, naming the mode.
TEST_F(PinRoot, WorldWritableSteerDirectoryIsRefused) {
  std::string root = bpffs() + "/steer";
  ASSERT_EQ(::mkdir(root.c_str(), 0750), 0);
  ASSERT_EQ(::chmod(root.c_str(), 0777), 0);
  auto load = steer({"load"});
  EXPECT_NE(load.exit_code, 0);
  EXPECT_NE(load.err.find("mode 0777"), std::string::npos) << load.err;
  EXPECT_EQ(links_in_this_netns(), 0);
}

// (c) A symbolic link in place of the directory is not followed, even to a directory that
// would pass every check.
TEST_F(PinRoot, SymbolicLinkInPlaceOfTheDirectoryIsRefused) {
  std::string elsewhere = bpffs() + "/elsewhere";
  ASSERT_EQ(::mkdir(elsewhere.c_str(), 0750), 0);
  ASSERT_EQ(::symlink(elsewhere.c_str(), (bpffs() + "/steer").c_str()), 0);
  auto load = steer({"load"});
  EXPECT_NE(load.exit_code, 0);
  EXPECT_NE(load.err.find("symbolic link"), std::string::npos) << load.err;
  EXPECT_FALSE(exists(fmt::format("{}/{}", elsewhere, netns_inode()))) << "followed the link";
  EXPECT_EQ(links_in_this_netns(), 0);
}

// (d) The directory steer creates is root's, 0750, whatever the umask.
TEST_F(PinRoot, CreatedDirectoryIsRootsAnd0750) {
  mode_t previous = ::umask(077);
  auto load = steer({"load"});
  ::umask(previous);
  ASSERT_EQ(load.exit_code, 0) << load.err;
  struct stat st {};
  ASSERT_EQ(::lstat((bpffs() + "/steer").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

// (e) A lock held by another process: reported after a second, given up on after
// --lock-timeout, naming the holder. Once it is gone the verb works.
TEST_F(PinRoot, HeldLockIsReportedAndTimesOut) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  std::string root = bpffs() + "/steer";
  Fd directory(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(directory.valid());
  // -o: only flock holds the lock, not the sleep it runs.
  Background holder({"flock", "-o", root, "sleep", "600"});
  ASSERT_GT(holder.pid(), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (flock_holders(directory.get()).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(flock_holders(directory.get()).empty()) << "flock never took the lock";

  auto status = steer({"--lock-timeout", "1", "status"});
  EXPECT_NE(status.exit_code, 0);
  EXPECT_NE(status.exit_code, 124) << "steer status hung on the lock";
  std::string held_by = fmt::format("held by pid {} (flock)", holder.pid());
  EXPECT_NE(status.err.find("steer: waiting for the lock on " + root + ", " + held_by),
            std::string::npos) << status.err;
  EXPECT_NE(status.err.find(fmt::format("{} is locked by pid {} (flock) for more than 1 s", root,
                                        holder.pid())),
            std::string::npos) << status.err;
  EXPECT_NE(status.err.find("--lock-timeout"), std::string::npos) << status.err;

  // A writer waits the same way.
  auto bind = steer({"--lock-timeout", "0", "bind", "web", "tcp", "127.0.0.1/32", "80"});
  EXPECT_NE(bind.exit_code, 0);
  EXPECT_NE(bind.err.find(fmt::format("locked by pid {} (flock)", holder.pid())),
            std::string::npos) << bind.err;

  holder.stop();
  auto free = steer({"--lock-timeout", "1", "status"});
  EXPECT_EQ(free.exit_code, 0) << free.err;
  EXPECT_EQ(free.err.find("waiting"), std::string::npos) << free.err;
}

// (f) A bpffs anyone may write to without the sticky bit: anyone could rename steer's
// directory, whoever owns it. Refused before anything is created. (bpffs always adds the
// sticky bit to its root at mount time, mode=0777 gives 1777: only a chmod removes it.)
TEST_F(PinRoot, WorldWritableBpffsWithoutStickyBitIsRefused) {
  ModeBpffs open_to_all("0777");
  ASSERT_EQ(open_to_all.error(), 0) << std::strerror(open_to_all.error());
  struct stat st {};
  ASSERT_EQ(::stat(open_to_all.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u) << "bpffs no longer forces the sticky bit";
  ASSERT_EQ(::chmod(open_to_all.path().c_str(), 0777), 0);
  auto load = steer(open_to_all.path(), {"load"});
  EXPECT_NE(load.exit_code, 0);
  EXPECT_NE(load.err.find("mode 0777"), std::string::npos) << load.err;
  EXPECT_NE(load.err.find("sticky"), std::string::npos) << load.err;
  EXPECT_FALSE(exists(open_to_all.path() + "/steer"));
  EXPECT_EQ(links_in_this_netns(), 0);
}

// open_pinned: a pin in a trusted directory opens; a symbolic link, a pin others may
// write, or one owned by someone else does not.
TEST_F(PinRoot, OpenPinnedChecksThePinItself) {
  std::string dir = bpffs() + "/pins";
  ASSERT_EQ(::mkdir(dir.c_str(), 0750), 0);
  STEER_ASSERT_OK_AND_ASSIGN(auto map, bpf::Map::create(BPF_MAP_TYPE_ARRAY, "pinned", 4, 4, 1));
  STEER_ASSERT_OK(map.pin(dir + "/good"));
  STEER_ASSERT_OK(map.pin(dir + "/writable"));
  ASSERT_EQ(::chmod((dir + "/writable").c_str(), 0666), 0);
  STEER_ASSERT_OK(map.pin(dir + "/foreign"));
  ASSERT_EQ(::chown((dir + "/foreign").c_str(), 65534, 65534), 0);
  ASSERT_EQ(::symlink((dir + "/good").c_str(), (dir + "/link").c_str()), 0);

  STEER_ASSERT_OK_AND_ASSIGN(Fd directory, open_trusted_directory(AT_FDCWD, dir, false, 0750));
  STEER_ASSERT_OK_AND_ASSIGN(Fd good, open_pinned(directory.get(), "good"));
  STEER_ASSERT_OK_AND_ASSIGN(auto reopened, bpf::Map::adopt(std::move(good)));
  EXPECT_EQ(reopened.max_entries(), 1u);
  STEER_EXPECT_ERRNO(open_pinned(directory.get(), "link"), EPERM);
  STEER_EXPECT_ERRNO(open_pinned(directory.get(), "writable"), EPERM);
  STEER_EXPECT_ERRNO(open_pinned(directory.get(), "foreign"), EPERM);
  STEER_EXPECT_ERRNO(open_pinned(directory.get(), "absent"), ENOENT);
  auto foreign = open_pinned(directory.get(), "foreign");
  ASSERT_FALSE(foreign.has_value());
  EXPECT_NE(foreign.error().message.find(dir + "/foreign is owned by uid 65534 (nobody)"),
            std::string::npos) << foreign.error().message;
}

}  // namespace
}  // namespace steer::testing
