/* The steer client library for C and other languages: the operations of steer::Client
 * (steer/client.h) with plain C types. Every function returning int returns 0 on success or
 * a negative errno value; steer_client_last_error() then says what went wrong and what to do.
 * Link with `pkg-config --libs steer-client`. */
#ifndef STEER_CLIENT_H
#define STEER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct steer_client steer_client;

/* Which sockets of a label an operation acts on: a field of 0 matches any. */
typedef struct steer_selector {
  uint64_t cookie;
  int32_t pid;
  uint32_t generation;
} steer_selector;

#define STEER_REGISTER_NEXT_GENERATION 1u /* join the newest generation + 1 */
#define STEER_REGISTER_REUSEPORT 2u       /* attach steer's sk_reuseport program */

/* Connects to steerd (socket_path NULL: /run/steer/steerd.sock). NULL on failure, with the
 * reason in *error (-errno) and message (may be NULL; message_size bytes, NUL-terminated). */
steer_client* steer_client_connect(const char* socket_path, int* error, char* message,
                                   size_t message_size);
void steer_client_close(steer_client* client);
/* The message of the last failed call on this client ("" when none). */
const char* steer_client_last_error(const steer_client* client);

/* generation 0: the label's newest (or the next one with STEER_REGISTER_NEXT_GENERATION).
 * *registered_generation (may be NULL) receives the generation joined. */
int steer_client_register(steer_client* client, const char* label, const int* fds, size_t count,
                          uint32_t generation, unsigned flags, uint32_t* registered_generation);
/* *count (may be NULL) receives how many sockets changed. */
int steer_client_unregister(steer_client* client, const char* label, const steer_selector* which,
                            size_t* count);
int steer_client_drain(steer_client* client, const char* label, const steer_selector* which,
                       size_t* count);
int steer_client_undrain(steer_client* client, const char* label, const steer_selector* which,
                         size_t* count);
int steer_client_set_weight(steer_client* client, const char* label,
                            const steer_selector* which, uint32_t weight, size_t* count);
int steer_client_promote(steer_client* client, const char* label, uint32_t generation);
/* *json receives steerd's status as JSON text; release it with steer_client_free(). */
int steer_client_status(steer_client* client, const char* label, char** json);
void steer_client_free(void* text);
/* Graceful restart (see steer/client.h). */
int steer_client_take_over(steer_client* client, const char* label, const int* fds, size_t count,
                           unsigned flags, uint32_t* generation);
int steer_client_wait_until_drained(steer_client* client, const char* label, uint32_t generation,
                                    int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* STEER_CLIENT_H */
