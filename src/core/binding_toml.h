// Bindings written as TOML tables ([[binding]] label, protocol, prefix, ports), for the files
// that embed them: a bindings file, and steerd's config.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

#include "core/binding.h"

namespace steer::core {

// Each table of `list` as a binding; the first bad one is reported with its number and line,
// after `name` (the file).
Result<std::vector<Binding>> bindings_from_toml(const toml::array& list, const std::string& name);
// "a string", "an integer", ... for messages.
const char* toml_type_name(const toml::node& node);

}  // namespace steer::core
