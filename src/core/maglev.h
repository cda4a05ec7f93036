// Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table in which each pool
// slot owns about 1/N of the entries, and adding or removing one slot moves about 1/N of them.
#pragma once

#include <cstdint>
#include <vector>

namespace steer::core {

struct MaglevBackend {
  uint8_t slot;        // the pool slot (also the backend's identity: stable across restarts)
  uint32_t weight = 1; // entries are shared in proportion to weight
};

// A table of `size` entries (size must be prime), each a slot, or `empty` when there are no
// backends. Deterministic: the same backends give the same table.
std::vector<uint8_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size,
                                        uint8_t empty);

}  // namespace steer::core
