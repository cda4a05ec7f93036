#include "core/binding.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <optional>
#include <type_traits>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "core/binding_fast.h"
#include "core/binding_toml.h"

#include "base/fd.h"

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
  if (text.find('\0') != std::string_view::npos)
    return fail(EINVAL, "a prefix holds a NUL byte: write it as text such as 192.0.2.0/24");
  auto slash = text.find('/');
  // On the stack: no address is longer (a file of 1M bindings parses 1M of them).
  char address[INET6_ADDRSTRLEN + 1] = {};
  std::string_view written = text.substr(0, slash);
  bool fits = written.size() < sizeof(address);
  if (fits) std::memcpy(address, written.data(), written.size());
  if (fits && ::inet_pton(AF_INET, address, prefix.bytes.data()) == 1) {
    prefix.family = AF_INET;
  } else if (fits && ::inet_pton(AF_INET6, address, prefix.bytes.data()) == 1) {
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
  STEER_TRY(validate_label(label));
  auto parsed_protocol = STEER_TRY(parse_protocol(protocol));
  auto parsed_prefix = STEER_TRY(Prefix::parse(prefix));
  auto parsed_ports = STEER_TRY(PortRange::parse(ports));
  return Binding{std::string(label), parsed_protocol, parsed_prefix, parsed_ports};
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
  // ports are next to each other. O(n log n) over small flat keys (comparing through pointers
  // to the bindings took most of a second for 1M). Ties go by position, so messages name the
  // two bindings in file order.
  struct Key {
    uint32_t group;      // protocol, family
    uint64_t high, low;  // the address, in network order
    uint32_t length;
    uint16_t first, last;
    uint32_t index;
    auto operator<=>(const Key&) const = default;  // in the order of the members
    bool same_prefix(const Key& other) const {
      return group == other.group && high == other.high && low == other.low &&
             length == other.length;
    }
  };
  auto big_endian = [](const uint8_t* bytes) {
    uint64_t word = 0;
    for (int i = 0; i < 8; ++i) word = (word << 8) | bytes[i];
    return word;
  };
  std::vector<Key> order(bindings.size());
  for (size_t i = 0; i < bindings.size(); ++i) {
    const auto& b = bindings[i];
    order[i] = {(uint32_t(b.protocol) << 16) | uint32_t(b.prefix.family),
                big_endian(b.prefix.bytes.data()), big_endian(b.prefix.bytes.data() + 8),
                b.prefix.length, b.ports.first, b.ports.last, static_cast<uint32_t>(i)};
  }
  std::sort(order.begin(), order.end());
  auto binding = [&](size_t at) -> const Binding& { return bindings[order[at].index]; };
  std::vector<size_t> ranges;
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && order[end].same_prefix(order[start])) ++end;
    // Single ports must be unique, ranges must nest or be disjoint.
    ranges.clear();
    for (size_t i = start; i < end; ++i) {
      if (i + 1 < end && order[i].first == order[i + 1].first && order[i].last == order[i + 1].last)
        return fail(EEXIST, "'{}' and '{}' bind the same protocol, prefix and ports: keep one",
                    binding(i).to_string(), binding(i + 1).to_string());
      if (order[i].first != order[i].last) ranges.push_back(i);
    }
    for (size_t i = 0; i < ranges.size(); ++i) {
      for (size_t j = i + 1; j < ranges.size(); ++j) {
        const auto& a = binding(ranges[i]).ports;
        const auto& b = binding(ranges[j]).ports;
        if (a.overlaps(b) && !a.contains(b) && !b.contains(a))
          return fail(EINVAL,
                      "'{}' and '{}' have port ranges that overlap without one containing the "
                      "other: split them so they nest or are disjoint",
                      binding(ranges[i]).to_string(), binding(ranges[j]).to_string());
      }
    }
    if (ranges.size() > STEER_RANGES_PER_PREFIX)
      return fail(E2BIG, "{} {} has {} port ranges; at most {} per protocol and prefix",
                  to_string(binding(start).protocol), binding(start).prefix.to_string(),
                  ranges.size(), STEER_RANGES_PER_PREFIX);
    start = end;
  }
  return {};
}

namespace {

// ---- bindings files ----------------------------------------------------------------------

using fast::field_index;
using fast::kFields;
using fast::kPorts;
constexpr const char* kPortsRule =
    "an integer 0..65535 (0: every port) or a string such as \"80\", \"8000-8999\" or \"0\"";

// An entry's fields as text, whatever the format: ports written as an integer become "80".
using Fields = std::array<std::optional<std::string>, 4>;

Result<Binding> binding_from_fields(const Fields& fields, const std::string& where,
                                    const char* quote) {
  for (size_t i = 0; i < fields.size(); ++i)
    if (!fields[i]) return fail(EINVAL, "{}: missing {}{}{}", where, quote, kFields[i], quote);
  auto binding = Binding::parse(*fields[0], *fields[1], *fields[2], *fields[3]);
  if (!binding) return std::unexpected(with_context(binding.error(), where));
  return binding;
}

std::string size_text(size_t bytes) {
  if (bytes % (1 << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{} bytes", bytes);
}

// ---- TOML

}  // namespace

const char* toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

namespace {

Result<std::vector<Binding>> read_toml(std::string_view text, const std::string& name,
                                       const std::string& format_hint) {
  toml::table document;
  try {
    document = toml::parse(text, name);
  } catch (const toml::parse_error& error) {
    return fail(EINVAL, "{}:{}: not valid TOML: {}{}", name, error.source().begin.line,
                error.description(), format_hint);
  }
  const toml::array* list = nullptr;
  for (auto&& [key, node] : document) {
    if (key.str() != "binding")
      return fail(EINVAL, "{}:{}: unknown key '{}': a bindings file holds only [[binding]] "
                          "tables (label, protocol, prefix, ports)",
                  name, key.source().begin.line, key.str());
    list = node.as_array();
    if (list == nullptr)
      return fail(EINVAL, "{}:{}: 'binding' is {}: write each binding as a [[binding]] table",
                  name, key.source().begin.line, toml_type_name(node));
  }
  if (list == nullptr) return std::vector<Binding>{};  // an empty file, or comments
  return bindings_from_toml(*list, name);
}

}  // namespace

Result<std::vector<Binding>> bindings_from_toml(const toml::array& list, const std::string& name) {
  std::vector<Binding> bindings;
  bindings.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const toml::node& item = *list.get(i);
    std::string where = fmt::format("{}:{}: binding #{}", name, item.source().begin.line, i + 1);
    const toml::table* entry = item.as_table();
    if (entry == nullptr)
      return fail(EINVAL, "{}: is {}, not a table with label, protocol, prefix and ports", where,
                  toml_type_name(item));
    Fields fields;
    for (auto&& [key, value] : *entry) {
      std::string at = fmt::format("{}:{}: binding #{}", name, key.source().begin.line, i + 1);
      int index = field_index(key.str());
      if (index < 0)
        return fail(EINVAL, "{}: unknown key '{}': a binding has label, protocol, prefix and "
                            "ports", at, key.str());
      if (const auto* string = value.as_string()) {
        fields[index] = string->get();
      } else if (index == kPorts && value.is_integer()) {
        int64_t port = value.as_integer()->get();
        if (port < 0 || port > 65535)
          return fail(EINVAL, "{}: ports = {} is out of range: ports is {}", at, port, kPortsRule);
        fields[index] = std::to_string(port);
      } else if (index == kPorts) {
        return fail(EINVAL, "{}: ports is {}: it must be {}", at, toml_type_name(value), kPortsRule);
      } else {
        return fail(EINVAL, "{}: {} is {}: it must be a string", at, key.str(),
                    toml_type_name(value));
      }
    }
    bindings.push_back(STEER_TRY(binding_from_fields(fields, where, "")));
  }
  return bindings;
}

namespace {

// ---- JSON, read as a stream of events: no document tree (a 1M-binding file would take GBs),
// and each event knows its line, so every error can say where.

// A pointer into the text that counts the newlines it steps over: the JSON lexer reads through
// it one character at a time, so at each event the count is the line of the token just read.
class LineCountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  LineCountingIterator(const char* at, size_t* newlines) : at_(at), newlines_(newlines) {}
  reference operator*() const { return *at_; }
  LineCountingIterator& operator++() {
    if (*at_ == '\n') ++*newlines_;
    ++at_;
    return *this;
  }
  LineCountingIterator operator++(int) {
    auto before = *this;
    ++*this;
    return before;
  }
  bool operator==(const LineCountingIterator& other) const { return at_ == other.at_; }

 private:
  const char* at_;
  size_t* newlines_;
};

// {"bindings": [{"label": ..., "protocol": ..., "prefix": ..., "ports": ...}, ...]}, nothing
// else: the depth says where an event is (1: the top object, 2: the list, 3: an entry).
class JsonBindingsReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  JsonBindingsReader(const std::string& name, const size_t& newlines)
      : name_(name), newlines_(newlines) {}

  std::vector<Binding> bindings;
  std::optional<Error> error;
  bool syntax_error = false;  // as opposed to a file that is JSON but not a bindings file

  bool null() override { return value("null"); }
  bool boolean(bool) override { return value("a boolean"); }
  bool number_integer(number_integer_t number) override { return port(number); }
  bool number_unsigned(number_unsigned_t number) override { return port(number); }
  bool number_float(number_float_t, const string_t&) override {
    return value("a number with a fraction or exponent");
  }
  bool string(string_t& text) override {
    if (depth_ != 3) return value("a string");
    fields_[current_] = std::move(text);
    return true;
  }
  bool binary(binary_t&) override { return value("binary"); }

  bool start_object(std::size_t) override {
    if (depth_ == 0 || depth_ == 2) {
      if (depth_ == 2) {
        ++entry_;
        entry_line_ = line();
        fields_ = {};
        field_lines_ = {};
      }
      ++depth_;
      return true;
    }
    return value("an object");
  }
  bool start_array(std::size_t) override {
    if (depth_ == 1) {
      ++depth_;
      return true;
    }
    if (depth_ == 0)
      return refuse("{}:{}: the top level is a list: a JSON bindings file is "
                    "{{\"bindings\": [...]}}", name_, line());
    return value("an array");
  }
  bool key(string_t& key) override {
    if (depth_ == 1) {
      if (key != "bindings")
        return refuse("{}:{}: unknown key \"{}\": the top level has only \"bindings\"", name_,
                      line(), key);
      if (bindings_line_)
        return refuse("{}:{}: duplicate key \"bindings\" (first on line {}): keep one", name_,
                      line(), bindings_line_);
      bindings_line_ = line();
      return true;
    }
    int index = field_index(key);
    if (index < 0)
      return refuse_entry(line(), "unknown key \"{}\": a binding has label, protocol, prefix "
                                  "and ports", key);
    if (field_lines_[index])
      return refuse_entry(line(), "duplicate key \"{}\" (first on line {}): keep one", key,
                          field_lines_[index]);
    current_ = static_cast<size_t>(index);
    field_lines_[index] = line();
    return true;
  }
  bool end_object() override {
    if (--depth_ != 2) return true;
    auto binding = binding_from_fields(fields_, fmt::format("{}: binding #{}", name_, entry_), "\"");
    if (!binding) {
      error = std::move(binding.error());
      error->message += fmt::format(" (line {})", entry_line_);
      return false;
    }
    bindings.push_back(std::move(*binding));
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& exception) override {
    syntax_error = true;
    return refuse("{}: not valid JSON: {}", name_, exception.what());
  }

 private:
  size_t line() const { return newlines_ + 1; }
  // "f.json: binding #2: <what> (line 7)": the entry first, as in every message about one.
  template <class... Args>
  bool refuse_entry(size_t line, fmt::format_string<Args...> format, Args&&... args) {
    return refuse("{}: binding #{}: {} (line {})", name_, entry_,
                  fmt::format(format, std::forward<Args>(args)...), line);
  }
  template <class... Args>
  bool refuse(fmt::format_string<Args...> format, Args&&... args) {
    error = Error{EINVAL, fmt::format(format, std::forward<Args>(args)...)};
    return false;
  }
  // A value where it does not belong (or of the wrong type).
  bool value(const char* what) {
    if (depth_ == 0)
      return refuse("{}: the top level is {}: a JSON bindings file is {{\"bindings\": [...]}}",
                    name_, what);
    if (depth_ == 1)
      return refuse("{}:{}: \"bindings\" is {}: it must be a list of objects", name_, line(), what);
    if (depth_ == 2) {
      ++entry_;
      return refuse_entry(line(), "is {}, not an object with label, protocol, prefix and ports",
                          what);
    }
    if (current_ == kPorts)
      return refuse_entry(line(), "\"ports\" is {}: it must be {}", what, kPortsRule);
    return refuse_entry(line(), "\"{}\" is {}: it must be a string", kFields[current_], what);
  }
  // An integer: only ports may be one, from 0 to 65535.
  template <class Integer>
  bool port(Integer number) {
    if (depth_ != 3 || current_ != kPorts) return value("a number");
    bool out_of_range = number > 65535;
    if constexpr (std::is_signed_v<Integer>) out_of_range = out_of_range || number < 0;
    if (out_of_range)
      return refuse_entry(line(), "\"ports\": {} is out of range: ports is {}", number, kPortsRule);
    fields_[current_] = std::to_string(number);
    return true;
  }

  const std::string& name_;
  const size_t& newlines_;
  int depth_ = 0;
  size_t entry_ = 0;       // the entry being read, from 1
  size_t entry_line_ = 0;
  size_t bindings_line_ = 0;
  size_t current_ = 0;     // the field whose value comes next
  Fields fields_;
  std::array<size_t, 4> field_lines_{};  // where each field was given (0: not yet)
};

Result<std::vector<Binding>> read_json(std::string_view text, const std::string& name,
                                       const std::string& format_hint) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::vector<Binding>{};
  size_t newlines = 0;
  JsonBindingsReader reader(name, newlines);
  bool parsed = nlohmann::json::sax_parse(LineCountingIterator(text.data(), &newlines),
                                          LineCountingIterator(text.data() + text.size(), &newlines),
                                          &reader);
  if (!parsed) {
    Error error = reader.error.value_or(Error{EINVAL, name + ": not valid JSON"});
    if (reader.syntax_error) error.message += format_hint;
    return std::unexpected(std::move(error));
  }
  return std::move(reader.bindings);
}

// JSON when the first thing that is neither white space nor a # comment is '{'.
bool looks_like_json(std::string_view text) {
  for (size_t at = 0; at < text.size(); ++at) {
    char c = text[at];
    if (c == '#') {
      at = text.find('\n', at);
      if (at == std::string_view::npos) return false;
    } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      return c == '{';
    }
  }
  return false;
}

// A file's text, followed by zeroed padding for the JSON reader.
struct FileText {
  std::string buffer;
  size_t size = 0;
  std::string_view text() const { return std::string_view(buffer).substr(0, size); }
};

// Reads `fd` to its end, refusing more than `max_bytes` (at most max_bytes + 1 are read).
Result<FileText> read_at_most(int fd, const std::string& name, size_t max_bytes,
                              size_t expected) {
  std::string text;
  size_t used = 0;
  // Room for the padding from the start: adding it to a full buffer would copy the file.
  text.reserve(std::min(max_bytes, expected) + 1 + fast::kJsonPadding);
  text.resize(std::min(max_bytes, expected) + 1);
  while (true) {
    if (used == text.size()) {
      if (used > max_bytes) break;
      text.resize(std::min(max_bytes + 1, std::max<size_t>(used * 2, 1 << 16)));
    }
    ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read bindings file " + name);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes)
    return fail(EFBIG, "{} has more than the {} steer reads: split it (load one part, add the "
                       "rest with steer bind) or write it more compactly",
                name, size_text(max_bytes));
  text.resize(used + fast::kJsonPadding);
  std::fill(text.begin() + static_cast<ptrdiff_t>(used), text.end(), '\0');
  return FileText{std::move(text), used};
}

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

Result<BindingsFormat> parse_bindings_format(std::string_view text) {
  if (text == "toml") return BindingsFormat::Toml;
  if (text == "json") return BindingsFormat::Json;
  return fail(EINVAL, "unknown bindings format '{}': use toml or json", text);
}

namespace fast {

Result<std::vector<Binding>> parse_bindings_full(std::string_view text, const std::string& name,
                                                 BindingsFormat format) {
  std::string hint;
  if (format == BindingsFormat::Detect) {
    bool json = looks_like_json(text);
    format = json ? BindingsFormat::Json : BindingsFormat::Toml;
    hint = json ? " (read as JSON: the first thing in it is '{'; --format toml reads it as TOML)"
                : " (read as TOML: the first thing in it is not '{'; --format json reads it as "
                  "JSON)";
  }
  // The set as a whole (duplicates, overlapping ranges) is checked where it is applied,
  // Dispatcher::replace_bindings: once, not twice (it is the slow part of a 1M-binding file).
  return format == BindingsFormat::Json ? read_json(text, name, hint) : read_toml(text, name, hint);
}

}  // namespace fast

namespace {

// The fast reader of the format first; the full parser when it declines. `readable`: bytes
// that may be read from text.data() (padding spares the JSON reader a copy).
Result<std::vector<Binding>> parse_text(std::string_view text, size_t readable,
                                        const std::string& name, BindingsFormat format) {
  bool json = format == BindingsFormat::Json ||
              (format == BindingsFormat::Detect && looks_like_json(text));
  auto quick = json ? fast::json_bindings(text, readable) : fast::toml_bindings(text);
  if (quick) return std::move(*quick);
  return fast::parse_bindings_full(text, name, format);
}

}  // namespace

Result<std::vector<Binding>> parse_bindings(std::string_view text, const std::string& name,
                                            BindingsFormat format) {
  return parse_text(text, text.size(), name, format);
}

Result<std::vector<Binding>> read_bindings_file(const std::string& path, BindingsFormat format,
                                                size_t max_bytes) {
  static constexpr const char* kOnly = "steer reads bindings from regular files or - for stdin only";
  bool stdin_file = path == "-";
  std::string name = stdin_file ? "stdin" : path;
  Fd opened;
  if (!stdin_file) {
    // O_NONBLOCK: opening a FIFO without a writer would block before fstat could refuse it.
    opened = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!opened) {
      int error = errno;
      // A unix socket cannot be opened at all (ENXIO): say what it is instead.
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return fail(EINVAL, "{} is {}: {}", path, file_type_name(st.st_mode), kOnly);
      return fail_errno(error, "read bindings file " + path);
    }
  }
  int fd = stdin_file ? STDIN_FILENO : opened.get();
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("read bindings file " + name);
  // Refused before a byte is read: a directory reads as nothing (which would remove every
  // binding), a FIFO may block forever, /dev/zero never ends. Stdin may be a pipe.
  if (!S_ISREG(st.st_mode) && (!stdin_file || S_ISDIR(st.st_mode)))
    return fail(EINVAL, "{} is {}: {}", name, file_type_name(st.st_mode), kOnly);
  size_t expected = 0;
  if (S_ISREG(st.st_mode)) {
    expected = static_cast<size_t>(st.st_size);
    if (expected > max_bytes)
      return fail(EFBIG, "{} is {} bytes, more than the {} steer reads: split it (load one "
                         "part, add the rest with steer bind) or write it more compactly",
                  name, expected, size_text(max_bytes));
  }
  auto file = STEER_TRY(read_at_most(fd, name, max_bytes, expected));
  return parse_text(file.text(), file.buffer.size(), name, format);
}

}  // namespace steer::core
