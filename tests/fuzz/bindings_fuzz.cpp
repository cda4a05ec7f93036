// Fuzz target: the bindings file parser, parse_bindings (src/core/binding.h), for TOML and
// JSON. `steer load-bindings FILE` and steerd's bindings_file read any user's file through it.
//
// Input: the first byte mod 3 picks the format (0: Detect, which covers both; 1: Toml;
// 2: Json), the rest is the file's text.
//
// Invariants (a violation is __builtin_trap(), a finding):
// - an error has an errno-like code and a message that starts with the file's name;
// - every binding accepted has a valid label, and its protocol, prefix and ports written back
//   as text (as `steer bindings` shows them) parse to the same binding;
// - the set accepted, written back as a JSON and as a TOML bindings file, parses to the same
//   bindings in the same order;
// - what Detect accepts, the format it picked (Json or Toml, given explicitly) accepts the same;
// - checking the set as a whole (validate_binding_set) does not crash, whatever its answer.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "core/binding.h"

namespace {

using steer::core::Binding;
using steer::core::BindingsFormat;

constexpr const char* kName = "fuzz.bindings";

bool same(const std::vector<Binding>& a, const std::vector<Binding>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].label != b[i].label || !a[i].same_match(b[i])) return false;
  return true;
}

std::string ports_text(const Binding& binding) {
  return binding.ports.is_all() ? "0" : binding.ports.to_string();
}

std::string as_json(const std::vector<Binding>& bindings) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& binding : bindings)
    list.push_back({{"label", binding.label},
                    {"protocol", std::string(steer::core::to_string(binding.protocol))},
                    {"prefix", binding.prefix.to_string()},
                    {"ports", ports_text(binding)}});
  return nlohmann::json{{"bindings", list}}.dump(1);
}

std::string as_toml(const std::vector<Binding>& bindings) {
  toml::array list;
  for (const auto& binding : bindings)
    list.push_back(toml::table{{"label", binding.label},
                               {"protocol", std::string(steer::core::to_string(binding.protocol))},
                               {"prefix", binding.prefix.to_string()},
                               {"ports", ports_text(binding)}});
  std::ostringstream out;
  out << toml::table{{"binding", list}};
  return out.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr BindingsFormat kFormats[] = {BindingsFormat::Detect, BindingsFormat::Toml,
                                                BindingsFormat::Json};
  BindingsFormat format = kFormats[data[0] % 3];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto bindings = steer::core::parse_bindings(text, kName, format);
  if (!bindings) {
    const auto& error = bindings.error();
    if (error.code <= 0 || error.message.rfind(kName, 0) != 0) __builtin_trap();
    return 0;
  }
  for (const auto& binding : *bindings) {
    if (!steer::core::validate_label(binding.label)) __builtin_trap();
    auto again = Binding::parse(binding.label, steer::core::to_string(binding.protocol),
                                binding.prefix.to_string(), ports_text(binding));
    if (!again || again->label != binding.label || !again->same_match(binding)) __builtin_trap();
  }
  auto from_json = steer::core::parse_bindings(as_json(*bindings), kName, BindingsFormat::Json);
  if (!from_json || !same(*from_json, *bindings)) __builtin_trap();
  auto from_toml = steer::core::parse_bindings(as_toml(*bindings), kName, BindingsFormat::Toml);
  if (!from_toml || !same(*from_toml, *bindings)) __builtin_trap();
  if (format == BindingsFormat::Detect) {
    auto as_json_file = steer::core::parse_bindings(text, kName, BindingsFormat::Json);
    auto as_toml_file = steer::core::parse_bindings(text, kName, BindingsFormat::Toml);
    if (!(as_json_file && same(*as_json_file, *bindings)) &&
        !(as_toml_file && same(*as_toml_file, *bindings)))
      __builtin_trap();
  }
  steer::ignore_result(steer::core::validate_binding_set(*bindings),
                             "only that it returns matters here");
  return 0;
}
