// Fast readers for bindings files of the usual shape, tried before the full parsers of
// binding.cpp (nlohmann's SAX for JSON, toml++ for TOML), which build every binding through
// a per-field string and, for TOML, a document tree: seconds and a GiB for 1M bindings.
//
// A fast reader returns nothing for whatever it does not recognise, and for any error at all:
// the full parser then reads the same text, and gives the bindings or the error with its line.
// So errors are the full parser's by construction; what must hold is that a set a fast reader
// returns is the one the full parser returns (tests/fuzz/bindings_fast_fuzz.cpp and
// tests/unit/binding_fast_test.cpp compare the two).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/binding.h"

namespace steer::core::fast {

// The keys of a binding in a file, in the order of their fields (ports last).
inline constexpr std::array<std::string_view, 4> kFields{"label", "protocol", "prefix", "ports"};
inline constexpr size_t kPorts = 3;
// A key's index in kFields, or -1.
inline int field_index(std::string_view key) {
  for (size_t i = 0; i < kFields.size(); ++i)
    if (kFields[i] == key) return static_cast<int>(i);
  return -1;
}

// Bytes simdjson may read past the end of the text (SIMDJSON_PADDING, checked in the .cpp).
inline constexpr size_t kJsonPadding = 64;

// {"bindings": [{"label": "web", "protocol": "tcp", "prefix": "192.0.2.0/24", "ports": 80},
// ...]}: each entry has the four keys once, in any order, as strings without escapes or
// control characters (ports: an integer 0..65535 without sign, fraction or leading zero, or a
// string). `readable` is how many bytes from text.data() may be read: with fewer than
// text.size() + kJsonPadding the text is copied first.
std::optional<std::vector<Binding>> json_bindings(std::string_view text, size_t readable);
inline std::optional<std::vector<Binding>> json_bindings(std::string_view text) {
  return json_bindings(text, text.size());
}

// Lines of printable ASCII (tabs as white space; LF or CRLF): blank lines, # comments,
// [[binding]] headers and, below one, `label|protocol|prefix|ports = VALUE`, each key once
// per table; VALUE is a "basic string" without escapes, or for ports an integer 0..65535
// written plainly. An optional comment may end any line.
std::optional<std::vector<Binding>> toml_bindings(std::string_view text);

// The full parsers alone, as parse_bindings runs them when the fast readers decline (for the
// tests that compare both).
Result<std::vector<Binding>> parse_bindings_full(std::string_view text, const std::string& name,
                                                 BindingsFormat format);

}  // namespace steer::core::fast
