/* The connection counter: a sockops program (`steer conns track`, attached to a cgroup
 * through a link pinned with the state). For every passive open of a registered TCP
 * listener it counts the child in the listener's pool slots (least-conn, status), puts the
 * child in the `established` SOCKHASH and describes it in `connections` (`steer conns`);
 * when the child closes it takes it out again.
 *
 * Which listener accepted a child: userspace tags each registered listener with socket-local
 * storage (`listener_tags`, BPF_F_CLONE), which the kernel copies into each child as it is
 * created (kernel-behaviour.md I.43). A child's own copy then records that it was counted.
 * Sockets of listeners steer does not know carry no tag and are left alone. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dispatcher_maps.bpf.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#define STEER_TCP_CLOSE 7 /* BPF_TCP_CLOSE */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Adds `delta` to each slot of the tag that its listener still holds (a slot taken by
 * another socket since counts that socket's connections, not this one's). */
static __always_inline void count_in_slots(const struct steer_listener_tag* tag, long delta) {
  for (__u32 i = 0; i < STEER_TAG_KEYS; i++) {
    if (i >= tag->count) break;
    __u32 key = tag->keys[i];
    struct steer_socket_connections* counted = bpf_map_lookup_elem(&socket_connections, &key);
    if (counted && counted->cookie == tag->listener_cookie)
      __sync_fetch_and_add(&counted->established, delta);
  }
}

static __always_inline void established_child(struct bpf_sock_ops* ops, struct bpf_sock* sk) {
  struct steer_listener_tag* tag = bpf_sk_storage_get(&listener_tags, sk, 0, 0);
  if (!tag || tag->counted) return;
  tag->counted = 1;
  tag->established_ns = bpf_ktime_get_ns();
  count_in_slots(tag, 1);

  __u64 cookie = bpf_get_socket_cookie(ops);
  struct steer_connection connection = {};
  connection.listener_cookie = tag->listener_cookie;
  connection.established_ns = tag->established_ns;
  connection.socket_key = tag->keys[0];
  connection.family = (__u8)ops->family;
  connection.local_port = (__u16)ops->local_port;
  connection.remote_port = (__u16)bpf_ntohl(ops->remote_port);
  if (ops->family == AF_INET) {
    connection.local[0] = ops->local_ip4;
    connection.remote[0] = ops->remote_ip4;
  } else {
    connection.local[0] = ops->local_ip6[0];
    connection.local[1] = ops->local_ip6[1];
    connection.local[2] = ops->local_ip6[2];
    connection.local[3] = ops->local_ip6[3];
    connection.remote[0] = ops->remote_ip6[0];
    connection.remote[1] = ops->remote_ip6[1];
    connection.remote[2] = ops->remote_ip6[2];
    connection.remote[3] = ops->remote_ip6[3];
  }
  /* Full tables cost the listing, never the count. */
  bpf_map_update_elem(&connections, &cookie, &connection, BPF_ANY);
  bpf_sock_hash_update(ops, &established, &cookie, BPF_NOEXIST);
  /* The close is seen through the state callback, asked for per socket. */
  bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void closed_child(struct bpf_sock_ops* ops, struct bpf_sock* sk) {
  struct steer_listener_tag* tag = bpf_sk_storage_get(&listener_tags, sk, 0, 0);
  if (!tag || !tag->counted) return;
  tag->counted = 0;
  count_in_slots(tag, -1);
  __u64 cookie = bpf_get_socket_cookie(ops);
  bpf_map_delete_elem(&connections, &cookie); /* the SOCKHASH lets it go by itself */
}

SEC("sockops")
int steer_count_connections(struct bpf_sock_ops* ops) {
  struct bpf_sock* sk = ops->sk;
  if (!sk) return 1;
  switch (ops->op) {
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      established_child(ops, sk);
      break;
    case BPF_SOCK_OPS_STATE_CB:
      if (ops->args[1] == STEER_TCP_CLOSE) closed_child(ops, sk);
      break;
  }
  return 1;
}
