/* The reuseport program: attached by `steer reuseport attach` to a group of SO_REUSEPORT
 * sockets, with BPF_SK_REUSEPORT_SELECT_OR_MIGRATE. It runs when the kernel's own lookup
 * found the group (sk_lookup's choices carry BPF_SK_LOOKUP_F_NO_REUSEPORT and never reach
 * it), and when a member closes with connections queued.
 *
 * - New connection: the group's label (reuseport_groups, keyed by md->sk's bound address)
 *   names the pool; the label's policy picks an active member (pool.bpf.h, the same logic
 *   as the dispatcher's) and bpf_sk_select_reuseport hands it over. A member of another
 *   group fails the select and is passed over.
 * - Migration (md->migrating_sk set: a closing member's queued connection): an active
 *   member by policy; if none takes it, SK_PASS with no selection lets the kernel pick by
 *   hash among the group's listeners. A queued connection is never dropped.
 * - No member of the group in the pool (closed, never registered): the kernel's hash. Every
 *   member of the label draining: refused, as sk_lookup refuses it.
 * - A group steer does not know (no record, a label with no pool for this family):
 *   SK_PASS, the kernel's hash, as if no program were attached.
 *
 * It uses the pinned maps (loaded with every map reused, like the explain build). */
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
#define STEER_ETH_P_IP 0x0800
#define STEER_ETH_P_IPV6 0x86DD

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The two steps pool.bpf.h asks of its includer; the pick as a global function. */
#define STEER_POOL_CONTEXT struct sk_reuseport_md
#define STEER_PICK_GLOBAL 1
static __always_inline long steer_try_slot(struct sk_reuseport_md* md, __u32 destination_id,
                                           __u32 slot);
static __always_inline int steer_slot_queue(__u32 destination_id, __u32 slot, __u32 protocol,
                                            __u64* queued);

#include "pool.bpf.h"

/* Selects the socket of one pool slot within the group: 0, -ENOENT for an empty slot,
 * -EBADFD for a member of another group. */
static __always_inline long steer_try_slot(struct sk_reuseport_md* md, __u32 destination_id,
                                           __u32 slot) {
  __u32 key = steer_socket_key(destination_id, slot);
  return bpf_sk_select_reuseport(md, &sockets, &key, 0);
}

/* least-queue: an sk_reuseport program may not look a socket up in a SOCKMAP (it could not
 * release the reference: kernel-behaviour.md I.42), so the queue is read from the SOCKMAP's
 * own array of sockets, without a reference: the map's `sks` pointer (CO-RE), the slot's
 * socket by a kernel read, its queue through bpf_rdonly_cast. A socket closing meanwhile
 * reads as a stale figure, never as a fault. */
struct bpf_stab___steer {
  void* sks; /* struct sock ** */
} __attribute__((preserve_access_index));

static __always_inline int steer_slot_queue(__u32 destination_id, __u32 slot, __u32 protocol,
                                            __u64* queued) {
  struct bpf_stab___steer* stab =
      bpf_rdonly_cast(&sockets, bpf_core_type_id_kernel(struct bpf_stab___steer));
  __u64 sks = (__u64)stab->sks;
  if (!sks) return -ENOENT;
  __u64 key = steer_socket_key(destination_id, slot);
  void* sk = 0;
  if (bpf_probe_read_kernel(&sk, sizeof(sk), (void*)(sks + key * sizeof(void*))) || !sk)
    return -ENOENT;
  *queued = steer_queue_length(sk, protocol);
  return 0;
}

/* The record of the group md->sk belongs to. A closing listener whose port the kernel
 * chose (bound to port 0) has already given its port back when its queue migrates: the
 * port is then read from the connection on the move, which was made on it. */
static __always_inline struct steer_group* find_group(struct bpf_sock* member,
                                                      struct bpf_sock* migrating) {
  struct steer_group_key key = {};
  key.protocol = (__u8)member->protocol;
  key.family = (__u8)member->family;
  key.port = (__u16)member->src_port;
  if (migrating) key.port = (__u16)migrating->src_port;
  if (key.family == AF_INET) {
    key.addr[0] = member->src_ip4;
  } else {
    key.addr[0] = member->src_ip6[0];
    key.addr[1] = member->src_ip6[1];
    key.addr[2] = member->src_ip6[2];
    key.addr[3] = member->src_ip6[3];
  }
  return bpf_map_lookup_elem(&reuseport_groups, &key);
}

/* The label's members are all draining: new connections are refused, as sk_lookup refuses
 * them, rather than left to a hash that would pick a draining socket. */
static __always_inline int every_member_draining(__u32 destination_id,
                                                 const struct steer_destination* destination,
                                                 __u32 pools_epoch) {
  __u32 table_key = steer_maglev_key(destination_id, steer_live_table(destination, pools_epoch));
  struct steer_pool* pool = bpf_map_lookup_elem(&pools, &table_key);
  return pool && pool->members && !(pool->active | pool->standby);
}

SEC("sk_reuseport/migrate")
int steer_reuseport(struct sk_reuseport_md* md) {
  struct bpf_sock* member = md->sk;
  if (!member) return SK_PASS;
  struct steer_group* group = find_group(member, md->migrating_sk);
  if (!group) return SK_PASS;
  __u32 protocol = member->protocol;

  /* The connection's family: the packet's (an IPv4 SYN may reach a dual-stack IPv6 group);
   * for a migration the kernel passes no packet, and the group's own family will do (a
   * dual-stack socket sits in both of its label's pools). */
  __u32 family = member->family;
  if (md->eth_protocol == bpf_htons(STEER_ETH_P_IP)) family = AF_INET;
  else if (md->eth_protocol == bpf_htons(STEER_ETH_P_IPV6)) family = AF_INET6;

  struct steer_destination_key dkey = {};
  dkey.label_id = group->label_id;
  dkey.family = (__u8)family;
  dkey.protocol = (__u8)protocol;
  struct steer_destination_ref* ref = bpf_map_lookup_elem(&destination_index, &dkey);
  if (!ref) goto kernel_hash;
  __u32 destination_id = ref->destination;
  struct steer_destination* destination = bpf_map_lookup_elem(&destinations, &destination_id);
  /* The index is derived: trust it only when the destination agrees. */
  if (!destination || destination->state != STEER_DESTINATION_USED ||
      destination->label_id != group->label_id || destination->family != family ||
      destination->protocol != protocol)
    goto kernel_hash;
  __u32 zero = 0;
  struct steer_control* settings = bpf_map_lookup_elem(&control, &zero);
  if (!settings) goto kernel_hash;

  struct steer_destination_counters* counters =
      bpf_map_lookup_elem(&destination_counters, &destination_id);
  struct steer_pick pick = {.destination_id = destination_id,
                           .pools_epoch = settings->pools_epoch,
                           .hash = md->hash,
                           .protocol = protocol};
  int outcome = steer_pick_member(md, destination, counters, &pick);
  /* Whether this is a migration is read only now: a branch on it before the pick would
   * have the verifier walk the pick twice. */
  asm volatile("" ::: "memory");
  int migrating = md->migrating_sk != 0;
  if (outcome == STEER_PICK_SELECTED) {
    count_selected(destination_id, pick.slot);
    if (migrating) {
      __sync_fetch_and_add(&group->migrated, 1);
    } else {
      count(counters, STEER_COUNTER_LOOKUPS);
      count(counters, STEER_COUNTER_SELECTED);
      __sync_fetch_and_add(&group->selected, 1);
    }
    return SK_PASS;
  }
  if (migrating) goto kernel_hash; /* never drop a queued connection */
  count(counters, STEER_COUNTER_LOOKUPS);
  if (every_member_draining(destination_id, destination, settings->pools_epoch)) {
    count(counters, STEER_COUNTER_NO_SOCKET);
    __sync_fetch_and_add(&group->refused, 1);
    return SK_DROP;
  }
  /* No member of this group in the pool (all closed, or the group's sockets were never
   * registered): the kernel's hash serves it, as without steer. */

kernel_hash:
  __sync_fetch_and_add(&group->kernel_hash, 1);
  return SK_PASS;
}

/* ---- Which program each reuseport group runs --------------------------------------------
 * No socket option reports a group's program (SO_DETACH_REUSEPORT_BPF tells only by
 * detaching it: kernel-behaviour.md), so `steer reuseport` and `status` read it from the
 * kernel's own record through a socket iterator: for each socket of the namespace in a
 * group, its cookie, the group's id and its program's id. Read with CO-RE through
 * bpf_rdonly_cast; nothing is written. */
struct bpf_prog_aux___steer {
  __u32 id;
} __attribute__((preserve_access_index));

struct bpf_prog___steer {
  struct bpf_prog_aux___steer* aux;
} __attribute__((preserve_access_index));

struct sock_reuseport___steer {
  unsigned int reuseport_id;
  struct bpf_prog___steer* prog;
} __attribute__((preserve_access_index));

struct sock___steer_group {
  struct sock_common___steer __sk_common;
  struct sock_reuseport___steer* sk_reuseport_cb;
} __attribute__((preserve_access_index));

struct bpf_iter_meta___steer {
  void* seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp___steer {
  struct bpf_iter_meta___steer* meta;
  void* sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp___steer {
  struct bpf_iter_meta___steer* meta;
  void* udp_sk;
} __attribute__((preserve_access_index));

#define STEER_TCP_LISTEN 10

/* The TCP iterator also walks request and time-wait sockets, which are no struct sock:
 * only listeners are read (a TCP socket joins its group's lookups when it listens). */
static __always_inline int report_group_member(void* seq, const void* socket, int tcp) {
  if (!seq || !socket) return 0;
  struct sock___steer_group* sk =
      bpf_rdonly_cast(socket, bpf_core_type_id_kernel(struct sock___steer_group));
  if (tcp && sk->__sk_common.skc_state != STEER_TCP_LISTEN) return 0;
  struct sock_reuseport___steer* group = sk->sk_reuseport_cb;
  if (!group) return 0;
  struct steer_group_member record = {};
  record.cookie = (__u64)sk->__sk_common.skc_cookie.counter;
  record.group_id = group->reuseport_id;
  struct bpf_prog___steer* program = group->prog;
  if (program) {
    struct bpf_prog_aux___steer* aux = program->aux;
    if (aux) record.program_id = aux->id;
  }
  bpf_seq_write(seq, &record, sizeof(record));
  return 0;
}

SEC("iter/tcp")
int steer_groups_tcp(struct bpf_iter__tcp___steer* ctx) {
  return report_group_member(ctx->meta->seq, ctx->sk_common, 1);
}

SEC("iter/udp")
int steer_groups_udp(struct bpf_iter__udp___steer* ctx) {
  return report_group_member(ctx->meta->seq, ctx->udp_sk, 0);
}
