// The C face of steer::Client: each call maps to the C++ one; errors become -errno plus a
// message kept in the client.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "steer/client.h"
#include "steer/steer_client.h"

struct steer_client {
  steer::Client client;
  std::string last_error;
};

namespace {

template <class T>
int finish(steer_client* handle, const steer::ClientResult<T>& result) {
  if (result) {
    handle->last_error.clear();
    return 0;
  }
  handle->last_error = result.error().message;
  return -(result.error().code != 0 ? result.error().code : EIO);
}

steer::SocketSelector selector_of(const steer_selector* which) {
  steer::SocketSelector selector;
  if (which == nullptr) return selector;
  if (which->cookie != 0) selector.cookie = which->cookie;
  if (which->pid != 0) selector.pid = which->pid;
  if (which->generation != 0) selector.generation = which->generation;
  return selector;
}

int counted(steer_client* handle, const steer::ClientResult<size_t>& result, size_t* count) {
  if (result && count != nullptr) *count = *result;
  return finish(handle, result);
}

bool bad_arguments(steer_client* handle, const char* label) {
  if (handle == nullptr) return true;
  if (label == nullptr) {
    handle->last_error = "label is NULL: give the label of the service";
    return true;
  }
  return false;
}

}  // namespace

extern "C" {

steer_client* steer_client_connect(const char* socket_path, int* error, char* message,
                                   size_t message_size) {
  auto client = steer::Client::connect(socket_path ? socket_path : steer::kDefaultControlSocket);
  if (!client) {
    if (error != nullptr) *error = -client.error().code;
    if (message != nullptr && message_size > 0) {
      std::strncpy(message, client.error().message.c_str(), message_size - 1);
      message[message_size - 1] = '\0';
    }
    return nullptr;
  }
  if (error != nullptr) *error = 0;
  return new steer_client{std::move(*client), {}};
}

void steer_client_close(steer_client* client) { delete client; }

const char* steer_client_last_error(const steer_client* client) {
  return client ? client->last_error.c_str() : "no client (NULL)";
}

int steer_client_register(steer_client* client, const char* label, const int* fds, size_t count,
                          uint32_t generation, unsigned flags, uint32_t* registered_generation) {
  if (bad_arguments(client, label)) return -EINVAL;
  steer::RegisterOptions options;
  if (generation != 0) options.generation = generation;
  options.next_generation = flags & STEER_REGISTER_NEXT_GENERATION;
  options.reuseport = flags & STEER_REGISTER_REUSEPORT;
  auto result = client->client.register_sockets(label, {fds, count}, options);
  if (result && registered_generation != nullptr) *registered_generation = result->generation;
  return finish(client, result);
}

int steer_client_unregister(steer_client* client, const char* label, const steer_selector* which,
                            size_t* count) {
  if (bad_arguments(client, label)) return -EINVAL;
  return counted(client, client->client.unregister(label, selector_of(which)), count);
}

int steer_client_drain(steer_client* client, const char* label, const steer_selector* which,
                       size_t* count) {
  if (bad_arguments(client, label)) return -EINVAL;
  return counted(client, client->client.drain(label, selector_of(which)), count);
}

int steer_client_undrain(steer_client* client, const char* label, const steer_selector* which,
                         size_t* count) {
  if (bad_arguments(client, label)) return -EINVAL;
  return counted(client, client->client.undrain(label, selector_of(which)), count);
}

int steer_client_set_weight(steer_client* client, const char* label,
                            const steer_selector* which, uint32_t weight, size_t* count) {
  if (bad_arguments(client, label)) return -EINVAL;
  return counted(client, client->client.set_weight(label, selector_of(which), weight), count);
}

int steer_client_promote(steer_client* client, const char* label, uint32_t generation) {
  if (bad_arguments(client, label)) return -EINVAL;
  return finish(client, client->client.promote(label, generation));
}

int steer_client_status(steer_client* client, const char* label, char** json) {
  if (client == nullptr || json == nullptr) return -EINVAL;
  auto result = client->client.status_json(label ? label : "");
  if (result) *json = strdup(result->c_str());
  return finish(client, result);
}

void steer_client_free(void* text) { std::free(text); }

int steer_client_take_over(steer_client* client, const char* label, const int* fds, size_t count,
                           unsigned flags, uint32_t* generation) {
  if (bad_arguments(client, label)) return -EINVAL;
  auto result = client->client.take_over(label, {fds, count}, flags & STEER_REGISTER_REUSEPORT);
  if (result && generation != nullptr) *generation = *result;
  return finish(client, result);
}

int steer_client_wait_until_drained(steer_client* client, const char* label, uint32_t generation,
                                    int timeout_ms) {
  if (bad_arguments(client, label)) return -EINVAL;
  return finish(client, client->client.wait_until_drained(label, generation, timeout_ms));
}

}  // extern "C"
