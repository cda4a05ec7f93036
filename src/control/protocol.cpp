#include "control/protocol.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cstring>
#include <limits>

namespace steer::control {
namespace {

constexpr std::array<std::pair<Op, std::string_view>, 7> kOps{{
    {Op::Register, "register"},
    {Op::Unregister, "unregister"},
    {Op::Drain, "drain"},
    {Op::Undrain, "undrain"},
    {Op::Promote, "promote"},
    {Op::Weight, "weight"},
    {Op::Status, "status"},
}};

const char* json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number with a fraction";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::null: return "null";
    default: return "not a value";
  }
}

// An unsigned integer field no larger than `max`.
Result<uint64_t> unsigned_field(const nlohmann::json& value, std::string_view key, uint64_t max) {
  if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0))
    return fail(EINVAL, "request field '{}' is {}: it must be an integer from 0 to {}", key,
                json_type_name(value), max);
  uint64_t number = value.get<uint64_t>();
  if (number > max)
    return fail(EINVAL, "request field '{}' is {}: it must be at most {}", key, number, max);
  return number;
}

Result<nlohmann::json> parse_object(std::string_view bytes, const char* what) {
  auto json = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    return fail(EINVAL, "the {} is not valid JSON: each datagram must hold one JSON object "
                        "(docs/control-protocol.md)", what);
  if (!json.is_object())
    return fail(EINVAL, "the {} is {}, not a JSON object (docs/control-protocol.md)", what,
                json_type_name(json));
  return json;
}

Result<void> check_version(const nlohmann::json& json, const char* what) {
  auto found = json.find("version");
  if (found == json.end())
    return fail(EPROTO, "the {} has no 'version': this steer speaks control protocol version {}",
                what, kVersion);
  auto version = unsigned_field(*found, "version", std::numeric_limits<uint32_t>::max());
  if (!version || *version != kVersion)
    return fail(EPROTO, "the {} is control protocol version {}, this steer speaks version {}: "
                        "use a client library of the same steer release",
                what, found->dump(), kVersion);
  return {};
}

}  // namespace

std::string_view op_name(Op op) {
  for (const auto& [candidate, name] : kOps)
    if (candidate == op) return name;
  return "?";
}

std::optional<Op> parse_op(std::string_view name) {
  for (const auto& [op, candidate] : kOps)
    if (candidate == name) return op;
  return std::nullopt;
}

Result<Request> parse_request(std::string_view bytes, size_t fd_count) {
  auto json = STEER_TRY(parse_object(bytes, "request"));
  STEER_TRY(check_version(json, "request"));
  Request request;
  auto op_field = json.find("op");
  if (op_field == json.end() || !op_field->is_string())
    return fail(EINVAL, "the request has no 'op' string: it must be one of register, unregister, "
                        "drain, undrain, promote, weight, status");
  auto op = parse_op(op_field->get_ref<const std::string&>());
  if (!op)
    return fail(EINVAL, "unknown op '{}': it must be one of register, unregister, drain, "
                        "undrain, promote, weight, status", op_field->get_ref<const std::string&>());
  request.op = *op;
  bool has_label = false;
  for (const auto& [key, value] : json.items()) {
    if (key == "version" || key == "op") continue;
    if (key == "id") {
      request.id = STEER_TRY(unsigned_field(value, key, std::numeric_limits<uint64_t>::max()));
    } else if (key == "label") {
      if (!value.is_string())
        return fail(EINVAL, "request field 'label' is {}: it must be a string",
                    json_type_name(value));
      request.label = value.get<std::string>();
      has_label = true;
    } else if (key == "generation" && request.op != Op::Status) {
      if (request.op == Op::Register && value.is_string() && value == "next") {
        request.next_generation = true;
        continue;
      }
      auto generation = static_cast<uint32_t>(STEER_TRY(unsigned_field(
          value, key, std::numeric_limits<uint32_t>::max())));
      if (generation == 0)
        return fail(EINVAL, "request field 'generation' is 0: generations start at 1");
      request.generation = generation;
    } else if (key == "reuseport" && request.op == Op::Register) {
      if (!value.is_boolean())
        return fail(EINVAL, "request field 'reuseport' is {}: it must be true or false",
                    json_type_name(value));
      request.reuseport = value.get<bool>();
    } else if (key == "cookie" && request.op != Op::Register && request.op != Op::Promote &&
               request.op != Op::Status) {
      request.cookie = STEER_TRY(unsigned_field(value, key, std::numeric_limits<uint64_t>::max()));
    } else if (key == "pid" && request.op != Op::Register && request.op != Op::Promote &&
               request.op != Op::Status) {
      uint64_t pid = STEER_TRY(unsigned_field(value, key, std::numeric_limits<int32_t>::max()));
      if (pid == 0) return fail(EINVAL, "request field 'pid' is 0: it must be a process id");
      request.pid = static_cast<int32_t>(pid);
    } else if (key == "weight" && request.op == Op::Weight) {
      request.weight = static_cast<uint32_t>(STEER_TRY(unsigned_field(value, key, 1000)));
    } else {
      return fail(EINVAL, "request field '{}' is not one a {} request takes "
                          "(docs/control-protocol.md lists them)", key, op_name(request.op));
    }
  }
  if (request.op != Op::Status && !has_label)
    return fail(EINVAL, "a {} request needs a 'label'", op_name(request.op));
  if (request.op == Op::Promote && !request.generation)
    return fail(EINVAL, "a promote request needs a 'generation' (an integer from 1)");
  if (request.op == Op::Weight && !request.weight)
    return fail(EINVAL, "a weight request needs a 'weight' (an integer from 0 to 1000)");
  if (request.op == Op::Register) {
    if (fd_count == 0)
      return fail(EINVAL, "a register request must carry the sockets to register as SCM_RIGHTS "
                          "(1 to {} fds); it carried none", kMaxFds);
  } else if (fd_count != 0) {
    return fail(EINVAL, "a {} request carries no fds; it carried {} (they were closed)",
                op_name(request.op), fd_count);
  }
  return request;
}

std::string encode_request(const Request& request) {
  nlohmann::json json{{"version", kVersion}, {"id", request.id}, {"op", op_name(request.op)}};
  if (request.op != Op::Status || !request.label.empty()) json["label"] = request.label;
  if (request.next_generation)
    json["generation"] = "next";
  else if (request.generation)
    json["generation"] = *request.generation;
  if (request.reuseport) json["reuseport"] = true;
  if (request.cookie) json["cookie"] = *request.cookie;
  if (request.pid) json["pid"] = *request.pid;
  if (request.weight) json["weight"] = *request.weight;
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Reply> parse_reply(std::string_view bytes) {
  auto json = STEER_TRY(parse_object(bytes, "reply"));
  STEER_TRY(check_version(json, "reply"));
  Reply reply;
  if (auto id = json.find("id"); id != json.end())
    reply.id = STEER_TRY(unsigned_field(*id, "id", std::numeric_limits<uint64_t>::max()));
  auto ok = json.find("ok");
  if (ok == json.end() || !ok->is_boolean())
    return fail(EPROTO, "the reply has no 'ok' boolean");
  reply.ok = ok->get<bool>();
  if (reply.ok) {
    auto result = json.find("result");
    // Moved, not copied: a deeply nested result costs no recursion here.
    reply.result = result != json.end() ? std::move(*result) : nlohmann::json::object();
    return reply;
  }
  auto error = json.find("error");
  if (error == json.end() || !error->is_object() || !error->contains("message") ||
      !(*error)["message"].is_string())
    return fail(EPROTO, "the reply failed without an error message");
  reply.error_message = (*error)["message"].get<std::string>();
  if (error->contains("code") && (*error)["code"].is_string())
    reply.error_code = (*error)["code"].get<std::string>();
  return reply;
}

std::string encode_reply(const Reply& reply) {
  nlohmann::json json{{"version", kVersion}, {"id", reply.id}, {"ok", reply.ok}};
  if (reply.ok)
    json["result"] = reply.result.is_null() ? nlohmann::json::object() : reply.result;
  else
    json["error"] = {{"code", reply.error_code}, {"message", reply.error_message}};
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Reply error_reply(uint64_t id, const Error& error) {
  return Reply{.id = id, .ok = false, .error_code = error.code_name(),
               .error_message = error.message, .result = {}};
}

Result<void> send_datagram(int socket, std::string_view bytes, std::span<const int> fds,
                           bool dont_wait) {
  if (bytes.size() > kMaxMessageBytes)
    return fail(EMSGSIZE, "a control message of {} bytes is over the limit of {}", bytes.size(),
                kMaxMessageBytes);
  if (fds.size() > kMaxFds)
    return fail(EMSGSIZE, "{} fds in one control message: at most {}", fds.size(), kMaxFds);
  iovec io{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  int flags = MSG_NOSIGNAL | (dont_wait ? MSG_DONTWAIT : 0);
  ssize_t sent;
  do sent = ::sendmsg(socket, &message, flags);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return fail_errno("sending a control message");
  return {};
}

Result<std::optional<Datagram>> receive_datagram(int socket, bool dont_wait) {
  Datagram datagram;
  datagram.bytes.resize(kMaxMessageBytes + 1);
  iovec io{datagram.bytes.data(), datagram.bytes.size()};
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  // Room for more fds than allowed, so that too many is seen as such rather than cut.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 1)) + CMSG_SPACE(64)];
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  int flags = MSG_CMSG_CLOEXEC | MSG_TRUNC | (dont_wait ? MSG_DONTWAIT : 0);
  ssize_t received;
  do received = ::recvmsg(socket, &message, flags);
  while (received < 0 && errno == EINTR);
  if (received < 0) return fail_errno("receiving a control message");
  // Every fd that came is owned at once, so that each error below closes them.
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      datagram.fds.emplace_back(fd);
    }
  }
  if (received == 0 && datagram.fds.empty()) return std::nullopt;  // the peer closed its end
  if (message.msg_flags & MSG_CTRUNC)
    return fail(EMSGSIZE, "a control message carried more fds than the kernel let through "
                          "(at most {} fit): they were closed", kMaxFds);
  if (static_cast<size_t>(received) > kMaxMessageBytes)
    return fail(EMSGSIZE, "a control message of {} bytes is over the limit of {}", received,
                kMaxMessageBytes);
  if (datagram.fds.size() > kMaxFds)
    return fail(EMSGSIZE, "a control message carried {} fds: at most {} (they were closed)",
                datagram.fds.size(), kMaxFds);
  datagram.bytes.resize(static_cast<size_t>(received));
  return datagram;
}

Result<PeerCredentials> peer_credentials(int socket) {
  ucred credentials{};
  socklen_t length = sizeof(credentials);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0)
    return fail_errno("reading the peer's credentials (SO_PEERCRED)");
  PeerCredentials peer{.pid = credentials.pid, .uid = credentials.uid, .gid = credentials.gid,
                       .groups = {}};
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      peer.groups = std::move(groups);
      return peer;
    }
    if (errno != ERANGE) return fail_errno("reading the peer's groups (SO_PEERGROUPS)");
    groups.resize(bytes / sizeof(gid_t) + 1);
  }
  return fail(ERANGE, "reading the peer's groups (SO_PEERGROUPS): the list kept growing");
}

}  // namespace steer::control
