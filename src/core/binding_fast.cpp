#include "core/binding_fast.h"

#include <cctype>
#include <cstring>

#include <simdjson.h>

namespace steer::core::fast {

namespace {

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING);

// The fewest bytes one binding takes in either format (`{"label":"a","protocol":"tcp",
// "prefix":"::","ports":0},` is 53): a reserve from the text's size is never short, and what
// it reserves beyond the real count is never touched, so it costs no memory.
constexpr size_t kMinEntryBytes = 50;

// One entry's four fields as they appear in the text (no escapes: the text is the value).
class Entry {
 public:
  // False when the key was given already (the full parser's error).
  bool set(size_t index, std::string_view value) {
    if (given_ & (1u << index)) return false;
    given_ |= 1u << index;
    fields_[index] = value;
    return true;
  }
  bool started() const { return started_; }
  void start() {
    started_ = true;
    given_ = 0;
  }
  // Appends the binding; false when a field is missing or does not parse.
  bool add_to(std::vector<Binding>& bindings) const {
    if (given_ != (1u << kFields.size()) - 1) return false;
    auto binding = Binding::parse(fields_[0], fields_[1], fields_[2], fields_[kPorts]);
    if (!binding) return false;
    bindings.push_back(std::move(*binding));
    return true;
  }

 private:
  std::array<std::string_view, 4> fields_;
  unsigned given_ = 0;
  bool started_ = false;
};

// A port written as a number: 0..65535, no sign, no leading zero. Written back as text, it is
// itself, as the full parsers write the integers they read.
bool plain_port(std::string_view digits) {
  if (digits.empty() || digits.size() > 5 || (digits[0] == '0' && digits.size() > 1)) return false;
  uint32_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value <= 65535;
}

// String content both formats read as is: printable ASCII but for the quote and the backslash
// (an escape, a control character or UTF-8 is the full parser's to read).
bool plain_text(std::string_view text) {
  for (char c : text)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

// ---- JSON

std::string_view trim_end(std::string_view token) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' ||
                            token.back() == '\r'))
    token.remove_suffix(1);
  return token;
}

// The key when it is written plainly: compared where it is (unescaping every key into
// simdjson's string buffer would fill ~30 MB more for 1M bindings). An escaped key does not
// match: the full parser reads that file. Reading a few bytes past a short key's end stays
// inside the text or its padding.
bool json_key_is(simdjson::ondemand::field& field, std::string_view name) {
  const char* raw = field.key().raw();
  return std::memcmp(raw, name.data(), name.size()) == 0 && raw[name.size()] == '"';
}

int json_key_index(simdjson::ondemand::field& field) {
  for (size_t i = 0; i < kFields.size(); ++i)
    if (json_key_is(field, kFields[i])) return static_cast<int>(i);
  return -1;
}

// A field's value from its raw token; nothing when it is not one the fast reader takes. The
// value is read, not only looked at: simdjson checks what follows a value when the value was
// consumed, and skipping an unread one let `{"protocol": "tcp": "x", ...}, "prefix": ...`
// through (found by the differential fuzz target).
std::optional<std::string_view> json_field(simdjson::ondemand::value value, size_t index) {
  std::string_view raw = trim_end(value.raw_json_token());
  if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
    simdjson::ondemand::raw_json_string string;  // consumed without unescaping: no copy
    raw = raw.substr(1, raw.size() - 2);
    if (!value.get_raw_json_string().get(string) && plain_text(raw)) return raw;
  } else if (index == kPorts && plain_port(raw)) {
    uint64_t number = 0;
    if (!value.get_uint64().get(number)) return raw;
  }
  return std::nullopt;
}

std::optional<std::vector<Binding>> json_list(simdjson::ondemand::array list, size_t expected) {
  std::vector<Binding> bindings;
  bindings.reserve(expected);
  for (auto item : list) {
    simdjson::ondemand::object object;
    if (item.get_object().get(object)) return std::nullopt;
    Entry entry;
    for (auto result : object) {
      simdjson::ondemand::field field;
      if (std::move(result).get(field)) return std::nullopt;
      int index = json_key_index(field);
      if (index < 0) return std::nullopt;
      auto text = json_field(field.value(), static_cast<size_t>(index));
      if (!text || !entry.set(static_cast<size_t>(index), *text)) return std::nullopt;
    }
    if (!entry.add_to(bindings)) return std::nullopt;
  }
  return bindings;
}

// ---- TOML

bool toml_space(char c) { return c == ' ' || c == '\t'; }

// What may end a line after its content: white space, then nothing or a comment of tabs and
// printable ASCII.
bool toml_line_end(std::string_view rest) {
  size_t at = 0;
  while (at < rest.size() && toml_space(rest[at])) ++at;
  if (at == rest.size()) return true;
  if (rest[at] != '#') return false;
  for (char c : rest.substr(at + 1))
    if (c != '\t' && (c < 0x20 || c > 0x7e)) return false;
  return true;
}

// `key = value` below a [[binding]] header, into the entry.
bool toml_key_value(std::string_view line, Entry& entry) {
  size_t at = 0;
  while (at < line.size() && (std::isalnum(static_cast<unsigned char>(line[at])) ||
                              line[at] == '_' || line[at] == '-'))
    ++at;
  int index = field_index(line.substr(0, at));
  if (index < 0 || !entry.started()) return false;
  while (at < line.size() && toml_space(line[at])) ++at;
  if (at == line.size() || line[at] != '=') return false;
  ++at;
  while (at < line.size() && toml_space(line[at])) ++at;
  std::string_view value;
  if (at < line.size() && line[at] == '"') {
    size_t close = line.find('"', at + 1);
    if (close == std::string_view::npos) return false;
    value = line.substr(at + 1, close - at - 1);
    if (!plain_text(value)) return false;
    at = close + 1;
  } else {
    size_t start = at;
    while (at < line.size() && line[at] >= '0' && line[at] <= '9') ++at;
    value = line.substr(start, at - start);
    if (static_cast<size_t>(index) != kPorts || !plain_port(value)) return false;
  }
  return toml_line_end(line.substr(at)) && entry.set(static_cast<size_t>(index), value);
}

}  // namespace

std::optional<std::vector<Binding>> json_bindings(std::string_view text, size_t readable) {
  simdjson::padded_string copy;
  simdjson::padded_string_view view;
  if (readable >= text.size() + simdjson::SIMDJSON_PADDING) {
    view = simdjson::padded_string_view(text.data(), text.size(), readable);
  } else {
    copy = simdjson::padded_string(text);
    view = copy;
  }
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document document;
  simdjson::ondemand::object top;
  if (parser.iterate(view).get(document) || document.get_object().get(top)) return std::nullopt;
  std::optional<std::vector<Binding>> bindings;
  for (auto result : top) {
    simdjson::ondemand::field field;
    simdjson::ondemand::array list;
    if (std::move(result).get(field) || !json_key_is(field, "bindings") || bindings ||
        field.value().get_array().get(list))
      return std::nullopt;
    bindings = json_list(list, text.size() / kMinEntryBytes + 1);
    if (!bindings) return std::nullopt;
  }
  // Nothing may follow the object (simdjson stops where the object ends).
  if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) return std::nullopt;
  return bindings;
}

std::optional<std::vector<Binding>> toml_bindings(std::string_view text) {
  std::vector<Binding> bindings;
  bindings.reserve(text.size() / kMinEntryBytes + 1);
  Entry entry;
  for (size_t at = 0; at < text.size();) {
    size_t newline = text.find('\n', at);
    bool last = newline == std::string_view::npos;
    std::string_view line = text.substr(at, last ? newline : newline - at);
    at = last ? text.size() : newline + 1;
    if (!last && !line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF
    size_t start = 0;
    while (start < line.size() && toml_space(line[start])) ++start;
    line.remove_prefix(start);
    static constexpr std::string_view kHeader = "[[binding]]";
    if (line.starts_with(kHeader)) {
      if (!toml_line_end(line.substr(kHeader.size()))) return std::nullopt;
      if (entry.started() && !entry.add_to(bindings)) return std::nullopt;
      entry.start();
    } else if (!toml_line_end(line) && !toml_key_value(line, entry)) {
      return std::nullopt;
    }
  }
  if (entry.started() && !entry.add_to(bindings)) return std::nullopt;
  return bindings;
}

}  // namespace steer::core::fast
