#include "core/maglev.h"

#include <algorithm>

namespace steer::core {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<uint8_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size,
                                        uint8_t empty) {
  std::vector<uint8_t> table(size, empty);
  std::vector<MaglevBackend> sorted;
  for (const auto& backend : backends)
    if (backend.weight > 0) sorted.push_back(backend);
  if (sorted.empty() || size < 2) return table;
  // Order by slot so the result does not depend on the caller's order.
  std::sort(sorted.begin(), sorted.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.slot < b.slot; });

  struct Permutation {
    uint64_t offset, skip, next;
  };
  std::vector<Permutation> permutations;
  for (const auto& backend : sorted) {
    uint64_t offset = splitmix64(backend.slot * 2 + 1) % size;
    uint64_t skip = splitmix64(backend.slot * 2 + 2) % (size - 1) + 1;
    permutations.push_back({offset, skip, 0});
  }
  uint32_t max_weight = 0;
  for (const auto& backend : sorted) max_weight = std::max(max_weight, backend.weight);

  uint32_t filled = 0;
  while (true) {
    // One round: each backend claims up to `weight` entries per `max_weight` turns.
    for (uint32_t turn = 0; turn < max_weight; ++turn) {
      for (size_t i = 0; i < sorted.size(); ++i) {
        if (turn >= sorted[i].weight) continue;
        auto& p = permutations[i];
        uint64_t entry;
        do {
          entry = (p.offset + p.next * p.skip) % size;
          ++p.next;
        } while (table[entry] != empty);
        table[entry] = sorted[i].slot;
        if (++filled == size) return table;
      }
    }
  }
}

}  // namespace steer::core
