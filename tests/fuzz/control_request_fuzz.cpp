// Fuzz target: steerd's control protocol decoders (src/control/protocol.h). Whatever a peer
// sends on the control socket reaches parse_request; whatever steerd answers reaches
// parse_reply in the client library.
//
// Input: the first byte mod 3 is the number of fds the datagram carried (0, 1 or 2: register
// needs some, every other op none), the rest is the datagram. Each input goes to both
// parse_request and parse_reply.
//
// Invariants (a violation is __builtin_trap(), a finding):
// - an error has an errno-like code and a message;
// - a request that parses re-encodes (encode_request) to a request that parses to the same
//   fields, and encoding that one gives the same bytes;
// - a reply that parses re-encodes (encode_reply) to a reply with the same id, ok, error code
//   and message, and encoding is then a fixed point (the result is compared as encoded JSON:
//   a null result is sent as {}, and a number too large for a double as null).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/protocol.h"

namespace {

using steer::control::Reply;
using steer::control::Request;

template <class T>
void check_error(const steer::Result<T>& result) {
  if (!result && (result.error().code <= 0 || result.error().message.empty())) __builtin_trap();
}

bool same(const Request& a, const Request& b) {
  return a.id == b.id && a.op == b.op && a.label == b.label && a.generation == b.generation &&
         a.next_generation == b.next_generation && a.reuseport == b.reuseport &&
         a.cookie == b.cookie && a.pid == b.pid && a.weight == b.weight;
}

void check_request(std::string_view bytes, size_t fd_count) {
  auto request = steer::control::parse_request(bytes, fd_count);
  check_error(request);
  if (!request) return;
  // What parse_request promises about what it accepts.
  if (request->op != steer::control::Op::Register && fd_count != 0) __builtin_trap();
  if (request->op == steer::control::Op::Register && fd_count == 0) __builtin_trap();
  if (request->generation && *request->generation == 0) __builtin_trap();
  if (request->pid && *request->pid <= 0) __builtin_trap();
  if (request->weight && *request->weight > 1000) __builtin_trap();
  if (request->next_generation && request->generation) __builtin_trap();

  std::string encoded = steer::control::encode_request(*request);
  auto again = steer::control::parse_request(encoded, fd_count);
  if (!again || !same(*request, *again)) __builtin_trap();
  if (steer::control::encode_request(*again) != encoded) __builtin_trap();
}

void check_reply(std::string_view bytes) {
  auto reply = steer::control::parse_reply(bytes);
  check_error(reply);
  if (!reply) return;
  std::string encoded = steer::control::encode_reply(*reply);
  auto again = steer::control::parse_reply(encoded);
  if (!again) __builtin_trap();
  if (again->id != reply->id || again->ok != reply->ok) __builtin_trap();
  if (!reply->ok &&
      (again->error_code != reply->error_code || again->error_message != reply->error_message))
    __builtin_trap();
  if (reply->ok && !again->result.is_object() && reply->result.is_object()) __builtin_trap();
  if (steer::control::encode_reply(*again) != encoded) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t fd_count = data[0] % 3;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  check_request(bytes, fd_count);
  check_reply(bytes);
  return 0;
}
