/* sockops probe: on every callback, tries bpf_sock_hash_update into the SOCKHASH with the
 * local port as key, and records per callback what the helper returned. Userspace sees
 * which callbacks may insert (TCP_LISTEN_CB, *_ESTABLISHED_CB) and which are refused. */
#include "probe_maps.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STEER_PROBE_SOCKOPS_OPS);
  __type(key, __u32);
  __type(value, struct steer_probe_sockops_result);
} sockops_result SEC(".maps");

/* Only sockets bound to this port are touched, so other sockets of the cgroup are left alone. */
const volatile __u32 watched_port = 0;

SEC("sockops")
int probe_sockops(struct bpf_sock_ops* ops) {
  __u32 op = ops->op;
  if (op >= STEER_PROBE_SOCKOPS_OPS) return 1;
  if (ops->local_port != watched_port) return 1;
  struct steer_probe_sockops_result* result = bpf_map_lookup_elem(&sockops_result, &op);
  if (!result) return 1;
  __u32 key = ops->local_port;
  result->update_ret = bpf_sock_hash_update(ops, &probe_sockhash, &key, BPF_ANY);
  __sync_fetch_and_add(&result->calls, 1);
  return 1;
}
