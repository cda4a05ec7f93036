/* Picking a member of a destination's pool by its policy: the one logic that both hooks
 * share, the sk_lookup dispatcher (dispatcher.bpf.c) and the reuseport program
 * (reuseport.bpf.c). The includer defines, before including this file:
 *
 *   STEER_POOL_CONTEXT   its program's context type;
 *   static __always_inline long steer_try_slot(STEER_POOL_CONTEXT* ctx, __u32 destination,
 *                                              __u32 slot);
 *       hands the connection to the socket of that pool slot: 0, -ENOENT when the slot holds
 *       none, or the kernel's reason for refusing it (bpf_sk_assign vs
 *       bpf_sk_select_reuseport);
 *   static __always_inline int steer_slot_queue(__u32 destination, __u32 slot,
 *                                               __u32 protocol, __u64* queued);
 *       what waits in that socket's queue (least-queue): 0, or -ENOENT when the slot holds
 *       no socket.
 *
 * Every path honours the live pool's state: tables hold active members only, the fallback
 * scans active then standby members, and a draining socket is never chosen. */
#ifndef STEER_POOL_BPF_H
#define STEER_POOL_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "dispatcher_maps.bpf.h"

#ifndef ENOENT
#define ENOENT 2
#endif
#define STEER_EPROTOTYPE 91
#define STEER_EAFNOSUPPORT 97
#define STEER_ESOCKTNOSUPPORT 94

#ifndef EXPLAIN
#define EXPLAIN(field, value) \
  do {                        \
  } while (0)
#endif

/* The explain build runs on made-up lookups: it must not move the real counters. */
static __always_inline void count(struct steer_destination_counters* counters, __u32 which) {
#ifndef STEER_EXPLAIN
  if (counters && which < STEER_COUNTERS) counters->values[which] += 1; /* per-CPU */
#endif
}

static __always_inline __u32 assign_error_counter(long error) {
  switch (-error) {
    case STEER_EPROTOTYPE: return STEER_COUNTER_ERR_PROTOTYPE;
    case STEER_EAFNOSUPPORT: return STEER_COUNTER_ERR_AFNOSUPPORT;
    case STEER_ESOCKTNOSUPPORT: return STEER_COUNTER_ERR_SOCKTNOSUPPORT;
    default: return STEER_COUNTER_ERR_OTHER;
  }
}

/* A probe that found no socket (closed by its owner: the kernel took it out of the map) or
 * a socket the kernel refused. */
static __always_inline void count_failure(struct steer_destination_counters* counters,
                                          long error) {
  count(counters, error == -ENOENT ? STEER_COUNTER_DEAD_SLOT : assign_error_counter(error));
}

/* What least-queue reads of a socket, found by CO-RE in the running kernel's struct sock
 * (the ___steer suffix is a CO-RE flavour: these match `sock` and `sk_buff_head`). */
struct sk_buff_head___steer {
  __u32 qlen;
} __attribute__((preserve_access_index));

struct sock___steer {
  __u32 sk_ack_backlog;                          /* a listener's accept queue */
  struct sk_buff_head___steer sk_receive_queue;  /* a UDP socket's datagrams */
} __attribute__((preserve_access_index));

extern void* bpf_rdonly_cast(const void* obj, __u32 btf_id) __ksym;

/* The queue of a socket the program holds a pointer to (never dereferenced but through
 * bpf_rdonly_cast: the kernel may be reading it too). */
static __always_inline __u32 steer_queue_length(const void* sk, __u32 protocol) {
  struct sock___steer* s = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___steer));
  if (protocol == IPPROTO_TCP) return s->sk_ack_backlog;
  return s->sk_receive_queue.qlen;
}

/* A socket's cookie (SO_COOKIE), read from the kernel's struct sock: no helper gives it for
 * a socket other than the program's own in every program type. */
struct atomic64___steer {
  __s64 counter;
} __attribute__((preserve_access_index));

struct sock_common___steer {
  unsigned char skc_state;
  struct atomic64___steer skc_cookie;
} __attribute__((preserve_access_index));

struct sock___steer_common {
  struct sock_common___steer __sk_common;
} __attribute__((preserve_access_index));

static __always_inline __u64 steer_socket_cookie(const void* sk) {
  struct sock___steer_common* s =
      bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___steer_common));
  return (__u64)s->__sk_common.skc_cookie.counter;
}

/* least-conn's measure: the member's established connections, as the sockops program
 * counts them (0 when it does not run). */
static __always_inline __u64 slot_connections(__u32 destination_id, __u32 slot) {
  __u32 key = steer_socket_key(destination_id, slot);
  struct steer_socket_connections* counted = bpf_map_lookup_elem(&socket_connections, &key);
  if (!counted || counted->established < 0) return 0;
  return (__u64)counted->established;
}

/* The least-queue and least-conn scan over the pool's active members: one bpf_loop step per
 * slot keeps the verifier's work to one pass over the body (a plain 64-step loop is checked
 * 64 times, and the explain build and the audit load this program at every pool change). */
struct queue_scan {
  __u32 destination_id;
  __u32 table_key;
  __u32 first; /* the scan's first slot: ties go to the first met */
  __u32 protocol;
  __u32 policy;
  __u32 pad;
  __u64 best_score;
  long best;
};

static long queue_scan_step(__u64 index, void* data) {
  struct queue_scan* scan = data;
  __u32 candidate = (scan->first + (__u32)index) % STEER_POOL_SLOTS;
  struct steer_pool* pool = bpf_map_lookup_elem(&pools, &scan->table_key);
  if (!pool) return 1;
  if (!((pool->active >> candidate) & 1)) return 0;
  __u64 queued = 0;
  if (steer_slot_queue(scan->destination_id, candidate, scan->protocol, &queued)) return 0;
  if (scan->policy == STEER_POLICY_LEAST_CONN)
    queued = slot_connections(scan->destination_id, candidate);
  __u64 weight = pool->weights[candidate & (STEER_POOL_SLOTS - 1)];
  __u64 score = (queued + 1) * 1024 / (weight ? weight : 1);
  if (score < scan->best_score) {
    scan->best_score = score;
    scan->best = candidate;
  }
  return 0;
}

/* least-queue (least-conn): the active member whose queue (established connections), by
 * weight, is the shortest; ties go to the first from slot `first` on. -1 when the pool has
 * no active member with a socket. */
static __always_inline long least_loaded_member(__u32 destination_id, __u32 table_key,
                                                __u32 first, __u32 protocol, __u32 policy) {
  struct queue_scan scan = {.destination_id = destination_id,
                            .table_key = table_key,
                            .first = first,
                            .protocol = protocol,
                            .policy = policy,
                            .best_score = ~0ULL,
                            .best = -1};
  bpf_loop(STEER_POOL_SLOTS, queue_scan_step, &scan, 0);
  return scan.best;
}

/* Round-robin's position: one atomic add per connection, so N members of equal weight over
 * k*N connections get exactly k each, whatever the CPUs and whichever hook asks. The explain
 * build only looks. */
static __always_inline __u64 next_in_turn(__u32 destination_id, __u32 hash) {
  struct steer_pool_cursor* cursor = bpf_map_lookup_elem(&pool_cursors, &destination_id);
  if (!cursor) return hash;
#ifdef STEER_EXPLAIN
  return cursor->next;
#else
  return __sync_fetch_and_add(&cursor->next, 1);
#endif
}

enum steer_pick_outcome {
  STEER_PICK_SELECTED = 0, /* pick->slot took the connection */
  STEER_PICK_NO_SOCKET,    /* the pool has no socket to offer */
  STEER_PICK_REFUSED,      /* sockets there, but the kernel took none: pick->error says why */
};

/* A pick's inputs and its answer (one struct: a BPF call takes five arguments at most). */
struct steer_pick {
  __u32 destination_id; /* in */
  __u32 pools_epoch;    /* in: control.pools_epoch */
  __u32 hash;           /* in: the flow's hash */
  __u32 protocol;       /* in: IPPROTO_TCP or IPPROTO_UDP */
  __u32 slot;           /* out: the member that took the connection */
  __u32 probe;          /* out: entries tried before it (explain) */
  long error;           /* out: why the kernel refused the last one tried */
};

/* How the pick is compiled: inlined (the dispatcher: the verifier follows it with what the
 * caller knows, and loads it fastest), or, with STEER_PICK_GLOBAL, as a global function that
 * the verifier checks once, on its own (the reuseport program, whose caller has more paths:
 * it halves that program's load time). */
#ifdef STEER_PICK_GLOBAL
#define STEER_PICK_FUNCTION __attribute__((noinline))
#else
#define STEER_PICK_FUNCTION static __always_inline
#endif

/* Picks a member of the destination's live pool by the policy its live table was built for
 * and hands the connection to it through steer_try_slot. */
STEER_PICK_FUNCTION int steer_pick_member(STEER_POOL_CONTEXT* ctx,
                                                const struct steer_destination* destination,
                                                struct steer_destination_counters* counters,
                                                struct steer_pick* pick) {
  if (!ctx || !destination || !pick) return STEER_PICK_NO_SOCKET;
  __u32 destination_id = pick->destination_id, pools_epoch = pick->pools_epoch;
  __u32 hash = pick->hash, protocol = pick->protocol;
  __u32 live_table = steer_live_table(destination, pools_epoch);
  __u32 policy = destination->table_policy[live_table];
  __u32 table_key = steer_maglev_key(destination_id, live_table);
  struct steer_maglev_table* table = bpf_map_lookup_elem(&maglev, &table_key);
  if (!table) return STEER_PICK_NO_SOCKET;

  /* The policy picks where to start in the table and how far to go; each entry names a
   * slot. The table holds active members only (userspace builds it per policy), so a
   * draining socket is never picked. A socket the kernel will not take (closed, a listener
   * that was shut down, a UDP socket that connected, a member of another reuseport group)
   * is passed over: the next entry is tried, then the pool's other members; a pool with a
   * usable member never refuses. */
  __u32 length = STEER_MAGLEV_SIZE, tries = STEER_MAGLEV_PROBES, start;
  if (policy != STEER_POLICY_HASH) {
    length = table->length;
    if (length > STEER_MAGLEV_SIZE) length = 0;
  }
  if (policy == STEER_POLICY_ROUND_ROBIN && length) {
    start = (__u32)(next_in_turn(destination_id, hash) % length);
  } else if (policy == STEER_POLICY_RANDOM && length) {
    start = bpf_get_prandom_u32() % length;
  } else if (policy == STEER_POLICY_FIRST) {
    start = 0;
    tries = length; /* every member, in priority order */
  } else {
    start = hash % STEER_MAGLEV_SIZE;
  }
  EXPLAIN(maglev_entry, start);

  pick->error = -ENOENT;
  if (policy == STEER_POLICY_LEAST_QUEUE || policy == STEER_POLICY_LEAST_CONN) {
    /* Ties go to the first member from the flow's own entry of the (Maglev) table: spread
     * by weight over the members, where a start at hash % 64 would favour the lowest slot
     * of a small pool. */
    __u32 entry = hash % STEER_MAGLEV_SIZE;
    asm volatile("" : "+r"(entry)); /* keep the bound check below for the verifier */
    __u32 first = entry < STEER_MAGLEV_SIZE ? table->slots[entry] : STEER_NO_SLOT;
    if (first >= STEER_POOL_SLOTS) first = hash;
    long shortest = least_loaded_member(destination_id, table_key, first, protocol, policy);
    if (shortest >= 0 && shortest < STEER_POOL_SLOTS) {
      long result = steer_try_slot(ctx, destination_id, (__u32)shortest);
      if (result == 0) {
        pick->slot = (__u32)shortest;
        pick->probe = 0;
        return STEER_PICK_SELECTED;
      }
      count_failure(counters, result);
      if (result != -ENOENT) pick->error = result;
    }
  }
  for (__u32 p = 0; p < STEER_POOL_SLOTS; p++) {
    if (p >= tries || p >= length) break;
    __u32 index = start + p;
    if (index >= length) index -= length;
    if (index >= STEER_MAGLEV_SIZE) break; /* for the verifier */
    __u32 probed_slot = table->slots[index];
    if (probed_slot >= STEER_POOL_SLOTS) break; /* STEER_NO_SLOT: no active member */
    long result = steer_try_slot(ctx, destination_id, probed_slot);
    if (result == 0) {
      pick->slot = probed_slot;
      pick->probe = p;
      return STEER_PICK_SELECTED;
    }
    count_failure(counters, result);
    if (result != -ENOENT) pick->error = result;
  }
  /* Every entry tried failed: any usable active member is better than a refusal, then any
   * standby member (weight 0). Rare, so a plain scan of the live pool's bits: a socket
   * written aside by a change in progress, or draining, is never chosen. */
  struct steer_pool* pool = bpf_map_lookup_elem(&pools, &table_key);
  if (!pool) return STEER_PICK_NO_SOCKET;
  __u64 candidates = pool->active;
  for (__u32 pass = 0; pass < 2; pass++) {
    for (__u32 i = 0; i < STEER_POOL_SLOTS; i++) {
      __u32 scanned_slot = (hash + i) % STEER_POOL_SLOTS;
      if (!((candidates >> scanned_slot) & 1)) continue;
      long result = steer_try_slot(ctx, destination_id, scanned_slot);
      if (result == 0) {
        pick->slot = scanned_slot;
        pick->probe = STEER_MAGLEV_PROBES + pass * STEER_POOL_SLOTS + i;
        return STEER_PICK_SELECTED;
      }
      if (result != -ENOENT) {
        count_failure(counters, result);
        pick->error = result;
      }
    }
    candidates = pool->standby;
  }
  return pick->error != -ENOENT ? STEER_PICK_REFUSED : STEER_PICK_NO_SOCKET;
}

/* After a pick: the socket's own count (atomic adds; docs/architecture.md, "Counters"). */
static __always_inline void count_selected(__u32 destination_id, __u32 slot) {
#ifndef STEER_EXPLAIN
  __u32 socket_key = steer_socket_key(destination_id, slot);
  struct steer_socket_counters* socket_stats = bpf_map_lookup_elem(&socket_counters, &socket_key);
  if (socket_stats) __sync_fetch_and_add(&socket_stats->selected, 1);
#endif
}

#endif
