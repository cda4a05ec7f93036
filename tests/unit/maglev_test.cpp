#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "abi/steer_abi.h"
#include "core/maglev.h"

namespace steer::core {
namespace {

constexpr uint32_t kSize = STEER_MAGLEV_SIZE;
constexpr uint8_t kEmpty = STEER_NO_SLOT;

std::vector<MaglevBackend> slots(std::initializer_list<uint8_t> ids) {
  std::vector<MaglevBackend> backends;
  for (auto id : ids) backends.push_back({id, 1});
  return backends;
}

std::map<uint8_t, int> shares(const std::vector<uint8_t>& table) {
  std::map<uint8_t, int> count;
  for (auto slot : table) count[slot]++;
  return count;
}

TEST(Maglev, EmptyPoolGivesAnEmptyTable) {
  auto table = build_maglev_table({}, kSize, kEmpty);
  ASSERT_EQ(table.size(), kSize);
  EXPECT_TRUE(std::all_of(table.begin(), table.end(), [](uint8_t s) { return s == kEmpty; }));
}

TEST(Maglev, EveryEntryIsFilledAndSharesAreEven) {
  for (int n : {1, 2, 3, 8, 64}) {
    std::vector<MaglevBackend> backends;
    for (int i = 0; i < n; ++i) backends.push_back({static_cast<uint8_t>(i), 1});
    auto count = shares(build_maglev_table(backends, kSize, kEmpty));
    EXPECT_EQ(count.count(kEmpty), 0u) << n;
    ASSERT_EQ(count.size(), static_cast<size_t>(n));
    int ideal = kSize / n;
    for (auto [slot, entries] : count) {
      // Maglev guarantees each backend floor(M/N) or ceil(M/N) entries.
      EXPECT_GE(entries, ideal) << "slot " << int(slot) << " of " << n;
      EXPECT_LE(entries, ideal + 1) << "slot " << int(slot) << " of " << n;
    }
  }
}

TEST(Maglev, SameBackendsSameTableWhateverTheOrder) {
  EXPECT_EQ(build_maglev_table(slots({4, 1, 9}), kSize, kEmpty),
            build_maglev_table(slots({9, 4, 1}), kSize, kEmpty));
}

// Adding or removing one of N backends moves about 1/N of the entries (Maglev's bound is
// loose; we check it stays well under twice the ideal).
TEST(Maglev, OneChangeMovesAboutOneNth) {
  std::vector<MaglevBackend> before;
  for (uint8_t i = 0; i < 10; ++i) before.push_back({i, 1});
  auto after = before;
  after.push_back({10, 1});
  auto a = build_maglev_table(before, kSize, kEmpty);
  auto b = build_maglev_table(after, kSize, kEmpty);
  size_t moved = 0;
  for (size_t i = 0; i < kSize; ++i) moved += a[i] != b[i];
  double fraction = double(moved) / kSize;
  EXPECT_GT(fraction, 1.0 / 11 * 0.9);
  EXPECT_LT(fraction, 2.0 / 11);
  // Removing a backend: only its entries, plus few others, change.
  auto removed = before;
  removed.erase(removed.begin() + 3);
  auto c = build_maglev_table(removed, kSize, kEmpty);
  size_t others_moved = 0;
  for (size_t i = 0; i < kSize; ++i) others_moved += (a[i] != 3 && a[i] != c[i]);
  EXPECT_LT(double(others_moved) / kSize, 0.1);
}

TEST(Maglev, WeightsShareInProportion) {
  auto count = shares(build_maglev_table({{0, 1}, {1, 3}}, kSize, kEmpty));
  EXPECT_NEAR(double(count[1]) / count[0], 3.0, 0.1);
}

}  // namespace
}  // namespace steer::core
