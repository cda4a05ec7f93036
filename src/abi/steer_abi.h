/* Plain C types shared by steer's BPF programs and its C++: every map key and value, and
 * every key formula. Fixed-width fields only, no pointers, no bool. The C++ side
 * static_asserts the sizes and offsets of every pinned struct (src/core/abi_checks.h);
 * never copy a struct or a formula from here by hand. */
#ifndef STEER_ABI_H
#define STEER_ABI_H

#include <linux/types.h>

/* ---- The dispatcher (src/bpf/programs/dispatcher.bpf.c) -----------------------------
 * Pinned under <bpffs>/steer/<netns inode>/, one file per map (docs/architecture.md). */

/* The layout of the pinned state. A release that changes it adds a migration step
 * (src/core/migrations.cpp) from the previous schema; `steer upgrade` runs it. */
#define STEER_SCHEMA_VERSION 3

#define STEER_MAX_DESTINATIONS 4096 /* (label, family, protocol) triples */
#define STEER_MAX_LABELS 4096
#define STEER_LABEL_MAX 255          /* bytes, no NUL */
#define STEER_POOL_SLOTS 64          /* sockets per destination */
#define STEER_MAGLEV_SIZE 1021       /* entries of a destination's consistent-hash table (prime) */
#define STEER_MAGLEV_PROBES 8        /* table neighbours tried when a chosen socket is gone */
#define STEER_RANGES_PER_PREFIX 16   /* port ranges (incl. all-ports) on one protocol+prefix */
#define STEER_NO_SLOT 0xff           /* a Maglev entry of a destination with no socket */
#define STEER_SOCKET_KEYS (STEER_MAX_DESTINATIONS * STEER_POOL_SLOTS)

/* Index of the bitmask words: [family][protocol]. */
enum steer_family_index { STEER_FAMILY_V4 = 0, STEER_FAMILY_V6 = 1, STEER_FAMILIES = 2 };
enum steer_protocol_index { STEER_PROTO_TCP = 0, STEER_PROTO_UDP = 1, STEER_PROTOCOLS = 2 };

/* A binding's key in the binding hashes: protocol, family, prefix length, masked address,
 * and the port (host order; 0 in the range hash, whose value lists the ranges). */
struct steer_binding_key {
  __u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 family;     /* AF_INET or AF_INET6 */
  __u8 prefix_len; /* 0..32 or 0..128 */
  __u8 pad;
  __u16 port;
  __u16 pad2;
  __u32 addr[4];   /* network order, host bits zero; IPv4 in addr[0] */
};

struct steer_port_binding {
  __u32 destination;
  __u32 pad;
};

/* A port range bound on one protocol+prefix; all ports is 1..65535. */
struct steer_port_range {
  __u16 first;
  __u16 last;
  __u32 destination;
};

/* Ranges of one protocol+prefix, narrowest first (so the most specific wins); ranges either
 * nest or are disjoint (steer refuses partial overlaps). */
struct steer_range_binding {
  __u32 count;
  __u32 pad;
  struct steer_port_range ranges[STEER_RANGES_PER_PREFIX];
};

/* Which prefix lengths have bindings, one bit per length (bit n = /n), per kind. A bind or
 * unbind changes one bit, so the program never reads a torn list. */
struct steer_prefix_mask {
  __u64 ports[3];  /* lengths with single-port bindings */
  __u64 ranges[3]; /* lengths with range or all-ports bindings */
};

/* The binding set: the hashes come in two copies (set 0 and set 1); `active_set` says which
 * one the program reads. `load-bindings` fills the other copy and flips: all or nothing. */
struct steer_control {
  __u32 active_set;
  __u32 pools_epoch; /* each destination names its live Maglev table per epoch parity: one
                      * update of this word switches several pools at once */
  struct steer_prefix_mask masks[2][STEER_FAMILIES][STEER_PROTOCOLS];
};

/* Schema 3: the lengths to probe, per port. The program's first read is the mask of its
 * lookup's (family, protocol, port): no bit set, no binding can match, and the lookup ends
 * there (one array read). A bit set names a length with a single-port binding on that port
 * (`ports`) or a range binding covering it (`ranges`). Not per set: while load-bindings
 * switches sets a mask is the union of both, so it never lacks a length either set uses;
 * extra bits only cost a probe. */
#define STEER_PORTS 65536
#define STEER_PORT_MASK_KEYS (STEER_PORTS * STEER_FAMILIES * STEER_PROTOCOLS)

/* How many single-port bindings of the active set have one (family, protocol, length, port),
 * so unbind knows when to clear a port mask bit. Userspace only, derived. */
struct steer_port_count_key {
  __u8 family_index;   /* enum steer_family_index */
  __u8 protocol_index; /* enum steer_protocol_index */
  __u8 prefix_len;
  __u8 pad;
  __u16 port;          /* host order */
  __u16 pad2;
};

/* How many bindings use each prefix length, so unbind knows when to clear a mask bit.
 * Userspace only, derived (rebuilt from the binding hashes by a repair). */
#define STEER_PREFIX_LENGTHS 129 /* /0 .. /128 */
#define STEER_PREFIX_COUNT_KEYS (2 * STEER_FAMILIES * STEER_PROTOCOLS * STEER_PREFIX_LENGTHS)
#define STEER_PREFIX_COUNT_KEYS_PER_SET (STEER_PREFIX_COUNT_KEYS / 2)
struct steer_prefix_count {
  __u32 ports;
  __u32 ranges;
};

/* How a destination picks a socket among its pool's active members (docs/policies.md). The
 * pool's table (`maglev`) holds what the policy walks: */
enum steer_policy {
  STEER_POLICY_HASH = 0,        /* a Maglev table over the 4-tuple's hash, by weight */
  STEER_POLICY_ROUND_ROBIN = 1, /* a smooth weighted round-robin sequence, a cursor over it */
  STEER_POLICY_RANDOM = 2,      /* the same sequence, a random entry */
  STEER_POLICY_FIRST = 3,       /* the active members by priority: the first usable one */
  STEER_POLICY_LEAST_QUEUE = 4, /* the active member with the shortest queue (TCP: accept
                                 * queue, UDP: receive queue) by weight; its table is the
                                 * hash one, for when that member fails */
  STEER_POLICY_LEAST_CONN = 5,  /* the active member with the fewest established connections
                                 * by weight, counted by the sockops program (conns.bpf.c);
                                 * its table is the hash one */
  STEER_POLICIES
};

enum steer_destination_state { STEER_DESTINATION_FREE = 0, STEER_DESTINATION_USED = 1 };

struct steer_destination {
  __u32 label_id;
  __u8 family;       /* AF_INET / AF_INET6 */
  __u8 protocol;     /* IPPROTO_TCP / IPPROTO_UDP */
  __u8 policy;       /* enum steer_policy: the one the next table is built for */
  __u8 state;        /* enum steer_destination_state */
  __u8 table_in_epoch[2]; /* its live table (0 or 1) in even and odd pool epochs
                           * (steer_live_table); the two agree except while a change of
                           * pools is being switched in */
  __u8 table_policy[2];   /* the policy each of its two tables was built for: it switches
                           * with the table (`policy` above is the one the next build takes) */
  __u32 bindings;    /* bindings of the active set that name it (derived; schema 1: 0) */
};

/* The registry's index: (label, family, protocol) -> destination id, so finding a
 * destination is one lookup. Userspace only; derived from `destinations` by a repair. */
struct steer_destination_key {
  __u32 label_id;
  __u8 family;
  __u8 protocol;
  __u16 pad;
};

struct steer_destination_ref {
  __u32 destination;
};

/* The intent record: every changing command marks the state before its first write and
 * clean after its last. A command killed in between leaves the mark, and whoever next takes
 * the lock exclusively rebuilds every derived value from its source of truth
 * (docs/architecture.md, "Recovery"). A command that changes pools passes a commit point:
 * before it, a repair undoes the pool changes under way; after it, a repair completes them. */
enum steer_journal_phase {
  STEER_JOURNAL_CLEAN = 0,
  STEER_JOURNAL_WRITING = 1,   /* a change is (or was, if its writer died) under way */
  STEER_JOURNAL_COMMITTED = 2, /* ...and passed its commit point */
};

struct steer_journal {
  __u32 phase;        /* enum steer_journal_phase */
  __u32 pid;          /* who marked it */
  __u64 started_unix;
  __u64 repairs;      /* repairs run on this state so far */
  char verb[32];      /* what was under way, for status */
};

/* A destination's table: entry -> pool slot, as its policy walks it (the policy it was
 * built for is steer_destination.table_policy). Two per destination (steer_maglev_key):
 * userspace fills the idle one, names it for the next pool epoch, and advances the epoch. */
struct steer_maglev_table {
  __u8 slots[STEER_MAGLEV_SIZE];
  __u8 pad;
  __u16 length;  /* entries in use by round-robin, random and first; hash uses them all */
};

/* A pool as the program sees it, beside each table (same key): the switch to a table
 * switches all of it, so sockets join, leave, drain and change weight several at a time,
 * all or nothing. A socket sits in the pool when its slot is a member of the live pool and
 * its record in `slots` agrees with the `sockets` SOCKMAP. Bits are by slot. */
struct steer_pool {
  __u64 members;     /* in the pool: listed */
  __u64 active;      /* members that take new connections (not draining, weight > 0) */
  __u64 standby;     /* weight 0: new connections only when no active member takes them */
  __u32 weights[STEER_POOL_SLOTS];
};

/* Per destination, not switched: the round-robin cursor (atomic adds). */
struct steer_pool_cursor {
  __u64 next;
};

/* A member's state; standby is an active member of weight 0. */
enum steer_slot_state { STEER_SLOT_EMPTY = 0, STEER_SLOT_ACTIVE = 1, STEER_SLOT_DRAINING = 2 };

/* steer_slot.flags: marks of a change under way (userspace only). */
#define STEER_SLOT_LEAVING 1 /* an unregister takes it out: done by a repair after the commit
                              * point, cleared by one before it */

/* What steer knows of the socket in a pool slot (key: steer_socket_key; the socket itself
 * sits at the same key of the sockets SOCKMAP). Userspace only. State and weight are what
 * the next switch of the pool takes: the live ones are the pool's (steer_pool). */
struct steer_slot {
  __u64 cookie;      /* SO_COOKIE when registered; 0 for an empty slot */
  __u32 pid;         /* owner */
  __u32 uid;
  __u8 state;        /* enum steer_slot_state */
  __u8 pad;
  __u16 priority;    /* the `first` policy's order, lowest first: registration order */
  __u32 weight;
  __u32 generation;
  __u16 port;        /* bound port, host order */
  __u8 family;
  __u8 flags;        /* STEER_SLOT_LEAVING */
  __u32 addr[4];     /* bound address, network order */
  char comm[16];     /* the owner's command name */
};

/* Per-destination counters (per-CPU; userspace sums them). */
enum steer_counter {
  STEER_COUNTER_LOOKUPS = 0,     /* lookups that matched a binding of this destination */
  STEER_COUNTER_SELECTED,        /* a socket was assigned */
  STEER_COUNTER_NO_SOCKET,       /* dropped: the pool has no usable socket */
  STEER_COUNTER_DEAD_SLOT,       /* the chosen slot was empty; a neighbour was used */
  STEER_COUNTER_ERR_PROTOTYPE,   /* bpf_sk_assign: protocol mismatch */
  STEER_COUNTER_ERR_AFNOSUPPORT, /* bpf_sk_assign: family mismatch */
  STEER_COUNTER_ERR_SOCKTNOSUPPORT, /* bpf_sk_assign: socket no longer listening/unconnected */
  STEER_COUNTER_ERR_OTHER,
  STEER_COUNTERS
};

struct steer_destination_counters {
  __u64 values[STEER_COUNTERS];
};

/* Per-socket counters, by pool slot key (atomic adds, not per-CPU: 256k slots). */
struct steer_socket_counters {
  __u64 selected;
};

struct steer_label_name {
  char name[STEER_LABEL_MAX + 1]; /* NUL-padded; empty = free id */
};

struct steer_label_id {
  __u32 id;
};

/* One-entry map describing the pinned state, for compatibility checks. */
struct steer_meta {
  __u32 schema_version;
  __u32 max_destinations;
  __u32 pool_slots;
  __u32 maglev_size;
  __u64 binding_capacity;  /* max_entries of each binding hash */
  __u64 created_unix;
  char steer_version[32];
};

/* What the audit program (explain build) found in one pool slot: would the kernel take
 * this socket for a lookup now? */
struct steer_audit_entry {
  __u32 present;        /* 0: the slot holds no socket */
  __s32 assign_error;   /* bpf_sk_assign's answer: 0, or -ESOCKTNOSUPPORT for a listener
                         * that was shut down, a UDP socket that connected, ... */
  __u32 state;          /* bpf_sock->state (TCP_LISTEN 10; UDP: 7 unconnected, 1 connected) */
  __u32 pad;
};

/* ---- Reuseport groups (src/bpf/programs/reuseport.bpf.c) ----------------------------
 * A group of SO_REUSEPORT sockets that steer's sk_reuseport program serves. The program
 * finds its group from the member the kernel's lookup found (md->sk): that socket's bound
 * protocol, family, address and port, which every member of a group shares. */
#define STEER_MAX_GROUPS 1024

struct steer_group_key {
  __u8 protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 family;    /* AF_INET or AF_INET6: the group's sockets' (a dual-stack socket: 6) */
  __u16 port;     /* host order */
  __u32 addr[4];  /* network order; IPv4 in addr[0]; 0 for a wildcard bind */
};

struct steer_group {
  __u32 label_id;     /* whose pools the program picks from */
  __u32 program_id;   /* the program steer attached (userspace's record) */
  __u64 attached_unix;
  __u64 selected;     /* new connections given to a member by the label's policy */
  __u64 migrated;     /* connections of a closing member moved to an active one */
  __u64 kernel_hash;  /* left to the kernel's hash: no active member of this group took it */
  __u64 refused;      /* new connections dropped: the label has no active member here */
};

/* What the group iterators (reuseport.bpf.c, iter/tcp and iter/udp) write for each socket
 * in a reuseport group: which program the kernel runs for the group. No socket option tells
 * (kernel-behaviour.md), so steer reads the kernel's own record. */
struct steer_group_member {
  __u64 cookie;
  __u32 program_id;   /* the group's sk_reuseport program; 0: the kernel's hash */
  __u32 group_id;     /* the kernel's id of the group (sock_reuseport.reuseport_id) */
};

/* ---- Established connections (src/bpf/programs/conns.bpf.c) -------------------------
 * A sockops program (`steer conns track`) counts each registered listener's established
 * connections, for least-conn, status and `steer conns`. Userspace tags each registered TCP
 * listener with socket-local storage that the kernel clones into every child it accepts
 * (BPF_F_CLONE): the child knows which pool slots accepted it. */
#define STEER_TAG_KEYS 4              /* pool slots a listener's tag names (pools it is in) */
#define STEER_MAX_CONNECTIONS 65536   /* established connections listed by `steer conns` */

struct steer_listener_tag {
  __u64 listener_cookie;
  __u32 keys[STEER_TAG_KEYS];  /* socket keys (steer_socket_key) of the listener's slots */
  __u32 count;                 /* keys in use */
  __u32 counted;               /* a child's copy: counted in its slots' connections */
  __u64 established_ns;        /* a child's copy: bpf_ktime_get_ns() when it was established */
};

struct steer_socket_connections {
  __u64 cookie;       /* the listener counted here; a slot taken by another socket restarts */
  __s64 established;  /* its children not yet closed (atomic adds) */
};

struct steer_connection {
  __u64 listener_cookie;
  __u64 established_ns;
  __u32 socket_key;    /* the first pool slot of the listener that accepted it */
  __u8 family;
  __u8 pad[3];
  __u16 local_port;    /* host order */
  __u16 remote_port;   /* host order */
  __u32 local[4];      /* network order; IPv4 in [0] */
  __u32 remote[4];
  __u32 pad2;
};

/* ---- UDP flows (dispatcher.bpf.c) ----------------------------------------------------
 * A UDP flow (4-tuple) keeps the socket that got its first datagram while it lives, even
 * after that socket is drained (a restart's old generation finishes its flows); new flows
 * follow the policy. An LRU: the least recently seen flows make room. */
#define STEER_UDP_FLOWS 65536

struct steer_flow_key {
  __u8 family;
  __u8 pad;
  __u16 local_port;   /* host order */
  __u16 remote_port;  /* host order */
  __u16 pad2;
  __u32 local[4];     /* network order; IPv4 in [0] */
  __u32 remote[4];
};

struct steer_flow {
  __u64 cookie;       /* the socket it went to: a slot taken by another socket is not it */
  __u32 destination;
  __u32 slot;
};

/* ---- Key formulas, used by the BPF C and the C++ alike --------------------------------- */

static inline __u32 steer_socket_key(__u32 destination, __u32 slot) {
  return destination * STEER_POOL_SLOTS + slot;
}

static inline __u32 steer_maglev_key(__u32 destination, __u32 table) {
  return destination * 2 + (table & 1);
}

/* Which of a destination's two Maglev tables (and member sets) is live. */
static inline __u32 steer_live_table(const struct steer_destination* destination,
                                     __u32 pools_epoch) {
  return destination->table_in_epoch[pools_epoch & 1] & 1;
}

/* Index of a (set, family, protocol) mask in steer_control.masks seen as a flat array. */
static inline __u32 steer_mask_index(__u32 set, __u32 family_index, __u32 protocol_index) {
  return ((set & 1) * STEER_FAMILIES + family_index) * STEER_PROTOCOLS + protocol_index;
}

static inline __u32 steer_port_mask_key(__u32 family_index, __u32 protocol_index, __u32 port) {
  return (((family_index & 1) * STEER_PROTOCOLS + (protocol_index & 1)) * STEER_PORTS) +
         (port & (STEER_PORTS - 1));
}

static inline __u32 steer_prefix_count_key(__u32 set, __u32 family_index, __u32 protocol_index,
                                           __u32 length) {
  return steer_mask_index(set, family_index, protocol_index) * STEER_PREFIX_LENGTHS + length;
}

/* What the explain build of the dispatcher recorded for the lookup it ran on. */
enum steer_explain_outcome {
  STEER_EXPLAIN_NO_BINDING = 0, /* SK_PASS: the kernel's normal lookup goes on */
  STEER_EXPLAIN_SELECTED = 1,
  STEER_EXPLAIN_NO_SOCKET = 2,
  STEER_EXPLAIN_ASSIGN_FAILED = 3,
};

struct steer_explain {
  __u32 outcome;          /* enum steer_explain_outcome */
  __u32 destination;
  __u8 prefix_len;
  __u8 matched_range;     /* 0: a single-port binding; 1: a range (or all ports) */
  __u16 range_first;
  __u16 range_last;
  __u8 flow;              /* 1: a UDP flow's socket, kept from its first datagram */
  __u8 flow_pad;
  __u32 maglev_entry;
  __u32 slot;
  __s32 assign_error;
  __u64 cookie;           /* the assigned socket */
  __u32 hash;
  __u32 probes;           /* Maglev neighbours tried */
};

/* ---- Probe programs (src/bpf/programs/probe_*.bpf.c) --------------------------------
 * Small programs that `steer doctor` and the conformance suite load to exercise one
 * kernel behaviour at a time. Each reads a config from a one-entry array and writes what
 * the helpers returned to a result array, so userspace sees the kernel's own answers. */

/* Which socket map a probe program reads from. */
enum steer_probe_map_kind {
  STEER_PROBE_SOCKMAP = 0,
  STEER_PROBE_SOCKHASH = 1,
};

/* What the sk_lookup probe does with a lookup. */
enum steer_probe_lookup_action {
  STEER_PROBE_LOOKUP_PASS = 0,   /* SK_PASS without selecting a socket */
  STEER_PROBE_LOOKUP_DROP = 1,   /* SK_DROP without selecting a socket */
  STEER_PROBE_LOOKUP_ASSIGN = 2, /* assign the socket at `key`, then return `verdict` */
};

#define STEER_PROBE_MAP_ENTRIES 16

struct steer_probe_lookup_config {
  __u32 action;        /* enum steer_probe_lookup_action */
  __u32 map_kind;      /* enum steer_probe_map_kind */
  __u32 key;           /* the socket to assign */
  __u32 flags;         /* bpf_sk_assign flags for the first assign */
  __u32 verdict;       /* SK_PASS (1) or SK_DROP (0) after an assign */
  __u32 second_key;    /* when second_assign: a second bpf_sk_assign with this key... */
  __u32 second_flags;  /* ...and these flags */
  __u32 second_assign; /* 0 or 1 */
  __u32 second_null;   /* 1: the second assign passes NULL instead of a socket */
  __u16 match_port;    /* host order; 0 = every lookup, else only this local port */
  __u16 pad;
};

struct steer_probe_lookup_result {
  __s64 first_assign;  /* bpf_sk_assign's return, or -ENOENT if the key was empty */
  __s64 second_assign;
  __u64 runs;          /* lookups that matched match_port */
  __u32 last_local_port;  /* host order */
  __u32 last_remote_port; /* host order (converted from the ctx's network order) */
  __u32 last_family;
  __u32 last_protocol;
  __u32 last_ingress_ifindex; /* ctx->ingress_ifindex (5.17+) */
  __u32 saw_selection;    /* lookups where ctx->sk was already set on entry (an earlier
                           * program in the chain had selected a socket) */
};

/* What the sk_reuseport probe selects. */
enum steer_probe_reuseport_mode {
  STEER_PROBE_REUSEPORT_FIXED = 0,       /* always `key` */
  STEER_PROBE_REUSEPORT_ROUND_ROBIN = 1, /* keys 0..count-1 in turn */
  STEER_PROBE_REUSEPORT_NO_SELECT = 2,   /* SK_PASS without selecting: the kernel's hash */
};

struct steer_probe_reuseport_config {
  __u32 mode;         /* enum steer_probe_reuseport_mode */
  __u32 map_kind;     /* enum steer_probe_map_kind */
  __u32 key;          /* FIXED */
  __u32 count;        /* ROUND_ROBIN */
  __u32 migrate_key;  /* the migration target; STEER_PROBE_NO_KEY: let the kernel pick */
  __u32 migrate_drop; /* 1: SK_DROP on migration (cancel it) */
};

#define STEER_PROBE_NO_KEY 0xffffffffu

struct steer_probe_reuseport_result {
  __s64 last_select;       /* bpf_sk_select_reuseport's last return on a new connection */
  __s64 last_migrate;      /* its last return when migrating */
  __u64 selections;        /* new connections seen */
  __u64 select_errors;     /* selections that returned an error */
  __u64 migrations;        /* runs with migrating_sk set */
  __u64 counter;           /* round-robin position */
  __u64 last_sk_cookie;    /* bpf_get_socket_cookie(md->sk) on the last new connection */
  __u64 migrate_sk_cookie; /* the same on the last migration (md->sk: the closing listener) */
  __u32 last_sk_port;      /* md->sk->src_port (host order) on the last new connection */
  __u32 migrating_state;   /* md->migrating_sk->state (TCP_*) on the last migration */
};

/* What the sk_msg probe's redirect helper (bpf_msg_redirect_map/hash) returned. */
struct steer_probe_msg_result {
  __s64 last_verdict; /* SK_PASS 1 / SK_DROP 0 */
  __u64 runs;
};

/* Per sockops callback (indexed by op): what bpf_sock_map_update / bpf_sock_hash_update
 * returned when the probe tried to insert the callback's socket at key `op`. */
#define STEER_PROBE_SOCKOPS_OPS 32
struct steer_probe_sockops_result {
  __s64 update_ret;  /* the helper's return on the last call */
  __u64 calls;
  __u64 last_cookie; /* bpf_get_socket_cookie of the last call's socket */
};

/* What the map-update probe (probe_map_update.bpf.c) saw: bpf_map_update_elem on a socket
 * map from an sk_lookup program. */
struct steer_probe_map_update_result {
  __s64 update_ret; /* bpf_map_update_elem's return; -ENOENT if the source slot was empty */
  __u64 runs;
};

#endif /* STEER_ABI_H */
