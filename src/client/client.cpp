#include "steer/client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fd.h"
#include "control/protocol.h"

namespace steer {

struct Client::Impl {
  Fd socket;
  uint64_t next_id = 1;
};

namespace {

ClientError client_error(const Error& error) { return ClientError{error.code, error.message}; }

// The errno a reply's code names ("EPERM"): the inverse of errno_name, which wrote it.
int errno_of(const std::string& name) {
  for (int code = 1; code < 256; ++code)
    if (errno_name(code) == name) return code;
  return EIO;
}

// One request and its reply, on a connection whose requests are numbered by `next_id`.
ClientResult<nlohmann::json> call(int socket, uint64_t& next_id, control::Request request,
                                  std::span<const int> fds = {}) {
  request.id = next_id++;
  auto sent = control::send_datagram(socket, control::encode_request(request), fds);
  if (!sent)
    return std::unexpected(ClientError{sent.error().code,
                                       "steerd: " + sent.error().message + " (is steerd running?)"});
  for (;;) {
    auto received = control::receive_datagram(socket);
    if (!received) return std::unexpected(client_error(received.error()));
    if (!*received)
      return std::unexpected(ClientError{ECONNRESET, "steerd closed the control connection"});
    auto reply = control::parse_reply((*received)->bytes);
    if (!reply) return std::unexpected(client_error(reply.error()));
    if (reply->id != request.id && reply->id != 0) continue;  // an answer to an older call
    if (!reply->ok)
      return std::unexpected(ClientError{errno_of(reply->error_code), reply->error_message});
    return std::move(reply->result);
  }
}

control::Request selection(control::Op op, const std::string& label, const SocketSelector& which) {
  control::Request request;
  request.op = op;
  request.label = label;
  request.cookie = which.cookie;
  request.pid = which.pid;
  request.generation = which.generation;
  return request;
}

ClientResult<size_t> count_of(ClientResult<nlohmann::json> result, const char* key) {
  if (!result) return std::unexpected(result.error());
  auto found = result->find(key);
  if (found == result->end() || !found->is_number_unsigned())
    return std::unexpected(ClientError{EPROTO, std::string("steerd's reply has no '") + key + "'"});
  return found->get<size_t>();
}

}  // namespace

Client::Client(Impl* impl) : impl_(impl) {}
Client::Client(Client&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    delete impl_;
    impl_ = std::exchange(other.impl_, nullptr);
  }
  return *this;
}
Client::~Client() { delete impl_; }

ClientResult<Client> Client::connect(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path))
    return std::unexpected(ClientError{EINVAL, "control socket path '" + socket_path +
                                                   "': give a path of 1 to 107 bytes"});
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  Fd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!socket) return std::unexpected(ClientError{errno, "creating a Unix socket failed"});
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    int code = errno;
    return std::unexpected(ClientError{
        code, "connecting to steerd at " + socket_path + ": " + std::strerror(code) +
                  (code == ENOENT || code == ECONNREFUSED
                       ? " (is steerd running? systemctl start steerd)"
                       : code == EACCES ? " (the control socket's mode and group decide who "
                                          "may connect: see [control] in steerd's config)"
                                        : "")});
  }
  return Client(new Impl{std::move(socket), 1});
}

ClientResult<Registration> Client::register_sockets(const std::string& label,
                                                    std::span<const int> fds,
                                                    const RegisterOptions& options) {
  if (fds.empty() || fds.size() > control::kMaxFds)
    return std::unexpected(ClientError{EINVAL, "register " + std::to_string(fds.size()) +
                                                   " sockets: give 1 to 64"});
  control::Request request;
  request.op = control::Op::Register;
  request.label = label;
  request.generation = options.generation;
  request.next_generation = options.next_generation;
  request.reuseport = options.reuseport;
  auto result = call(impl_->socket.get(), impl_->next_id, request, fds);
  if (!result) return std::unexpected(result.error());
  Registration registration;
  registration.generation = result->value("generation", 0u);
  for (const auto& socket : result->value("registered", nlohmann::json::array()))
    registration.cookies.push_back(socket.value("cookie", uint64_t{0}));
  return registration;
}

ClientResult<size_t> Client::unregister(const std::string& label, const SocketSelector& which) {
  return count_of(call(impl_->socket.get(), impl_->next_id, selection(control::Op::Unregister, label, which)), "unregistered");
}
ClientResult<size_t> Client::drain(const std::string& label, const SocketSelector& which) {
  return count_of(call(impl_->socket.get(), impl_->next_id, selection(control::Op::Drain, label, which)), "drained");
}
ClientResult<size_t> Client::undrain(const std::string& label, const SocketSelector& which) {
  return count_of(call(impl_->socket.get(), impl_->next_id, selection(control::Op::Undrain, label, which)), "undrained");
}
ClientResult<size_t> Client::set_weight(const std::string& label, const SocketSelector& which,
                                        uint32_t weight) {
  auto request = selection(control::Op::Weight, label, which);
  request.weight = weight;
  return count_of(call(impl_->socket.get(), impl_->next_id, request), "changed");
}

ClientResult<void> Client::promote(const std::string& label, uint32_t generation) {
  control::Request request;
  request.op = control::Op::Promote;
  request.label = label;
  request.generation = generation;
  auto result = call(impl_->socket.get(), impl_->next_id, request);
  if (!result) return std::unexpected(result.error());
  return {};
}

ClientResult<std::string> Client::status_json(const std::string& label) {
  control::Request request;
  request.op = control::Op::Status;
  request.label = label;
  auto result = call(impl_->socket.get(), impl_->next_id, request);
  if (!result) return std::unexpected(result.error());
  return result->dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

ClientResult<uint32_t> Client::take_over(const std::string& label, std::span<const int> fds,
                                         bool reuseport) {
  auto registered = register_sockets(
      label, fds, {.generation = std::nullopt, .next_generation = true, .reuseport = reuseport});
  if (!registered) return std::unexpected(registered.error());
  if (auto promoted = promote(label, registered->generation); !promoted)
    return std::unexpected(promoted.error());
  return registered->generation;
}

ClientResult<void> Client::wait_until_drained(const std::string& label, uint32_t generation,
                                              int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    control::Request request;
    request.op = control::Op::Status;
    request.label = label;
    auto status = call(impl_->socket.get(), impl_->next_id, request);
    if (!status) return std::unexpected(status.error());
    bool drained = true;
    for (const auto& destination : status->value("destinations", nlohmann::json::array())) {
      if (destination.value("label", "") != label) continue;
      for (const auto& socket : destination.value("sockets", nlohmann::json::array())) {
        if (socket.value("generation", 0u) != generation) continue;
        // Draining, and status says its queue is empty (null, when steer could not read
        // the queue, is not empty).
        drained = drained && socket.value("state", "") == "draining" &&
                  socket.value("empty", nlohmann::json()) == true;
      }
    }
    if (drained) return {};
    if (std::chrono::steady_clock::now() >= deadline)
      return std::unexpected(ClientError{
          ETIMEDOUT, "generation " + std::to_string(generation) + " of '" + label +
                         "' is not drained and empty after " + std::to_string(timeout_ms) +
                         " ms (is it promoted away? steer status " + label + ")"});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace steer
