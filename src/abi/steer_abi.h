/* Plain C types shared by steer's BPF programs and its C++: every map key and value.
 * Fixed-width fields only, no pointers, no bool. The C++ side static_asserts the sizes
 * (src/bpf/abi_checks.h); never copy a struct from here by hand. */
#ifndef STEER_ABI_H
#define STEER_ABI_H

#include <linux/types.h>

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
  __u64 last_cookie;      /* ctx->cookie (5.19+) is not read; reserved */
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
  __s64 last_select;      /* bpf_sk_select_reuseport's last return on a new connection */
  __s64 last_migrate;     /* its last return when migrating */
  __u64 selections;       /* new connections seen */
  __u64 select_errors;    /* selections that returned an error */
  __u64 migrations;       /* runs with migrating_sk set */
  __u64 counter;          /* round-robin position */
};

struct steer_probe_msg_result {
  __s64 last_verdict; /* what bpf_msg_redirect_map returned (SK_PASS 1 / SK_DROP 0) */
  __u64 runs;
};

/* Per sockops callback: what bpf_sock_hash_update returned. Indexed by callback op. */
#define STEER_PROBE_SOCKOPS_OPS 32
struct steer_probe_sockops_result {
  __s64 update_ret;
  __u64 calls;
};

#endif /* STEER_ABI_H */
