// Explicit steps that bring pinned state from one schema to the next (`steer upgrade`). Each
// step must be safe to run again after a kill at any point (the next upgrade reruns it), and
// the state must keep steering while it runs. Maps a release only adds need no step: upgrade
// creates and pins them before the steps run.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"

namespace steer::core {

class Dispatcher;

struct Migration {
  uint32_t from;     // the schema it reads; it leaves schema from + 1
  const char* what;  // one line for the upgrade's report
  Result<void> (*run)(Dispatcher& dispatcher);
};

// The steps from `schema` to this release's, in order.
std::vector<Migration> migrations_from(uint32_t schema);

}  // namespace steer::core
