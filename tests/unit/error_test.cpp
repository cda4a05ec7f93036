#include <gtest/gtest.h>

#include "base/error.h"

namespace steer {
namespace {

TEST(Error, NamesErrnoValues) {
  EXPECT_EQ(errno_name(EINVAL), "EINVAL");
  EXPECT_EQ(errno_name(EOPNOTSUPP), "EOPNOTSUPP");
  EXPECT_EQ(errno_name(E2BIG), "E2BIG");
  EXPECT_EQ(errno_name(99999), "E99999");
}

TEST(Error, FailFormatsTheMessageAndKeepsTheCode) {
  Result<int> result = fail(ENOENT, "label {} has no sockets", "web");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ENOENT);
  EXPECT_EQ(result.error().message, "label web has no sockets");
  EXPECT_EQ(result.error().code_name(), "ENOENT");
}

TEST(Error, LibbpfNegativeReturnsBecomeErrors) {
  auto ok = from_libbpf(3, "load");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 3);
  auto failed = from_libbpf(-EPERM, "load object x");
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, EPERM);
  EXPECT_NE(failed.error().message.find("load object x"), std::string::npos);
  EXPECT_NE(failed.error().message.find("EPERM"), std::string::npos);
}

TEST(Error, ContextGoesInFront) {
  Error error = with_context(Error{EBADF, "fd 7"}, "register web");
  EXPECT_EQ(error.message, "register web: fd 7");
  EXPECT_EQ(error.code, EBADF);
}

}  // namespace
}  // namespace steer
