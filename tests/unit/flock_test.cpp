// lock_with_timeout against a lock held by a child process: no kernel objects, no root.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "base/flock.h"

namespace steer {
namespace {

using std::chrono::milliseconds;

class Flock : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "steer-flock-XXXXXX";
    int fd = ::mkstemp(path_.data());
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  void TearDown() override {
    release_holder();
    ::unlink(path_.c_str());
  }

  Fd open_file() { return Fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)); }

  // A child that takes the lock, says so, and keeps it until its pipe is written or closed.
  void start_holder(bool exclusive) {
    int ready[2], release[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    holder_ = ::fork();
    ASSERT_GE(holder_, 0);
    if (holder_ == 0) {
      ::close(ready[0]);
      ::close(release[1]);  // else the child's own copy keeps its read from seeing EOF
      int fd = ::open(path_.c_str(), O_RDONLY);
      if (fd < 0 || ::flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) ::_exit(1);
      char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(1);
      (void)!::read(release[0], &byte, 1);
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    release_fd_.reset(release[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the holder could not take the lock";
    ::close(ready[0]);
  }
  void release_holder() {
    if (holder_ <= 0) return;
    release_fd_.reset();
    int status = 0;
    while (::waitpid(holder_, &status, 0) < 0 && errno == EINTR) {
    }
    holder_ = -1;
  }
  std::string holder_text() const {
    std::ifstream comm("/proc/" + std::to_string(holder_) + "/comm");
    std::string command;
    std::getline(comm, command);
    return "pid " + std::to_string(holder_) + " (" + command + ")";
  }

  std::string path_;
  pid_t holder_ = -1;
  Fd release_fd_;
};

TEST_F(Flock, FreeLockIsTakenAtOnce) {
  Fd fd = open_file();
  ASSERT_TRUE(fd.valid());
  auto locked = lock_with_timeout(fd.get(), true, milliseconds(0), path_, {});
  EXPECT_TRUE(locked.has_value()) << locked.error().message;
}

TEST_F(Flock, HolderIsFoundInProcLocks) {
  ASSERT_NO_FATAL_FAILURE(start_holder(true));
  Fd fd = open_file();
  auto holders = flock_holders(fd.get());
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].pid, holder_);
  EXPECT_EQ(describe_lock_holders(holders), holder_text());
  EXPECT_EQ(describe_lock_holders({}), "another process");
}

TEST_F(Flock, TimeoutZeroTriesOnceAndNamesTheHolder) {
  ASSERT_NO_FATAL_FAILURE(start_holder(true));
  Fd fd = open_file();
  int reports = 0;
  auto locked = lock_with_timeout(fd.get(), false, milliseconds(0), path_,
                                  [&](const std::string&) { ++reports; });
  ASSERT_FALSE(locked.has_value());
  EXPECT_EQ(locked.error().code, ETIMEDOUT);
  EXPECT_NE(locked.error().message.find(path_ + " is locked by " + holder_text()),
            std::string::npos) << locked.error().message;
  EXPECT_NE(locked.error().message.find("--lock-timeout SECONDS"), std::string::npos);
  EXPECT_EQ(reports, 0);
}

TEST_F(Flock, SharedLocksDoNotWaitForEachOther) {
  ASSERT_NO_FATAL_FAILURE(start_holder(false));
  Fd fd = open_file();
  auto shared = lock_with_timeout(fd.get(), false, milliseconds(0), path_, {});
  EXPECT_TRUE(shared.has_value()) << shared.error().message;
  Fd other = open_file();
  auto exclusive = lock_with_timeout(other.get(), true, milliseconds(0), path_, {});
  EXPECT_FALSE(exclusive.has_value());
}

// Waiting is reported once, after a second, naming the holder; the timeout then fails.
TEST_F(Flock, WaitingIsReportedOnceThenTimesOut) {
  ASSERT_NO_FATAL_FAILURE(start_holder(true));
  Fd fd = open_file();
  std::vector<std::string> reports;
  auto locked = lock_with_timeout(fd.get(), true, milliseconds(1200), path_,
                                  [&](const std::string& message) { reports.push_back(message); });
  ASSERT_FALSE(locked.has_value());
  EXPECT_EQ(locked.error().code, ETIMEDOUT);
  EXPECT_NE(locked.error().message.find("is locked by " + holder_text() +
                                        " for more than 1.2 s"),
            std::string::npos) << locked.error().message;
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], "waiting for the lock on " + path_ + ", held by " + holder_text());
}

// The lock is taken as soon as its holder lets go (here: when told it is being waited for).
TEST_F(Flock, LockIsTakenWhenTheHolderLetsGo) {
  ASSERT_NO_FATAL_FAILURE(start_holder(true));
  Fd fd = open_file();
  auto locked = lock_with_timeout(fd.get(), true, milliseconds(600000), path_,
                                  [&](const std::string&) { release_holder(); });
  EXPECT_TRUE(locked.has_value()) << locked.error().message;
}

}  // namespace
}  // namespace steer
