#include "core/policy.h"

#include <algorithm>
#include <numeric>

#include "core/maglev.h"

namespace steer::core {

namespace {

struct Named {
  steer_policy policy;
  const char* name;
};
constexpr Named kPolicies[] = {
    {STEER_POLICY_HASH, "hash"},
    {STEER_POLICY_ROUND_ROBIN, "round-robin"},
    {STEER_POLICY_RANDOM, "random"},
    {STEER_POLICY_FIRST, "first"},
    {STEER_POLICY_LEAST_QUEUE, "least-queue"},
    {STEER_POLICY_LEAST_CONN, "least-conn"},
};

}  // namespace

std::optional<steer_policy> parse_policy(std::string_view name) {
  for (const auto& entry : kPolicies)
    if (name == entry.name) return entry.policy;
  return std::nullopt;
}

const char* policy_name(uint32_t policy) {
  for (const auto& entry : kPolicies)
    if (policy == entry.policy) return entry.name;
  return "unknown";
}

std::string_view policy_names() { return "hash, round-robin, random, first, least-queue, least-conn"; }

std::vector<uint8_t> smooth_weighted_sequence(const std::vector<PolicyMember>& members,
                                              size_t max_length) {
  std::vector<PolicyMember> weighted;
  for (const auto& member : members)
    if (member.weight > 0) weighted.push_back(member);
  if (weighted.empty() || max_length == 0) return {};
  std::sort(weighted.begin(), weighted.end(),
            [](const PolicyMember& a, const PolicyMember& b) { return a.slot < b.slot; });
  // The shortest sequence with the same shares: weights over their gcd.
  uint64_t divisor = 0;
  for (const auto& member : weighted) divisor = std::gcd(divisor, uint64_t{member.weight});
  std::vector<uint64_t> weights;
  uint64_t total = 0;
  for (const auto& member : weighted) {
    weights.push_back(member.weight / divisor);
    total += weights.back();
  }
  if (total > max_length) {
    // Too long for the table: shares rounded down, each member keeps at least one entry.
    uint64_t budget = max_length > weighted.size() ? max_length - weighted.size() : 0;
    uint64_t scaled_total = 0;
    for (auto& weight : weights) {
      weight = 1 + weight * budget / total;
      scaled_total += weight;
    }
    total = scaled_total;
  }
  std::vector<uint8_t> sequence;
  sequence.reserve(total);
  std::vector<int64_t> credit(weights.size(), 0);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      credit[i] += static_cast<int64_t>(weights[i]);
      if (credit[i] > credit[best]) best = i;
    }
    credit[best] -= static_cast<int64_t>(total);
    sequence.push_back(weighted[best].slot);
  }
  return sequence;
}

PolicyTable build_policy_table(steer_policy policy, const std::vector<PolicyMember>& active,
                               const std::vector<PolicyMember>& standby) {
  PolicyTable table;
  table.entries.assign(STEER_MAGLEV_SIZE, STEER_NO_SLOT);
  std::vector<uint8_t> entries;
  switch (policy) {
    case STEER_POLICY_ROUND_ROBIN:
    case STEER_POLICY_RANDOM:
      entries = smooth_weighted_sequence(active, STEER_MAGLEV_SIZE);
      break;
    case STEER_POLICY_FIRST: {
      auto by_priority = [](std::vector<PolicyMember> members) {
        std::sort(members.begin(), members.end(), [](const PolicyMember& a, const PolicyMember& b) {
          return a.priority != b.priority ? a.priority < b.priority : a.slot < b.slot;
        });
        return members;
      };
      for (const auto& member : by_priority(active)) entries.push_back(member.slot);
      for (const auto& member : by_priority(standby)) entries.push_back(member.slot);
      break;
    }
    case STEER_POLICY_HASH:
    case STEER_POLICY_LEAST_QUEUE:
    case STEER_POLICY_LEAST_CONN:
    default: {
      std::vector<MaglevBackend> backends;
      for (const auto& member : active) backends.push_back({member.slot, member.weight});
      table.entries = build_maglev_table(backends, STEER_MAGLEV_SIZE, STEER_NO_SLOT);
      table.length = STEER_MAGLEV_SIZE;
      return table;
    }
  }
  std::copy(entries.begin(), entries.end(), table.entries.begin());
  table.length = static_cast<uint16_t>(entries.size());
  return table;
}

}  // namespace steer::core
