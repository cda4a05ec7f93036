#include "bpf/libbpf_log.h"

#include <bpf/libbpf.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace steer::bpf {

namespace {

std::atomic<LibbpfLog> g_level{LibbpfLog::Warnings};
thread_local std::string t_last_warning;

int print(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG && g_level.load() != LibbpfLog::Debug) return 0;
  char buffer[4096];
  va_list copy;
  va_copy(copy, args);
  int length = std::vsnprintf(buffer, sizeof(buffer), format, copy);
  va_end(copy);
  if (level == LIBBPF_WARN) t_last_warning.assign(buffer, length > 0 ? std::min<int>(length, sizeof(buffer) - 1) : 0);
  if (g_level.load() == LibbpfLog::Quiet) return 0;
  return std::vfprintf(stderr, format, args);
}

}  // namespace

void set_libbpf_log(LibbpfLog level) {
  // STEER_DEBUG=1 always shows everything, whatever the caller asked for.
  if (const char* debug = std::getenv("STEER_DEBUG"); debug && *debug && *debug != '0')
    level = LibbpfLog::Debug;
  g_level.store(level);
  libbpf_set_print(print);
}

std::string last_libbpf_warning() { return t_last_warning; }

}  // namespace steer::bpf
