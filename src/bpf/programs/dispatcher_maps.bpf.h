/* The dispatcher's maps: THE list of steer's pinned state. Userspace pins, opens, checks and
 * upgrades exactly the maps of this object (src/core/state.cpp walks them), so a map added
 * here is created and pinned by `steer upgrade` on state of an older release. Their layout is
 * in src/abi/steer_abi.h; their pins and roles in docs/architecture.md. Sizes that depend on
 * the deployment (the binding hashes) are set by userspace before load. Maps only userspace
 * uses live here too, so that the list stays one list. */
#ifndef STEER_DISPATCHER_MAPS_BPF_H
#define STEER_DISPATCHER_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi/steer_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct steer_control);
} control SEC(".maps");

#define STEER_BINDING_HASH(name, value_type)     \
  struct {                                       \
    __uint(type, BPF_MAP_TYPE_HASH);             \
    __uint(map_flags, BPF_F_NO_PREALLOC);        \
    __uint(max_entries, 1 << 20);                \
    __type(key, struct steer_binding_key);       \
    __type(value, value_type);                   \
  } name SEC(".maps")

STEER_BINDING_HASH(port_bindings_0, struct steer_port_binding);
STEER_BINDING_HASH(port_bindings_1, struct steer_port_binding);
STEER_BINDING_HASH(range_bindings_0, struct steer_range_binding);
STEER_BINDING_HASH(range_bindings_1, struct steer_range_binding);

/* Schema 3: the lengths to probe per (family, protocol, port), and (userspace only) the
 * single-port bindings behind each bit. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_PORT_MASK_KEYS);
  __type(key, __u32);
  __type(value, struct steer_prefix_mask);
} port_masks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 1 << 20);  /* as many as a binding hash: set by userspace */
  __type(key, struct steer_port_count_key);
  __type(value, __u32);
} port_counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_PREFIX_COUNT_KEYS);
  __type(key, __u32);
  __type(value, struct steer_prefix_count);
} prefix_counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_MAX_DESTINATIONS);
  __type(key, __u32);
  __type(value, struct steer_destination);
} destinations SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_MAX_DESTINATIONS * 2);
  __type(key, __u32);
  __type(value, struct steer_maglev_table);
} maglev SEC(".maps");

/* Schema 2: the pool the program sees, beside each table, and the round-robin cursors. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_MAX_DESTINATIONS * 2);
  __type(key, __u32);
  __type(value, struct steer_pool);
} pools SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_MAX_DESTINATIONS);
  __type(key, __u32);
  __type(value, struct steer_pool_cursor);
} pool_cursors SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, STEER_SOCKET_KEYS);
  __type(key, __u32);
  __type(value, __u64);
} sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, STEER_SOCKET_KEYS);
  __type(key, __u32);
  __type(value, struct steer_slot);
} slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STEER_MAX_DESTINATIONS);
  __type(key, __u32);
  __type(value, struct steer_destination_counters);
} destination_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_SOCKET_KEYS);
  __type(key, __u32);
  __type(value, struct steer_socket_counters);
} socket_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, STEER_MAX_LABELS);
  __type(key, struct steer_label_name);
  __type(value, struct steer_label_id);
} labels SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_MAX_LABELS);
  __type(key, __u32);
  __type(value, struct steer_label_name);
} label_names SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct steer_meta);
} meta SEC(".maps");

/* Userspace only (schema 2). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, STEER_MAX_DESTINATIONS);
  __type(key, struct steer_destination_key);
  __type(value, struct steer_destination_ref);
} destination_index SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct steer_journal);
} journal SEC(".maps");

/* Reuseport groups steer's sk_reuseport program serves (schema 2): found from md->sk. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, STEER_MAX_GROUPS);
  __type(key, struct steer_group_key);
  __type(value, struct steer_group);
} reuseport_groups SEC(".maps");

/* Established connections (schema 2): the listeners' tags, cloned into their children;
 * the count per pool slot (least-conn, status); the connections themselves, in a SOCKHASH
 * of their own and described for `steer conns`. Written by conns.bpf.c. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
  __type(key, int);
  __type(value, struct steer_listener_tag);
} listener_tags SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_SOCKET_KEYS);
  __type(key, __u32);
  __type(value, struct steer_socket_connections);
} socket_connections SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, STEER_MAX_CONNECTIONS);
  __type(key, __u64);
  __type(value, __u64);
} established SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, STEER_MAX_CONNECTIONS);
  __type(key, __u64);
  __type(value, struct steer_connection);
} connections SEC(".maps");

/* UDP flows and the socket each one keeps (schema 2). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, STEER_UDP_FLOWS);
  __type(key, struct steer_flow_key);
  __type(value, struct steer_flow);
} udp_flows SEC(".maps");

#endif
