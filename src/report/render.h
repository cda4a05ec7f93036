// How core objects look to people (tables) and machines (JSON): one place for both.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "core/dispatcher.h"

namespace steer::report {

nlohmann::json to_json(const core::BoundBinding& binding);
nlohmann::json to_json(const core::Destination& destination);
nlohmann::json to_json(const core::PooledSocket& socket);
nlohmann::json to_json(const core::ReuseportGroup& group);
// `steer --json status` and steerd's status answer: one rendering of one snapshot.
nlohmann::json status_json(const core::StatusSnapshot& status);
// The table of reuseport groups (status, `steer reuseport`).
std::string groups_table(const std::vector<core::ReuseportGroup>& groups);
// "steer (program 41)", "kernel hash", "other program 7", for a group.
std::string group_program_text(const core::ReuseportGroup& group);
// "active", "draining" or "standby" (active with weight 0).
const char* socket_state_name(const core::PooledSocket& socket);

// Text from steer's state (labels, command names) or from input, made safe for a terminal
// (core::escape_unprintable: ESC, newline, tab, C1, bidi overrides, invalid UTF-8 become
// escapes such as \x1b or \xff). Pinned state written by an older steer may hold labels that
// today's validate_label refuses, and /proc/PID/comm may be cut inside a UTF-8 sequence.
std::string printable(std::string_view text);
// The same for whole messages and reports: newlines are kept.
std::string printable_lines(std::string_view text);

// JSON text that never throws: invalid UTF-8 (from old state or /proc/PID/comm cut at 15
// bytes) becomes U+FFFD instead of an exception.
std::string json_text(const nlohmann::json& json);

std::string bindings_table(const std::vector<core::BoundBinding>& bindings);

// `{"bindings": [...]}` written as it goes, to `out`: the same bytes as json_text of
// {"bindings": [to_json(binding), ...]} and a newline (what `steer --json bindings` printed
// when it built the document first: 2 GB for 1M bindings), holding one buffer of output.
class BindingsJsonStream {
 public:
  explicit BindingsJsonStream(std::FILE* out) : out_(out) {}
  void add(const core::BoundBinding& bound);
  // The end of the document. False when writing failed (errno says why).
  bool finish();

 private:
  void flush();
  std::FILE* out_;
  fmt::memory_buffer buffer_;
  size_t count_ = 0;
  bool failed_ = false;
};
std::string family_name(int family);  // "ipv4" / "ipv6"
// Counter names as in the JSON output: "lookups", "selected", "no_socket", ...
const char* counter_name(size_t counter);

}  // namespace steer::report
