// steerd's control protocol (docs/control-protocol.md). A Unix SOCK_SEQPACKET socket; each
// datagram is one JSON object (a request or a reply), and a register request carries the
// sockets it registers as SCM_RIGHTS. Shared by steerd (decodes requests, encodes replies)
// and the client library (the other way round), so both read one definition.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fd.h"

namespace steer::control {

// The version this build speaks; a request of another version is answered with an error
// that names it.
inline constexpr uint32_t kVersion = 1;
// The largest datagram either side sends or accepts, and the most fds one may carry (a pool's
// size: more could never be registered at once).
inline constexpr size_t kMaxMessageBytes = 64 * 1024;
inline constexpr size_t kMaxFds = 64;

enum class Op { Register, Unregister, Drain, Undrain, Promote, Weight, Status };
std::string_view op_name(Op op);
std::optional<Op> parse_op(std::string_view name);

// One request. Which fields an op takes is checked by parse_request (docs list them).
struct Request {
  uint64_t id = 0;  // echoed in the reply
  Op op = Op::Status;
  std::string label;  // every op but status (where it is optional: "" lists all)
  // register: the generation to join (default: the label's newest); next_generation: the
  // newest plus one (a graceful restart). promote: the generation to make active.
  std::optional<uint32_t> generation;
  bool next_generation = false;
  bool reuseport = false;  // register: attach steer's sk_reuseport program to their groups
  // unregister, drain, undrain, weight: which sockets (all that match every filter given;
  // none given: every socket the peer may act on of the label).
  std::optional<uint64_t> cookie;
  std::optional<int32_t> pid;
  std::optional<uint32_t> weight;  // weight: the new weight
};

// Parses a request datagram that came with `fd_count` fds: strict JSON, strict types, no
// unknown keys, and fds only where the op takes them (register: 1 to kMaxFds).
Result<Request> parse_request(std::string_view bytes, size_t fd_count);
std::string encode_request(const Request& request);

struct Reply {
  uint64_t id = 0;
  bool ok = false;
  std::string error_code;     // "EPERM", "ENOENT", ... when !ok
  std::string error_message;  // what failed and what to do
  nlohmann::json result;      // the op's answer when ok (an object)
};
Result<Reply> parse_reply(std::string_view bytes);
std::string encode_reply(const Reply& reply);
Reply error_reply(uint64_t id, const Error& error);

// One received datagram and the fds it carried (closed with it unless taken).
struct Datagram {
  std::string bytes;
  std::vector<Fd> fds;
};

// Sends one datagram, with `fds` as SCM_RIGHTS. MSG_NOSIGNAL; with `dont_wait`, EAGAIN when
// the peer's queue is full instead of blocking.
Result<void> send_datagram(int socket, std::string_view bytes, std::span<const int> fds = {},
                           bool dont_wait = false);
// Receives one datagram. nullopt: the peer closed its end. A datagram over kMaxMessageBytes
// or with more than kMaxFds fds is refused (EMSGSIZE), every fd it carried closed.
Result<std::optional<Datagram>> receive_datagram(int socket, bool dont_wait = false);

// Who is at the other end of a connected Unix socket (SO_PEERCRED, SO_PEERGROUPS).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};
Result<PeerCredentials> peer_credentials(int socket);

}  // namespace steer::control
