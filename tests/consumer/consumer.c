/* Prints steerd's status through the C API (built with pkg-config's flags). */
#include <stdio.h>
#include <string.h>

#include <steer/steer_client.h>

int main(int argc, char** argv) {
  char message[512];
  int error = 0;
  steer_client* client = steer_client_connect(argc > 1 ? argv[1] : NULL, &error, message,
                                              sizeof(message));
  if (client == NULL) {
    fprintf(stderr, "consumer_c: %s (%d)\n", message, error);
    return 1;
  }
  char* json = NULL;
  if (steer_client_status(client, NULL, &json) != 0) {
    fprintf(stderr, "consumer_c: %s\n", steer_client_last_error(client));
    steer_client_close(client);
    return 1;
  }
  printf("consumer_c: status of %zu bytes\n", strlen(json));
  steer_client_free(json);
  steer_client_close(client);
  return 0;
}
