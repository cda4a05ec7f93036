// open_trusted_directory and open_holding_directory on plain temporary directories (the
// pin checks need bpffs: tests/e2e/pin_root_test.cpp).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "base/trusted_dir.h"

namespace steer {
namespace {

class TrustedDir : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = ::testing::TempDir() + "steer-trusted-XXXXXX";
    ASSERT_NE(::mkdtemp(base_.data()), nullptr);
    ASSERT_EQ(::chmod(base_.c_str(), 0700), 0);
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf " + base_).c_str()), 0); }

  std::string path(const std::string& name) const { return base_ + "/" + name; }
  // The error of opening `name` in base_, or "" when it opened.
  std::string refusal(const std::string& name, bool create = false) {
    auto opened = open_trusted_directory(AT_FDCWD, path(name), create, 0750);
    if (opened) return "";
    return opened.error().message;
  }

  std::string base_;
};

TEST_F(TrustedDir, CreatesWithTheExactModeWhateverTheUmask) {
  mode_t previous = ::umask(077);
  auto opened = open_trusted_directory(AT_FDCWD, path("steer"), true, 0750);
  ::umask(previous);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  struct stat st {};
  ASSERT_EQ(::fstat(opened->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  // Opening again (created already) is fine.
  EXPECT_EQ(refusal("steer", true), "");
}

TEST_F(TrustedDir, RelativeToAParentFd) {
  Fd parent(::open(base_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(parent.valid());
  auto opened = open_trusted_directory(parent.get(), "steer", true, 0750);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  ASSERT_EQ(::chmod(path("steer").c_str(), 0775), 0);
  auto refused = open_trusted_directory(parent.get(), "steer", false, 0750);
  ASSERT_FALSE(refused.has_value());
  // Messages name the full path, not just the name relative to the fd.
  EXPECT_NE(refused.error().message.find(path("steer") + " has mode 0775"), std::string::npos)
      << refused.error().message;
}

TEST_F(TrustedDir, AbsentIsEnoentUnlessCreated) {
  auto opened = open_trusted_directory(AT_FDCWD, path("absent"), false, 0750);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ENOENT);
}

TEST_F(TrustedDir, PermissionsForOthersAreRefused) {
  for (mode_t mode : {0777, 0770, 0755, 0751, 0704, 0720}) {
    std::string name = "dir" + std::to_string(mode);
    ASSERT_EQ(::mkdir(path(name).c_str(), 0700), 0);
    ASSERT_EQ(::chmod(path(name).c_str(), mode), 0);
    std::string message = refusal(name);
    EXPECT_NE(message.find(fmt::format("mode {:04o}", mode)), std::string::npos)
        << fmt::format("{:o}: {}", mode, message);
    EXPECT_NE(message.find("rm -r " + path(name)), std::string::npos) << message;
  }
  for (mode_t mode : {0700, 0750, 0740, 0710}) {
    std::string name = "dir" + std::to_string(mode);
    ASSERT_EQ(::mkdir(path(name).c_str(), 0700), 0);
    ASSERT_EQ(::chmod(path(name).c_str(), mode), 0);
    EXPECT_EQ(refusal(name), "") << fmt::format("{:o}", mode);
  }
}

TEST_F(TrustedDir, SymbolicLinksAndFilesAreRefused) {
  ASSERT_EQ(::mkdir(path("real").c_str(), 0750), 0);
  ASSERT_EQ(::symlink(path("real").c_str(), path("link").c_str()), 0);
  EXPECT_NE(refusal("link").find("is a symbolic link"), std::string::npos) << refusal("link");
  EXPECT_NE(refusal("link", true).find("is a symbolic link"), std::string::npos);
  int fd = ::open(path("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_NE(refusal("file", true).find("is a file"), std::string::npos) << refusal("file", true);
}

TEST_F(TrustedDir, AnotherUsersDirectoryIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory away";
  ASSERT_EQ(::mkdir(path("foreign").c_str(), 0750), 0);
  ASSERT_EQ(::chown(path("foreign").c_str(), 65534, 65534), 0);
  EXPECT_NE(refusal("foreign").find("owned by uid 65534"), std::string::npos)
      << refusal("foreign");
}

TEST_F(TrustedDir, HoldingDirectoryNeedsTheStickyBitWhenOthersMayWrite) {
  ASSERT_EQ(::mkdir(path("private").c_str(), 0700), 0);
  EXPECT_TRUE(open_holding_directory(AT_FDCWD, path("private")).has_value());
  ASSERT_EQ(::mkdir(path("shared").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(path("shared").c_str(), 01777), 0);
  EXPECT_TRUE(open_holding_directory(AT_FDCWD, path("shared")).has_value());
  ASSERT_EQ(::chmod(path("shared").c_str(), 0777), 0);
  auto open = open_holding_directory(AT_FDCWD, path("shared"));
  ASSERT_FALSE(open.has_value());
  EXPECT_NE(open.error().message.find("mode 0777"), std::string::npos) << open.error().message;
  EXPECT_NE(open.error().message.find("sticky"), std::string::npos) << open.error().message;
  ASSERT_EQ(::chmod(path("shared").c_str(), 0775), 0);
  EXPECT_FALSE(open_holding_directory(AT_FDCWD, path("shared")).has_value());
}

}  // namespace
}  // namespace steer
