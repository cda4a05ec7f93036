// The fast readers of bindings files (core/binding_fast.h) against the full parsers, on one
// text: parse_bindings (fast reader first) must return what the full parser returns, the same
// bindings in the same order or the same error; and a set a fast reader returns at all must
// be the full parser's. Shared by the differential fuzz target and its unit test.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "core/binding.h"
#include "core/binding_fast.h"

namespace steer::core::testing {

inline bool same_bindings(const std::vector<Binding>& a, const std::vector<Binding>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].label != b[i].label || !a[i].same_match(b[i])) return false;
  return true;
}

inline std::string describe(const Result<std::vector<Binding>>& result) {
  if (!result) return fmt::format("error {}: {}", result.error().code, result.error().message);
  std::string text = fmt::format("{} bindings", result->size());
  for (const auto& binding : *result) text += "; " + binding.to_string();
  return text;
}

// What differs between the two readings of `text`, or "" when nothing does.
inline std::string bindings_difference(std::string_view text, BindingsFormat format) {
  static const std::string kName = "diff.bindings";
  auto full = fast::parse_bindings_full(text, kName, format);
  auto chosen = parse_bindings(text, kName, format);
  bool same = full.has_value() == chosen.has_value() &&
              (full ? same_bindings(*full, *chosen)
                    : full.error().code == chosen.error().code &&
                          full.error().message == chosen.error().message);
  if (!same)
    return fmt::format("parse_bindings: {}\nfull parser: {}", describe(chosen), describe(full));
  // Each fast reader, whatever the format asked for: what it takes, its full parser takes.
  for (auto as : {BindingsFormat::Toml, BindingsFormat::Json}) {
    auto quick = as == BindingsFormat::Json ? fast::json_bindings(text) : fast::toml_bindings(text);
    if (!quick) continue;
    auto reference = fast::parse_bindings_full(text, kName, as);
    if (!reference || !same_bindings(*quick, *reference))
      return fmt::format("fast {} reader: {}\nfull parser: {}",
                         as == BindingsFormat::Json ? "JSON" : "TOML", describe(*quick),
                         describe(reference));
  }
  return "";
}

}  // namespace steer::core::testing
