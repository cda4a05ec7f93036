// The fixture every kernel test uses: the test runs in a fresh network namespace (lo up)
// with a private bpffs, inside a private mount namespace, never in the machine's own.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "base/bpffs.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/netns.h"
#include "base/socket.h"

namespace steer::testing {

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The private bpffs of this test.
  const std::string& bpffs() const { return bpffs_->path(); }

 private:
  std::optional<BpffsMount> bpffs_;
};

// Another fresh network namespace (lo up) with its own private bpffs, entered by the calling
// thread for the object's lifetime: for a test that needs many clean slates (one per crash
// point, say). Threads and processes started meanwhile inherit it. Only inside a KernelTest
// (its private mount namespace keeps the bpffs mount away from the machine).
class ScratchNamespace {
 public:
  static Result<ScratchNamespace> enter();
  ScratchNamespace(ScratchNamespace&&) = default;
  ScratchNamespace& operator=(ScratchNamespace&&) = delete;
  ~ScratchNamespace() = default;

  const std::string& bpffs() const { return bpffs_->path(); }
  ino_t inode() const { return netns_->inode(); }

 private:
  ScratchNamespace() = default;
  // Destroyed bottom up: the bpffs is unmounted, then the thread goes back.
  std::optional<NetNamespace> netns_;
  std::optional<ScopedNetns> inside_;
  std::optional<BpffsMount> bpffs_;
};

// ASSERT that a Result holds a value, printing the error otherwise; yields the value.
#define STEER_ASSERT_OK_AND_ASSIGN(lhs, expression)                                  \
  auto STEER_CONCAT(result_, __LINE__) = (expression);                             \
  ASSERT_TRUE(STEER_CONCAT(result_, __LINE__).has_value())                         \
      << #expression << ": " << STEER_CONCAT(result_, __LINE__).error().message;    \
  lhs = std::move(*STEER_CONCAT(result_, __LINE__))
#define STEER_CONCAT_INNER(a, b) a##b
#define STEER_CONCAT(a, b) STEER_CONCAT_INNER(a, b)

#define STEER_ASSERT_OK(expression)                                                  \
  do {                                                                               \
    auto steer_result_ = (expression);                                               \
    ASSERT_TRUE(steer_result_.has_value()) << #expression << ": "                    \
                                           << steer_result_.error().message;         \
  } while (0)

// EXPECT that a Result failed with exactly this errno (by name in the message on mismatch).
#define STEER_EXPECT_ERRNO(expression, expected_errno)                               \
  do {                                                                               \
    auto steer_result_ = (expression);                                               \
    if (steer_result_.has_value()) {                                                 \
      ADD_FAILURE() << #expression << " succeeded; expected "                       \
                    << ::steer::errno_name(expected_errno);                          \
    } else {                                                                         \
      EXPECT_EQ(::steer::errno_name(steer_result_.error().code),                     \
                ::steer::errno_name(expected_errno))                                 \
          << steer_result_.error().message;                                          \
    }                                                                                \
  } while (0)

// Connects to `address` over TCP and returns the connect errno (0 on success).
int tcp_connect_errno(const SocketAddress& address);
// Accepts one pending connection without blocking; an invalid Fd if there is none.
Fd accept_now(int listener_fd);
// Counts the connections waiting in a listener's accept queue by accepting them all.
int accept_all(int listener_fd);
// Sends a datagram to `address` from a fresh unbound UDP socket; returns the sender.
Result<Fd> send_udp(const SocketAddress& address, const std::string& payload);
// The kernel's TcpExt counters of the calling thread's network namespace
// (/proc/thread-self/net/netstat), by name: TCPSynRetrans, ListenOverflows, ...
std::map<std::string, uint64_t> tcp_ext_counters();
// Receives one datagram without blocking; nullopt when none is queued.
std::optional<std::string> receive_udp_now(int socket_fd);

}  // namespace steer::testing
