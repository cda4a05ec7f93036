// Sizes and offsets of every struct steer pins (src/abi/steer_abi.h). The BPF programs and
// state pinned by earlier releases depend on them: a change here is a schema change, and
// needs a migration step (src/core/migrations.cpp).
#pragma once

#include <cstddef>

#include "abi/steer_abi.h"

#define STEER_ABI_LAYOUT(type, size) static_assert(sizeof(type) == (size), #type " changed size")
#define STEER_ABI_FIELD(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), #type "." #field " moved")

STEER_ABI_LAYOUT(steer_binding_key, 24);
STEER_ABI_FIELD(steer_binding_key, prefix_len, 2);
STEER_ABI_FIELD(steer_binding_key, port, 4);
STEER_ABI_FIELD(steer_binding_key, addr, 8);
STEER_ABI_LAYOUT(steer_port_binding, 8);
STEER_ABI_LAYOUT(steer_port_range, 8);
STEER_ABI_LAYOUT(steer_range_binding, 8 + 8 * STEER_RANGES_PER_PREFIX);
STEER_ABI_FIELD(steer_range_binding, ranges, 8);
STEER_ABI_LAYOUT(steer_prefix_mask, 48);
STEER_ABI_LAYOUT(steer_control, 8 + 48 * 2 * STEER_FAMILIES * STEER_PROTOCOLS);
STEER_ABI_FIELD(steer_control, pools_epoch, 4);
STEER_ABI_FIELD(steer_control, masks, 8);
STEER_ABI_LAYOUT(steer_prefix_count, 8);
STEER_ABI_LAYOUT(steer_port_count_key, 8);
STEER_ABI_FIELD(steer_port_count_key, port, 4);
STEER_ABI_LAYOUT(steer_destination, 16);
STEER_ABI_FIELD(steer_destination, family, 4);
STEER_ABI_FIELD(steer_destination, state, 7);
STEER_ABI_FIELD(steer_destination, table_in_epoch, 8);
STEER_ABI_FIELD(steer_destination, table_policy, 10);
STEER_ABI_FIELD(steer_destination, bindings, 12);
STEER_ABI_LAYOUT(steer_destination_key, 8);
STEER_ABI_LAYOUT(steer_destination_ref, 4);
STEER_ABI_LAYOUT(steer_journal, 56);
STEER_ABI_FIELD(steer_journal, verb, 24);
STEER_ABI_LAYOUT(steer_maglev_table, STEER_MAGLEV_SIZE + 3);
STEER_ABI_FIELD(steer_maglev_table, length, STEER_MAGLEV_SIZE + 1);
STEER_ABI_LAYOUT(steer_pool, 24 + 4 * STEER_POOL_SLOTS);
STEER_ABI_FIELD(steer_pool, weights, 24);
STEER_ABI_LAYOUT(steer_pool_cursor, 8);
STEER_ABI_LAYOUT(steer_slot, 64);
STEER_ABI_FIELD(steer_slot, state, 16);
STEER_ABI_FIELD(steer_slot, priority, 18);
STEER_ABI_FIELD(steer_slot, weight, 20);
STEER_ABI_FIELD(steer_slot, generation, 24);
STEER_ABI_FIELD(steer_slot, port, 28);
STEER_ABI_FIELD(steer_slot, flags, 31);
STEER_ABI_FIELD(steer_slot, addr, 32);
STEER_ABI_FIELD(steer_slot, comm, 48);
STEER_ABI_LAYOUT(steer_destination_counters, 8 * STEER_COUNTERS);
STEER_ABI_LAYOUT(steer_socket_counters, 8);
STEER_ABI_LAYOUT(steer_label_name, STEER_LABEL_MAX + 1);
STEER_ABI_LAYOUT(steer_label_id, 4);
STEER_ABI_LAYOUT(steer_meta, 64);
STEER_ABI_FIELD(steer_meta, schema_version, 0);
STEER_ABI_FIELD(steer_meta, binding_capacity, 16);
STEER_ABI_FIELD(steer_meta, steer_version, 32);
STEER_ABI_LAYOUT(steer_audit_entry, 16);
STEER_ABI_LAYOUT(steer_group_key, 20);
STEER_ABI_FIELD(steer_group_key, port, 2);
STEER_ABI_FIELD(steer_group_key, addr, 4);
STEER_ABI_LAYOUT(steer_group, 48);
STEER_ABI_FIELD(steer_group, selected, 16);
STEER_ABI_LAYOUT(steer_group_member, 16);
STEER_ABI_LAYOUT(steer_listener_tag, 40);
STEER_ABI_LAYOUT(steer_flow_key, 40);
STEER_ABI_FIELD(steer_flow_key, local, 8);
STEER_ABI_LAYOUT(steer_flow, 16);
STEER_ABI_LAYOUT(steer_socket_connections, 16);
STEER_ABI_LAYOUT(steer_connection, 64);
STEER_ABI_FIELD(steer_connection, local, 28);
STEER_ABI_LAYOUT(steer_explain, 48);

#undef STEER_ABI_LAYOUT
#undef STEER_ABI_FIELD
