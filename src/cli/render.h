// How core objects look to people (tables) and machines (JSON): one place for both.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/dispatcher.h"

namespace steer::cli {

nlohmann::json to_json(const core::BoundBinding& binding);
nlohmann::json to_json(const core::Destination& destination);
nlohmann::json to_json(const core::PooledSocket& socket);

std::string bindings_table(const std::vector<core::BoundBinding>& bindings);
std::string family_name(int family);  // "ipv4" / "ipv6"
// Counter names as in the JSON output: "lookups", "selected", "no_socket", ...
const char* counter_name(size_t counter);

}  // namespace steer::cli
