// Bindings as users write them: (protocol, prefix, ports) -> label. Parsing and validation
// only; no kernel objects here (unit-tested without root).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "abi/steer_abi.h"
#include "base/error.h"

namespace steer::core {

enum class Protocol : uint8_t { Tcp = 6, Udp = 17 };  // the IPPROTO_ values
Result<Protocol> parse_protocol(std::string_view text);
std::string_view to_string(Protocol protocol);

// An IPv4 or IPv6 prefix with its host bits zero.
struct Prefix {
  int family = 0;                    // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};   // network order; IPv4 in the first 4
  uint8_t length = 0;

  // "192.0.2.0/24", "2001:db8::/64", or a bare address (a /32 or /128).
  static Result<Prefix> parse(std::string_view text);
  int max_length() const;  // 32 or 128
  bool contains(const Prefix& other) const;  // other is inside (or equal to) this
  std::string to_string() const;
  auto operator<=>(const Prefix&) const = default;
};

// A single port, a range, or every port (written 0).
struct PortRange {
  uint16_t first = 1;
  uint16_t last = 65535;

  static Result<PortRange> parse(std::string_view text);  // "80", "8000-8999", "0"
  bool is_single() const { return first == last; }
  bool is_all() const { return first == 1 && last == 65535; }
  uint32_t width() const { return uint32_t(last) - first + 1; }
  bool contains(const PortRange& other) const { return first <= other.first && other.last <= last; }
  bool overlaps(const PortRange& other) const { return first <= other.last && other.first <= last; }
  std::string to_string() const;  // "80", "8000-8999", "all"
  auto operator<=>(const PortRange&) const = default;
};

// 1..255 bytes of printable UTF-8: no NUL, no control character (C0, DEL, C1), no line or
// paragraph separator or bidi override, no invalid, overlong or surrogate sequence. Labels
// reach terminals and JSON; anything else could rewrite a screen or break a JSON consumer.
// Returns the reason (with the byte offset) when not.
Result<void> validate_label(std::string_view label);

// One step of strict UTF-8 decoding (RFC 3629): the code point at `text[at]` and its length
// in bytes. An invalid, overlong, surrogate or truncated sequence is one bad byte: `valid`
// false, `length` 1, `code_point` that byte.
struct Utf8Step {
  char32_t code_point = 0;
  size_t length = 1;
  bool valid = false;
};
Utf8Step decode_utf8(std::string_view text, size_t at);
// False for what must not reach a terminal as is: C0 controls (NUL, ESC, newline, tab...), DEL,
// C1 controls (U+0080..U+009F), U+2028/U+2029, and the bidi embeddings, overrides and isolates
// (U+202A..U+202E, U+2066..U+2069) that reorder what follows them.
bool is_printable(char32_t code_point);
// `text` with what is_printable refuses, and bytes that are not valid UTF-8, written as
// escapes: \x1b, \xff (a bad byte), \u202e; newlines kept if asked. Backslashes are not
// doubled, so escaping twice changes nothing. The CLI shows all text through this.
std::string escape_unprintable(std::string_view text, bool keep_newlines = false);

struct Binding {
  std::string label;
  Protocol protocol = Protocol::Tcp;
  Prefix prefix;
  PortRange ports;

  // From the CLI's words: LABEL PROTO PREFIX PORTS.
  static Result<Binding> parse(std::string_view label, std::string_view protocol,
                               std::string_view prefix, std::string_view ports);
  std::string to_string() const;  // "web tcp 192.0.2.0/24 80"
  // Same protocol, prefix and ports (the label may differ).
  bool same_match(const Binding& other) const {
    return protocol == other.protocol && prefix == other.prefix && ports == other.ports;
  }
};

// The key of a binding in the kernel's binding hashes (port 0 for ranges).
steer_binding_key binding_key(Protocol protocol, const Prefix& prefix, uint16_t port);

// Checks a whole set of bindings against each other: no two bindings with the same match,
// ranges on one protocol+prefix nest or are disjoint, and at most STEER_RANGES_PER_PREFIX
// of them. The error names the bindings in conflict.
Result<void> validate_binding_set(const std::vector<Binding>& bindings);

enum class BindingsFormat { Detect, Toml, Json };
// "toml" / "json" (for --format).
Result<BindingsFormat> parse_bindings_format(std::string_view text);

// Bindings files are read whole; this is far above 1M bindings of JSON (~100 MB).
inline constexpr size_t kBindingsFileMaxBytes = size_t{256} << 20;

// Parses the text of a bindings file. Detect: JSON when the first character that is neither
// white space nor in a # comment is '{', else TOML. Types are strict (ports: an integer
// 0..65535 or a string; the others strings), unknown and duplicate keys are refused, and the
// first bad entry is reported with its number and line; `name` starts every message. An
// empty set (an empty file, `binding = []`, {"bindings": []}) is returned as such: whether it
// may replace the bindings in place is the caller's call.
Result<std::vector<Binding>> parse_bindings(std::string_view text, const std::string& name,
                                            BindingsFormat format = BindingsFormat::Detect);

// Reads and parses a bindings file: `path` must be a regular file (anything else is refused
// before a byte is read: a FIFO would block, /dev/zero never ends) of at most `max_bytes`, or
// "-" for stdin, of which at most `max_bytes` are read. How the entries fit together
// (validate_binding_set) is checked by replace_bindings.
Result<std::vector<Binding>> read_bindings_file(const std::string& path,
                                                BindingsFormat format = BindingsFormat::Detect,
                                                size_t max_bytes = kBindingsFileMaxBytes);

}  // namespace steer::core
