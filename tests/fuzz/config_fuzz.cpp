// Fuzz target: steerd's config parser, parse_config (src/daemon/config.h). The input is the
// text of a config file.
//
// Inputs that name a bindings file are skipped: parse_config reads the file `bindings_file`
// names (any path: /dev/..., a huge file, /proc/...), which would make the fuzzer read
// arbitrary files of this machine, slowly and differently from one machine to the next,
// instead of testing the parser. The bindings file's own parser is fuzzed by bindings_fuzz.
// The plain substring check is not enough on its own: a TOML key may be written with escapes
// ("bindings\u005ffile" = ...), so the text is also parsed as TOML first and skipped when its
// top level has that key, however it was spelled.
//
// Invariants (a violation is __builtin_trap(), a finding): an error has an errno-like code
// and a message that starts with the file's name; an accepted config holds only what
// parse_config promises (absolute paths, a control socket mode no one else may write, valid
// labels, bindings that fit together as a set).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "core/binding.h"
#include "daemon/config.h"

namespace {

constexpr const char* kName = "fuzz.toml";

bool names_a_bindings_file(std::string_view text) {
  if (text.find("bindings_file") != std::string_view::npos) return true;
  try {
    toml::table document = toml::parse(text, std::string_view(kName));
    return document.contains("bindings_file");
  } catch (const toml::parse_error&) {
    return false;  // not TOML: parse_config refuses it before looking at any key
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (names_a_bindings_file(text)) return 0;
  auto config = steer::daemon::parse_config(text, kName);
  if (!config) {
    const auto& error = config.error();
    if (error.code <= 0 || error.message.rfind(kName, 0) != 0) __builtin_trap();
    return 0;
  }
  if (config->source != kName || !config->bindings_file.empty()) __builtin_trap();
  if (config->bpffs.empty() || config->bpffs[0] != '/') __builtin_trap();
  if (config->control_socket.empty() || config->control_socket[0] != '/' ||
      config->control_socket.size() >= 108)
    __builtin_trap();
  if ((config->control_mode & ~mode_t{0777}) != 0 || (config->control_mode & 0002) != 0)
    __builtin_trap();
  for (const auto& [label, service] : config->services)
    if (label != service.label || !steer::core::validate_label(label)) __builtin_trap();
  if (!config->bindings.empty() && !config->manages_bindings) __builtin_trap();
  for (const auto& binding : config->bindings)
    if (!steer::core::validate_label(binding.label)) __builtin_trap();
  if (!steer::core::validate_binding_set(config->bindings)) __builtin_trap();
  return 0;
}
