/* The dispatcher: an sk_lookup program. For each lookup of a listening TCP or unconnected
 * UDP socket it finds the most specific binding (longest prefix; then a single port, a
 * range, all ports), picks a socket from the destination's pool with a Maglev table over
 * the 4-tuple, and assigns it. No binding: SK_PASS (steer is invisible). A binding without
 * a usable socket: SK_DROP (the client is refused), counted.
 *
 * Built twice: as is, and with -DSTEER_EXPLAIN, which also records every decision in the
 * `explain` map for `steer explain` (run through BPF_PROG_TEST_RUN, never attached). */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dispatcher_maps.bpf.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifdef STEER_EXPLAIN
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct steer_explain);
} explain SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_POOL_SLOTS);
  __type(key, __u32);
  __type(value, struct steer_audit_entry);
} audit SEC(".maps");

/* Which destination steer_audit looks at; set by userspace before each run. */
__u32 audit_destination = 0;

static __always_inline struct steer_explain* explain_record(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&explain, &zero);
}
#define EXPLAIN(field, value)                        \
  do {                                               \
    struct steer_explain* record_ = explain_record(); \
    if (record_) record_->field = (value);           \
  } while (0)
#else
#define EXPLAIN(field, value) \
  do {                        \
  } while (0)
#endif

/* Index of the highest set bit of a non-zero word. */
static __always_inline __u32 highest_bit(__u64 x) {
  __u32 n = 0;
  if (x >> 32) { n += 32; x >>= 32; }
  if (x >> 16) { n += 16; x >>= 16; }
  if (x >> 8) { n += 8; x >>= 8; }
  if (x >> 4) { n += 4; x >>= 4; }
  if (x >> 2) { n += 2; x >>= 2; }
  if (x >> 1) { n += 1; }
  return n;
}

/* Network-order mask of the `bits` high bits of a 32-bit word (bits in 0..32). */
static __always_inline __u32 word_mask(int bits) {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffffu;
  return bpf_htonl(0xffffffffu << (32 - bits));
}

/* The lookup's fields, read once at entry: the verifier refuses loads through a ctx pointer
 * the compiler has offset ("dereference of modified ctx ptr"), which clang produces when it
 * hoists field addresses out of branches. */
struct lookup {
  __u32 family;
  __u32 protocol;
  __u32 local[4];  /* network order; IPv4 in [0] */
  __u32 remote[4];
  __u32 local_port;  /* host order */
  __u32 remote_port; /* host order */
};

static __always_inline void read_lookup(struct bpf_sk_lookup* ctx, struct lookup* l) {
  l->family = ctx->family;
  l->protocol = ctx->protocol;
  l->local_port = ctx->local_port;
  l->remote_port = bpf_ntohs((__u16)ctx->remote_port);
  if (l->family == AF_INET) {
    l->local[0] = ctx->local_ip4;
    l->remote[0] = ctx->remote_ip4;
    asm volatile("" ::: "memory");
  } else {
    l->local[0] = ctx->local_ip6[0];
    l->local[1] = ctx->local_ip6[1];
    l->local[2] = ctx->local_ip6[2];
    l->local[3] = ctx->local_ip6[3];
    l->remote[0] = ctx->remote_ip6[0];
    l->remote[1] = ctx->remote_ip6[1];
    l->remote[2] = ctx->remote_ip6[2];
    l->remote[3] = ctx->remote_ip6[3];
    asm volatile("" ::: "memory");
  }
}

struct match {
  __u32 destination;
  __u8 prefix_len;
  __u8 is_range;
  __u16 range_first;
  __u16 range_last;
};

/* State of the walk over prefix lengths, longest first; one bpf_loop step per length in
 * use keeps verification linear in the code, not in the number of lengths. */
#define KIND_PORT 1
#define KIND_RANGE 2

struct walk {
  struct steer_binding_key base;
  __u32 addr[4];
  __u64 ports[3];
  __u64 ranges[3];
  __u32 set;
  __u16 port;
  __u16 found_any;
  struct match found;
};

/* Looks for a binding of exactly `length` bits; 1 (and walk->found filled) when there is one.
 * A global function: the verifier checks it once, not once per prefix length and range. */
__attribute__((noinline)) int steer_match_length(struct walk* walk, __u32 length, __u32 kinds) {
  if (!walk) return 0;
  struct steer_binding_key key = walk->base;
  key.prefix_len = length;
  key.addr[0] = walk->addr[0] & word_mask((int)length);
  key.addr[1] = walk->addr[1] & word_mask((int)length - 32);
  key.addr[2] = walk->addr[2] & word_mask((int)length - 64);
  key.addr[3] = walk->addr[3] & word_mask((int)length - 96);
  __u16 port = walk->port;

  if (kinds & KIND_PORT) {
    key.port = port;
    /* One call per map: with the map known at the call site the verifier inlines the hash
     * lookup; a map chosen at run time goes through the generic helper and an indirect call
     * (a retpoline here): ~12 ns more per prefix length probed. The barrier keeps clang from
     * merging the two calls back into one. */
    struct steer_port_binding* binding;
    if (walk->set) {
      binding = bpf_map_lookup_elem(&port_bindings_1, &key);
      asm volatile("" ::: "memory");
    } else {
      binding = bpf_map_lookup_elem(&port_bindings_0, &key);
    }
    if (binding) {
      walk->found.destination = binding->destination;
      walk->found.prefix_len = length;
      walk->found.is_range = 0;
      return 1;
    }
  }
  if (kinds & KIND_RANGE) {
    key.port = 0;
    struct steer_range_binding* ranges;
    if (walk->set) {
      ranges = bpf_map_lookup_elem(&range_bindings_1, &key);
      asm volatile("" ::: "memory");
    } else {
      ranges = bpf_map_lookup_elem(&range_bindings_0, &key);
    }
    if (!ranges) return 0;
    for (__u32 i = 0; i < STEER_RANGES_PER_PREFIX; i++) {
      if (i >= ranges->count) break;
      struct steer_port_range* range = &ranges->ranges[i];
      if (port >= range->first && port <= range->last) {
        walk->found.destination = range->destination;
        walk->found.prefix_len = length;
        walk->found.is_range = 1;
        walk->found.range_first = range->first;
        walk->found.range_last = range->last;
        return 1;
      }
    }
  }
  return 0;
}

static long walk_step(__u64 index, void* data) {
  struct walk* walk = data;
  int w;
  if (walk->ports[2] | walk->ranges[2]) w = 2;
  else if (walk->ports[1] | walk->ranges[1]) w = 1;
  else if (walk->ports[0] | walk->ranges[0]) w = 0;
  else return 1; /* no lengths left: stop */

  __u64 ports = walk->ports[w], ranges = walk->ranges[w];
  __u32 bit = highest_bit(ports | ranges);
  __u64 flag = 1ULL << bit;
  walk->ports[w] = ports & ~flag;
  walk->ranges[w] = ranges & ~flag;
  __u32 kinds = ((ports & flag) ? KIND_PORT : 0) | ((ranges & flag) ? KIND_RANGE : 0);
  if (steer_match_length(walk, (__u32)w * 64 + bit, kinds)) {
    walk->found_any = 1;
    return 1;
  }
  return 0;
}

/* The most specific binding for this lookup, longest prefix first, among the lengths its
 * port's mask names. */
static __always_inline int find_binding(const struct lookup* l, const struct steer_control* control,
                                        const struct steer_prefix_mask* mask,
                                        struct match* found) {
  struct walk walk = {};
  walk.set = control->active_set & 1;
  for (int i = 0; i < 3; i++) {
    walk.ports[i] = mask->ports[i];
    walk.ranges[i] = mask->ranges[i];
  }
  walk.base.protocol = l->protocol;
  walk.base.family = l->family;
  for (int i = 0; i < 4; i++) walk.addr[i] = l->local[i];
  walk.port = (__u16)l->local_port;
  bpf_loop(129, walk_step, &walk, 0);
  if (!walk.found_any) return 0;
  *found = walk.found;
  return 1;
}

/* A flow hash of the 4-tuple (murmur3's mixing): stable for a flow while the pool is. */
static __always_inline __u32 mix(__u32 hash, __u32 word) {
  word *= 0xcc9e2d51;
  word = (word << 15) | (word >> 17);
  word *= 0x1b873593;
  hash ^= word;
  hash = (hash << 13) | (hash >> 19);
  return hash * 5 + 0xe6546b64;
}

static __always_inline __u32 flow_hash(const struct lookup* l) {
  __u32 hash = 0x5eed;
  if (l->family == AF_INET) {  /* the other words are zero: skip them */
    hash = mix(hash, l->remote[0]);
    hash = mix(hash, l->local[0]);
  } else {  /* fold each address to two words first: half the mixing, spread enough */
    hash = mix(hash, l->remote[0] ^ l->remote[2]);
    hash = mix(hash, l->remote[1] ^ l->remote[3]);
    hash = mix(hash, l->local[0] ^ l->local[2]);
    hash = mix(hash, l->local[1] ^ l->local[3]);
  }
  hash = mix(hash, (l->remote_port << 16) | (l->local_port & 0xffff));
  hash ^= hash >> 16;
  hash *= 0x85ebca6b;
  hash ^= hash >> 13;
  hash *= 0xc2b2ae35;
  hash ^= hash >> 16;
  return hash;
}

/* The two steps pool.bpf.h asks of its includer. */
#define STEER_POOL_CONTEXT struct bpf_sk_lookup
static __always_inline long steer_try_slot(struct bpf_sk_lookup* ctx, __u32 destination_id,
                                           __u32 slot);
static __always_inline int steer_slot_queue(__u32 destination_id, __u32 slot, __u32 protocol,
                                            __u64* queued);

#include "pool.bpf.h"

/* Hands the connection to the socket of one pool slot: 0, -ENOENT when the slot holds
 * none, or the kernel's reason for refusing it. NO_REUSEPORT: steer's policy decides, not
 * the hash of a reuseport group the socket may be in. */
static __always_inline long steer_try_slot(struct bpf_sk_lookup* ctx, __u32 destination_id,
                                           __u32 slot) {
  __u32 key = steer_socket_key(destination_id, slot);
  struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &key);
  if (!sk) return -ENOENT;
  long error = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
  bpf_sk_release(sk);
  return error;
}

static __always_inline int steer_slot_queue(__u32 destination_id, __u32 slot, __u32 protocol,
                                            __u64* queued) {
  __u32 key = steer_socket_key(destination_id, slot);
  struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &key);
  if (!sk) return -ENOENT;
  *queued = steer_queue_length(sk, protocol);
  bpf_sk_release(sk);
  return 0;
}

/* UDP flows. Global functions: the verifier checks each once, on its own, so the flow
 * key on their stacks does not split the states of the whole pick that follows (inlined,
 * it tripled the dispatcher's load time). */
static __always_inline void flow_key_of(const struct lookup* l, struct steer_flow_key* key) {
  key->family = (__u8)l->family;
  key->local_port = (__u16)l->local_port;
  key->remote_port = (__u16)l->remote_port;
  for (int i = 0; i < 4; i++) {
    key->local[i] = l->local[i];
    key->remote[i] = l->remote[i];
  }
}

/* The slot of the socket this flow went to, if it is still in the pool (draining included)
 * and takes the datagram (then it is assigned); -1 otherwise. */
__attribute__((noinline)) int steer_flow_slot(struct bpf_sk_lookup* ctx, const struct lookup* l,
                                              __u32 destination_id) {
  if (!ctx || !l) return -1;
  struct steer_flow_key key = {};
  flow_key_of(l, &key);
  struct steer_flow* flow = bpf_map_lookup_elem(&udp_flows, &key);
  if (!flow || flow->destination != destination_id || flow->slot >= STEER_POOL_SLOTS) return -1;
  __u32 slot = flow->slot;
  __u32 socket_key = steer_socket_key(destination_id, slot);
  struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &socket_key);
  if (!sk) return -1;
  long error = -ENOENT;
  if (steer_socket_cookie(sk) == flow->cookie)
    error = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
  bpf_sk_release(sk);
  return error ? -1 : (int)slot;
}

/* A new UDP flow keeps the socket its first datagram got (the explain build only looks). */
__attribute__((noinline)) int steer_remember_flow(struct bpf_sk_lookup* ctx,
                                                  const struct lookup* l, __u32 destination_id,
                                                  __u32 slot) {
#ifndef STEER_EXPLAIN
  if (!ctx || !l) return 0;
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return 0;
  struct steer_flow_key key = {};
  flow_key_of(l, &key);
  struct steer_flow flow = {.cookie = steer_socket_cookie(sk),
                            .destination = destination_id,
                            .slot = slot};
  bpf_map_update_elem(&udp_flows, &key, &flow, BPF_ANY);
#endif
  return 0;
}

SEC("sk_lookup")
int steer_dispatch(struct bpf_sk_lookup* ctx) {
  struct lookup l = {};
  read_lookup(ctx, &l);
  __u32 family_index, protocol_index;
  if (l.family == AF_INET) family_index = STEER_FAMILY_V4;
  else if (l.family == AF_INET6) family_index = STEER_FAMILY_V6;
  else return SK_PASS;
  if (l.protocol == IPPROTO_TCP) protocol_index = STEER_PROTO_TCP;
  else if (l.protocol == IPPROTO_UDP) protocol_index = STEER_PROTO_UDP;
  else return SK_PASS;

  /* The common case first: most lookups are for ports nothing is bound to. */
  __u32 mask_key = steer_port_mask_key(family_index, protocol_index, l.local_port);
  struct steer_prefix_mask* lengths = bpf_map_lookup_elem(&port_masks, &mask_key);
  if (!lengths || !(lengths->ports[0] | lengths->ranges[0] | lengths->ports[1] |
                    lengths->ranges[1] | lengths->ports[2] | lengths->ranges[2])) {
    EXPLAIN(outcome, STEER_EXPLAIN_NO_BINDING);
    return SK_PASS;
  }

  __u32 zero = 0;
  struct steer_control* settings = bpf_map_lookup_elem(&control, &zero);
  if (!settings) return SK_PASS;

  struct match found = {};
  if (!find_binding(&l, settings, lengths, &found)) {
    EXPLAIN(outcome, STEER_EXPLAIN_NO_BINDING);
    return SK_PASS;
  }
  __u32 destination_id = found.destination;
  EXPLAIN(destination, destination_id);
  EXPLAIN(prefix_len, found.prefix_len);
  EXPLAIN(matched_range, found.is_range);
  EXPLAIN(range_first, found.range_first);
  EXPLAIN(range_last, found.range_last);

  struct steer_destination_counters* counters =
      bpf_map_lookup_elem(&destination_counters, &destination_id);
  count(counters, STEER_COUNTER_LOOKUPS);

  struct steer_destination* destination = bpf_map_lookup_elem(&destinations, &destination_id);
  if (!destination || destination->state != STEER_DESTINATION_USED) goto no_socket;

  __u32 hash = flow_hash(&l);
  EXPLAIN(hash, hash);

  struct steer_pick pick = {};
  if (l.protocol == IPPROTO_UDP) {
    int kept = steer_flow_slot(ctx, &l, destination_id);
    if (kept >= 0) {
      pick.slot = (__u32)kept;
      EXPLAIN(flow, 1);
      goto selected;
    }
  }
  pick.destination_id = destination_id;
  pick.pools_epoch = settings->pools_epoch;
  pick.hash = hash;
  pick.protocol = l.protocol;
  int outcome = steer_pick_member(ctx, destination, counters, &pick);
  if (outcome == STEER_PICK_REFUSED) { /* sockets there, but the kernel took none of them */
    EXPLAIN(outcome, STEER_EXPLAIN_ASSIGN_FAILED);
    EXPLAIN(assign_error, (__s32)pick.error);
    return SK_DROP;
  }
  if (outcome != STEER_PICK_SELECTED) goto no_socket;
  if (l.protocol == IPPROTO_UDP) steer_remember_flow(ctx, &l, destination_id, pick.slot);

selected:
  EXPLAIN(slot, pick.slot);
  EXPLAIN(probes, pick.probe);
  count(counters, STEER_COUNTER_SELECTED);
  count_selected(destination_id, pick.slot);
  EXPLAIN(outcome, STEER_EXPLAIN_SELECTED);
  return SK_PASS;

no_socket:
  count(counters, STEER_COUNTER_NO_SOCKET);
  EXPLAIN(outcome, STEER_EXPLAIN_NO_SOCKET);
  return SK_DROP;
}

#ifdef STEER_EXPLAIN
/* The pool audit, run by BPF_PROG_TEST_RUN with a lookup of the destination's family and
 * protocol: for each slot, would the kernel take its socket now? That is the data plane's
 * own test, so userspace prunes exactly the sockets the dispatcher passes over. */
SEC("sk_lookup")
int steer_audit(struct bpf_sk_lookup* ctx) {
  __u32 destination_id = audit_destination;
  for (__u32 slot = 0; slot < STEER_POOL_SLOTS; slot++) {
    __u32 index = slot;
    struct steer_audit_entry* entry = bpf_map_lookup_elem(&audit, &index);
    if (!entry) continue;
    __u32 key = steer_socket_key(destination_id, slot);
    struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &key);
    if (!sk) {
      entry->present = 0;
      entry->assign_error = -ENOENT;
      entry->state = 0;
      continue;
    }
    entry->present = 1;  /* userspace reads the cookie from the map itself */
    entry->state = sk->state;
    entry->assign_error = (__s32)bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_REPLACE |
                                                           BPF_SK_LOOKUP_F_NO_REUSEPORT);
    bpf_sk_release(sk);
  }
  return SK_PASS;
}
#endif
