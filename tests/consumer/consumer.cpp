// Prints how many destinations steerd's status lists, through steer::Client.
#include <cstdio>
#include <string>

#include <steer/client.h>

int main(int argc, char** argv) {
  auto client = steer::Client::connect(argc > 1 ? argv[1] : steer::kDefaultControlSocket);
  if (!client) {
    std::fprintf(stderr, "consumer_cpp: %s\n", client.error().message.c_str());
    return 1;
  }
  auto status = client->status_json();
  if (!status) {
    std::fprintf(stderr, "consumer_cpp: %s\n", status.error().message.c_str());
    return 1;
  }
  std::printf("consumer_cpp: status of %zu bytes\n", status->size());
  return 0;
}
