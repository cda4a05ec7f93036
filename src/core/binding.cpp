#include "core/binding.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

namespace steer::core {

namespace {

Result<uint32_t> parse_number(std::string_view text, uint32_t max, std::string_view what) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max)
    return fail(EINVAL, "'{}' is not a valid {} (a number from 0 to {})", text, what, max);
  return value;
}

}  // namespace

Result<Protocol> parse_protocol(std::string_view text) {
  if (text == "tcp") return Protocol::Tcp;
  if (text == "udp") return Protocol::Udp;
  return fail(EINVAL, "unknown protocol '{}': use tcp or udp", text);
}

std::string_view to_string(Protocol protocol) { return protocol == Protocol::Tcp ? "tcp" : "udp"; }

int Prefix::max_length() const { return family == AF_INET6 ? 128 : 32; }

Result<Prefix> Prefix::parse(std::string_view text) {
  Prefix prefix;
  auto slash = text.find('/');
  std::string address(text.substr(0, slash));
  if (::inet_pton(AF_INET, address.c_str(), prefix.bytes.data()) == 1) {
    prefix.family = AF_INET;
  } else if (::inet_pton(AF_INET6, address.c_str(), prefix.bytes.data()) == 1) {
    prefix.family = AF_INET6;
  } else {
    return fail(EINVAL, "'{}' is not an IPv4 or IPv6 address or prefix (e.g. 192.0.2.0/24, "
                        "2001:db8::/64)", text);
  }
  prefix.length = static_cast<uint8_t>(prefix.max_length());
  if (slash != std::string_view::npos) {
    auto length = parse_number(text.substr(slash + 1), prefix.max_length(), "prefix length");
    if (!length)
      return fail(EINVAL, "'{}': the prefix length must be 0 to {}", text, prefix.max_length());
    prefix.length = static_cast<uint8_t>(*length);
  }
  // Host bits must be zero: a typo such as 192.0.2.7/24 would otherwise bind a whole /24.
  Prefix masked = prefix;
  for (int bit = prefix.length; bit < prefix.max_length(); ++bit)
    masked.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  // Inside ::ffff:0:0/96 a binding could never match: the kernel looks up connections to
  // IPv4-mapped addresses as IPv4 (on the IPv4 address), so the IPv4 form is what works.
  static constexpr std::array<uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (prefix.family == AF_INET6 && prefix.length >= 96 &&
      std::equal(kMapped.begin(), kMapped.end(), masked.bytes.begin())) {
    Prefix v4;
    v4.family = AF_INET;
    std::copy_n(masked.bytes.begin() + 12, 4, v4.bytes.begin());
    v4.length = static_cast<uint8_t>(prefix.length - 96);
    return fail(EINVAL, "'{}' is an IPv4-mapped IPv6 prefix (inside ::ffff:0:0/96), which never "
                        "matches: the kernel looks those connections up as IPv4; write {}",
                text, v4.to_string());
  }
  if (masked.bytes != prefix.bytes)
    return fail(EINVAL, "'{}' has host bits set: did you mean {}?", text, masked.to_string());
  return prefix;
}

bool Prefix::contains(const Prefix& other) const {
  if (family != other.family || other.length < length) return false;
  for (int bit = 0; bit < length; ++bit) {
    uint8_t mask = 0x80 >> (bit % 8);
    if ((bytes[bit / 8] & mask) != (other.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

std::string Prefix::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), buffer, sizeof(buffer));
  return fmt::format("{}/{}", buffer, length);
}

Result<PortRange> PortRange::parse(std::string_view text) {
  auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto port = parse_number(text, 65535, "port");
    if (!port) return fail(EINVAL, "'{}': ports are N (1-65535), N-M, or 0 for all ports", text);
    if (*port == 0) return PortRange{1, 65535};
    return PortRange{static_cast<uint16_t>(*port), static_cast<uint16_t>(*port)};
  }
  auto first = parse_number(text.substr(0, dash), 65535, "port");
  auto last = parse_number(text.substr(dash + 1), 65535, "port");
  if (!first || !last || *first == 0 || *last == 0)
    return fail(EINVAL, "'{}': a port range is N-M with 1 <= N <= M <= 65535", text);
  if (*first > *last)
    return fail(EINVAL, "'{}': the range is reversed; write {}-{}", text, *last, *first);
  return PortRange{static_cast<uint16_t>(*first), static_cast<uint16_t>(*last)};
}

std::string PortRange::to_string() const {
  if (is_all()) return "all";
  if (is_single()) return std::to_string(first);
  return fmt::format("{}-{}", first, last);
}

Utf8Step decode_utf8(std::string_view text, size_t at) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(at);
  Utf8Step bad{lead, 1, false};
  if (lead < 0x80) return {lead, 1, true};
  size_t length = 0;
  char32_t code_point = 0;
  // The second byte's range rules out overlong forms (E0, F0), surrogates (ED) and code
  // points above U+10FFFF (F4); C0, C1 and F5..FF never start a sequence.
  uint8_t low = 0x80, high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, code_point = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, code_point = lead & 0x0f;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, code_point = lead & 0x07;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return bad;
  }
  if (text.size() - at < length) return bad;
  for (size_t i = 1; i < length; ++i) {
    uint8_t next = byte(at + i);
    if (next < (i == 1 ? low : 0x80) || next > (i == 1 ? high : 0xbf)) return bad;
    code_point = (code_point << 6) | (next & 0x3f);
  }
  return {code_point, length, true};
}

bool is_printable(char32_t c) {
  if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f)) return false;
  if (c == 0x2028 || c == 0x2029) return false;
  if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return false;
  return true;
}

std::string escape_unprintable(std::string_view text, bool keep_newlines) {
  // Nearly all text is printable ASCII: copied as is (`steer bindings` of 1M prints ~50 MB).
  size_t at = 0;
  while (at < text.size()) {
    auto c = static_cast<uint8_t>(text[at]);
    if ((c < 0x20 && !(keep_newlines && c == '\n')) || c >= 0x7f) break;
    ++at;
  }
  std::string out(text.substr(0, at));
  if (at == text.size()) return out;
  out.reserve(text.size() + 16);
  while (at < text.size()) {
    auto step = decode_utf8(text, at);
    auto c = static_cast<uint32_t>(step.code_point);
    if (step.valid && (is_printable(step.code_point) || (keep_newlines && c == '\n')))
      out.append(text.substr(at, step.length));
    else if (!step.valid || c < 0x80)
      out += fmt::format("\\x{:02x}", c);  // a bad byte, a C0 control or DEL
    else
      out += fmt::format("\\u{:04x}", c);
    at += step.length;
  }
  return out;
}

Result<void> validate_label(std::string_view label) {
  static constexpr const char* kRule = "labels are 1..255 bytes of printable UTF-8";
  if (label.empty()) return fail(EINVAL, "a label cannot be empty: name the service, e.g. web");
  if (label.size() > STEER_LABEL_MAX)
    return fail(EINVAL, "label is {} bytes long; the limit is {}", label.size(), STEER_LABEL_MAX);
  for (size_t at = 0; at < label.size();) {
    auto step = decode_utf8(label, at);
    // Bytes are counted from 1, as people count them.
    if (!step.valid)
      return fail(EINVAL, "label is not valid UTF-8 (byte 0x{:02x} at byte {}): {}",
                  static_cast<uint32_t>(step.code_point), at + 1, kRule);
    if (step.code_point == 0)
      return fail(EINVAL, "a label cannot contain a NUL byte (at byte {}): {}", at + 1, kRule);
    if (!is_printable(step.code_point)) {
      auto c = static_cast<uint32_t>(step.code_point);
      bool control = c < 0xa0;  // C0, DEL, C1; the others are separators and bidi controls
      return fail(EINVAL, "label contains a {} character ({}) at byte {}: {}",
                  control ? "control" : "non-printable",
                  c < 0x80 ? fmt::format("0x{:02x}", c) : fmt::format("U+{:04X}", c), at + 1,
                  kRule);
    }
    at += step.length;
  }
  return {};
}

Result<Binding> Binding::parse(std::string_view label, std::string_view protocol,
                               std::string_view prefix, std::string_view ports) {
  if (auto valid = validate_label(label); !valid) return std::unexpected(valid.error());
  auto parsed_protocol = parse_protocol(protocol);
  if (!parsed_protocol) return std::unexpected(parsed_protocol.error());
  auto parsed_prefix = Prefix::parse(prefix);
  if (!parsed_prefix) return std::unexpected(parsed_prefix.error());
  auto parsed_ports = PortRange::parse(ports);
  if (!parsed_ports) return std::unexpected(parsed_ports.error());
  return Binding{std::string(label), *parsed_protocol, *parsed_prefix, *parsed_ports};
}

std::string Binding::to_string() const {
  return fmt::format("{} {} {} {}", label, core::to_string(protocol), prefix.to_string(),
                     ports.is_all() ? "0" : ports.to_string());
}

steer_binding_key binding_key(Protocol protocol, const Prefix& prefix, uint16_t port) {
  steer_binding_key key{};
  key.protocol = static_cast<uint8_t>(protocol);
  key.family = static_cast<uint8_t>(prefix.family);
  key.prefix_len = prefix.length;
  key.port = port;
  std::memcpy(key.addr, prefix.bytes.data(), prefix.family == AF_INET ? 4 : 16);
  return key;
}

Result<void> validate_binding_set(const std::vector<Binding>& bindings) {
  // Sorted by (protocol, prefix, ports): one protocol+prefix is a run of neighbours, and equal
  // ports are next to each other. O(n log n) and no allocation per binding, so a file of 1M
  // bindings is checked in a fraction of a second (a map of groups took seconds). Stable, so
  // messages name the two bindings in file order.
  std::vector<const Binding*> order(bindings.size());
  for (size_t i = 0; i < bindings.size(); ++i) order[i] = &bindings[i];
  std::stable_sort(order.begin(), order.end(), [](const Binding* a, const Binding* b) {
    if (a->protocol != b->protocol) return a->protocol < b->protocol;
    if (a->prefix != b->prefix) return a->prefix < b->prefix;
    return a->ports < b->ports;
  });
  std::vector<const Binding*> ranges;
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && order[end]->protocol == order[start]->protocol &&
           order[end]->prefix == order[start]->prefix)
      ++end;
    // Single ports must be unique, ranges must nest or be disjoint.
    ranges.clear();
    for (size_t i = start; i < end; ++i) {
      if (i + 1 < end && order[i]->ports == order[i + 1]->ports)
        return fail(EEXIST, "'{}' and '{}' bind the same protocol, prefix and ports: keep one",
                    order[i]->to_string(), order[i + 1]->to_string());
      if (!order[i]->ports.is_single()) ranges.push_back(order[i]);
    }
    for (size_t i = 0; i < ranges.size(); ++i) {
      for (size_t j = i + 1; j < ranges.size(); ++j) {
        const auto& a = ranges[i]->ports;
        const auto& b = ranges[j]->ports;
        if (a.overlaps(b) && !a.contains(b) && !b.contains(a))
          return fail(EINVAL,
                      "'{}' and '{}' have port ranges that overlap without one containing the "
                      "other: split them so they nest or are disjoint",
                      ranges[i]->to_string(), ranges[j]->to_string());
      }
    }
    if (ranges.size() > STEER_RANGES_PER_PREFIX)
      return fail(E2BIG, "{} {} has {} port ranges; at most {} per protocol and prefix",
                  to_string(order[start]->protocol), order[start]->prefix.to_string(),
                  ranges.size(), STEER_RANGES_PER_PREFIX);
    start = end;
  }
  return {};
}

namespace {

// One entry of a bindings file, whatever the format: `field` reads a field as text.
using FieldReader = std::function<Result<std::string>(const char* name)>;

Result<Binding> binding_from_entry(const FieldReader& field, const std::string& where) {
  std::string words[4];
  const char* names[4] = {"label", "protocol", "prefix", "ports"};
  for (int i = 0; i < 4; ++i) {
    auto value = field(names[i]);
    if (!value) return std::unexpected(value.error());
    words[i] = std::move(*value);
  }
  auto binding = Binding::parse(words[0], words[1], words[2], words[3]);
  if (!binding) return std::unexpected(with_context(binding.error(), where));
  return binding;
}

Result<std::vector<Binding>> read_json(const std::string& path, const std::string& text) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    return fail(EINVAL, "{}: not valid JSON: {}", path, error.what());
  }
  const nlohmann::json* list = &document;
  if (document.is_object() && document.contains("bindings")) list = &document["bindings"];
  if (!list->is_array())
    return fail(EINVAL, "{}: expected {{\"bindings\": [{{\"label\": ..., \"protocol\": ..., "
                        "\"prefix\": ..., \"ports\": ...}}, ...]}}", path);
  std::vector<Binding> bindings;
  for (size_t i = 0; i < list->size(); ++i) {
    const auto& entry = (*list)[i];
    std::string where = fmt::format("{}: binding #{}", path, i + 1);
    if (!entry.is_object()) return fail(EINVAL, "{}: not an object", where);
    auto field = [&](const char* name) -> Result<std::string> {
      if (!entry.contains(name)) return fail(EINVAL, "{}: missing \"{}\"", where, name);
      const auto& value = entry[name];
      if (value.is_string()) return value.get<std::string>();
      if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
      return fail(EINVAL, "{}: \"{}\" must be a string", where, name);
    };
    auto binding = binding_from_entry(field, where);
    if (!binding) return std::unexpected(binding.error());
    bindings.push_back(std::move(*binding));
  }
  return bindings;
}

Result<std::vector<Binding>> read_toml(const std::string& path, const std::string& text) {
  toml::table document;
  try {
    document = toml::parse(text, path);
  } catch (const toml::parse_error& error) {
    return fail(EINVAL, "{}:{}: not valid TOML: {}", path, error.source().begin.line,
                error.description());
  }
  std::vector<Binding> bindings;
  auto* list = document["binding"].as_array();
  if (list == nullptr) {
    if (document.empty()) return bindings;  // an empty file: no bindings
    return fail(EINVAL, "{}: expected [[binding]] tables with label, protocol, prefix, ports",
                path);
  }
  for (size_t i = 0; i < list->size(); ++i) {
    auto* entry = list->get(i)->as_table();
    std::string where = fmt::format("{}:{}: binding #{}", path,
                                    list->get(i)->source().begin.line, i + 1);
    if (entry == nullptr) return fail(EINVAL, "{}: not a table", where);
    auto field = [&](const char* name) -> Result<std::string> {
      auto node = (*entry)[name];
      if (auto value = node.value<std::string>()) return *value;
      if (auto number = node.value<int64_t>(); number && *number >= 0) return std::to_string(*number);
      if (!node) return fail(EINVAL, "{}: missing {}", where, name);
      return fail(EINVAL, "{}: {} must be a string", where, name);
    };
    auto binding = binding_from_entry(field, where);
    if (!binding) return std::unexpected(binding.error());
    bindings.push_back(std::move(*binding));
  }
  return bindings;
}

}  // namespace

Result<std::vector<Binding>> read_bindings_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return fail_errno(errno ? errno : ENOENT, "read bindings file " + path);
  std::stringstream content;
  content << file.rdbuf();
  std::string text = content.str();
  bool json = path.ends_with(".json");
  if (!path.ends_with(".toml") && !json) {
    auto first = text.find_first_not_of(" \t\r\n");
    json = first != std::string::npos && (text[first] == '{' || text[first] == '[');
  }
  // The set as a whole (duplicates, overlapping ranges) is checked where it is applied,
  // Dispatcher::replace_bindings: once, not twice (it is the slow part of a 1M-binding file).
  return json ? read_json(path, text) : read_toml(path, text);
}

}  // namespace steer::core
