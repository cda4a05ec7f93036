// Listeners a test keeps, and connections to them: which listener accepted each one. Used
// by the policy and reuseport tests, where what counts is the socket a policy picked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/socket.h"

namespace steer::testing {

class Listeners {
 public:
  static constexpr int kNoListener = -1;  // connected, but none of ours accepted it
  static constexpr int kRefused = -2;     // connect failed with ECONNREFUSED

  // A TCP listener kept by the test (SO_REUSEPORT when asked); its raw fd.
  int listen(const std::string& at = "127.0.0.1:0", bool reuseport = false);
  // Closes the i-th listener (its index stays taken).
  void close(size_t index) { fds_.at(index) = Fd(); }
  // Hands the i-th listener over (its index stays taken, empty).
  Fd take(size_t index) { return std::move(fds_.at(index)); }
  int fd(size_t index) const { return fds_.at(index).get(); }
  size_t size() const { return fds_.size(); }

  // One connection from source_ip:source_port (0: any) to `to`; the index of the listener
  // that accepted it, or kRefused / kNoListener. Closed with RST: no TIME_WAIT left behind.
  int connect_once(const std::string& to, const std::string& source_ip = "",
                   uint16_t source_port = 0);
  // `count` connections to `to`: how many each listener took (refusals under kRefused, lost
  // ones under kNoListener).
  std::map<int, int> spread(int count, const std::string& to);

 private:
  std::vector<Fd> fds_;
};

}  // namespace steer::testing
