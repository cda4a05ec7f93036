/* sockops probe: on every callback of a watched connection, tries to insert the callback's
 * socket into a socket map at key `op` (bpf_sock_map_update or bpf_sock_hash_update, by
 * `map_kind`) and records per callback what the helper returned. Userspace sees which
 * callbacks may insert (TCP_LISTEN_CB, *_ESTABLISHED_CB) and which are refused. */
#include "probe_maps.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_PROBE_SOCKOPS_OPS);
  __type(key, __u32);
  __type(value, struct steer_probe_sockops_result);
} sockops_result SEC(".maps");

/* A socket is watched when either end uses this port (host order): the listener and its
 * accepted children by their local port, the connecting client by its remote port. Other
 * sockets of the cgroup are left alone. */
const volatile __u32 watched_port = 0;
const volatile __u32 map_kind = STEER_PROBE_SOCKHASH; /* enum steer_probe_map_kind */

SEC("sockops")
int probe_sockops(struct bpf_sock_ops* ops) {
  __u32 op = ops->op;
  if (op >= STEER_PROBE_SOCKOPS_OPS) return 1;
  /* remote_port holds the network-order port in its upper 16 bits on little endian. */
  __u32 remote_port = bpf_ntohl(ops->remote_port);
  if (ops->local_port != watched_port && remote_port != watched_port) return 1;
  struct steer_probe_sockops_result* result = bpf_map_lookup_elem(&sockops_result, &op);
  if (!result) return 1;
  __u32 key = op;
  long ret;
  if (map_kind == STEER_PROBE_SOCKHASH)
    ret = bpf_sock_hash_update(ops, &probe_sockhash, &key, BPF_ANY);
  else
    ret = bpf_sock_map_update(ops, &probe_sockmap, &key, BPF_ANY);
  result->update_ret = ret;
  result->last_cookie = bpf_get_socket_cookie(ops);
  __sync_fetch_and_add(&result->calls, 1);
  return 1;
}
