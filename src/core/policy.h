// Policies: how a destination picks a socket among its pool's members. Userspace builds the
// table each policy walks (docs/policies.md); the program walks it (dispatcher.bpf.c).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "abi/steer_abi.h"

namespace steer::core {

std::optional<steer_policy> parse_policy(std::string_view name);
const char* policy_name(uint32_t policy);  // "hash", ..., "unknown"
// Every policy's name, for help texts and errors: "hash, round-robin, random, first, ...".
std::string_view policy_names();

// A member as a policy sees it.
struct PolicyMember {
  uint8_t slot;
  uint32_t weight;    // 0: standby
  uint16_t priority;  // `first`: lowest first, then the slot
};

// The table of a policy and the entries of it in use.
struct PolicyTable {
  std::vector<uint8_t> entries;  // STEER_MAGLEV_SIZE of them, STEER_NO_SLOT past `length`
  uint16_t length = 0;
};

// hash: a Maglev table over the active members by weight (length: all entries).
// round-robin, random: a smooth weighted round-robin sequence over the active members, one
//   entry per unit of weight (weights divided by their greatest common divisor, and scaled
//   down when they add up to more than the table holds).
// first: the active members by priority, then the standby ones.
// least-queue: the program reads the members' queues; the hash table is its fallback.
PolicyTable build_policy_table(steer_policy policy, const std::vector<PolicyMember>& active,
                               const std::vector<PolicyMember>& standby);

// nginx's smooth weighted round-robin: each step, every member gains its weight and the one
// with the most credit is picked and pays the total. Members of equal weight alternate; a
// member of weight 2 among weight-1 ones is never picked twice in a row unless it must be.
std::vector<uint8_t> smooth_weighted_sequence(const std::vector<PolicyMember>& members,
                                              size_t max_length);

}  // namespace steer::core
