// The tables the policies walk (core/policy.cpp): exact shares, smooth order, priorities.
#include <gtest/gtest.h>

#include <map>

#include "core/policy.h"

namespace steer::core {
namespace {

std::map<uint8_t, int> shares(const std::vector<uint8_t>& sequence) {
  std::map<uint8_t, int> count;
  for (uint8_t slot : sequence) count[slot] += 1;
  return count;
}

TEST(Policy, NamesRoundTrip) {
  for (auto policy : {STEER_POLICY_HASH, STEER_POLICY_ROUND_ROBIN, STEER_POLICY_RANDOM,
                      STEER_POLICY_FIRST, STEER_POLICY_LEAST_QUEUE})
    EXPECT_EQ(parse_policy(policy_name(policy)), policy);
  EXPECT_FALSE(parse_policy("fastest"));
  EXPECT_STREQ(policy_name(99), "unknown");
}

TEST(Policy, EqualWeightsMakeOneEntryEach) {
  auto sequence = smooth_weighted_sequence({{3, 5, 0}, {1, 5, 0}, {7, 5, 0}}, STEER_MAGLEV_SIZE);
  EXPECT_EQ(sequence, (std::vector<uint8_t>{1, 3, 7}));
}

TEST(Policy, WeightsAreSharedExactlyAndSmoothly) {
  auto sequence = smooth_weighted_sequence({{0, 4, 0}, {1, 2, 0}, {2, 2, 0}}, STEER_MAGLEV_SIZE);
  EXPECT_EQ(sequence.size(), 4u) << "weights over their gcd: 2, 1, 1";
  EXPECT_EQ(shares(sequence), (std::map<uint8_t, int>{{0, 2}, {1, 1}, {2, 1}}));
  for (size_t i = 0; i + 1 < sequence.size(); ++i)
    EXPECT_FALSE(sequence[i] == 0 && sequence[i + 1] == 0) << "weight 2 never in a burst here";
}

TEST(Policy, LongSequencesAreScaledAndEveryMemberKeepsAnEntry) {
  std::vector<PolicyMember> members{{0, 1000, 0}, {1, 1, 0}, {2, 999, 0}};
  auto sequence = smooth_weighted_sequence(members, STEER_MAGLEV_SIZE);
  EXPECT_LE(sequence.size(), size_t{STEER_MAGLEV_SIZE});
  auto count = shares(sequence);
  EXPECT_GE(count[1], 1);
  EXPECT_NEAR(double(count[0]) / count[2], 1000.0 / 999, 0.02);
}

TEST(Policy, ZeroWeightsAndNoMembersMakeNoEntries) {
  EXPECT_TRUE(smooth_weighted_sequence({{0, 0, 0}}, STEER_MAGLEV_SIZE).empty());
  auto table = build_policy_table(STEER_POLICY_ROUND_ROBIN, {}, {});
  EXPECT_EQ(table.length, 0);
  EXPECT_EQ(table.entries.size(), size_t{STEER_MAGLEV_SIZE});
  EXPECT_EQ(table.entries[0], STEER_NO_SLOT);
}

TEST(Policy, FirstOrdersByPriorityThenStandby) {
  auto table = build_policy_table(STEER_POLICY_FIRST, {{5, 1, 3}, {9, 2, 1}, {2, 1, 3}},
                                  {{4, 0, 0}});
  EXPECT_EQ(table.length, 4);
  EXPECT_EQ(std::vector<uint8_t>(table.entries.begin(), table.entries.begin() + 4),
            (std::vector<uint8_t>{9, 2, 5, 4}));
}

TEST(Policy, HashUsesTheWholeTableForActiveMembersOnly) {
  auto table = build_policy_table(STEER_POLICY_HASH, {{1, 1, 0}, {2, 1, 0}}, {{3, 0, 0}});
  EXPECT_EQ(table.length, STEER_MAGLEV_SIZE);
  auto count = shares(table.entries);
  EXPECT_EQ(count.count(3), 0u) << "a standby is reached by the fallback, not the table";
  EXPECT_EQ(count[1] + count[2], STEER_MAGLEV_SIZE);
}

}  // namespace
}  // namespace steer::core
