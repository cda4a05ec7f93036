/* Map-update probe (kernel.md H.40): which program types may call plain bpf_map_update_elem
 * on a socket map. Load one program at a time (bpf_program__set_autoload): the sockops ones
 * are there to be refused or accepted by the verifier, never to be attached. */
#include "probe_maps.bpf.h"

STEER_ONE_ENTRY_ARRAY(map_update_result, struct steer_probe_map_update_result);

/* sk_lookup copies the socket at SOCKMAP[source_key] to `target_key` of the map `map_kind`. */
const volatile __u32 source_key = 0;
const volatile __u32 target_key = 1;
const volatile __u32 map_kind = STEER_PROBE_SOCKMAP; /* enum steer_probe_map_kind */

SEC("sk_lookup")
int update_from_sk_lookup(struct bpf_sk_lookup* ctx) {
  __u32 zero = 0;
  struct steer_probe_map_update_result* result = bpf_map_lookup_elem(&map_update_result, &zero);
  if (!result) return SK_PASS;
  __sync_fetch_and_add(&result->runs, 1);
  __u32 source = source_key;
  struct bpf_sock* sk = bpf_map_lookup_elem(&probe_sockmap, &source);
  if (!sk) {
    result->update_ret = -2; /* -ENOENT */
    return SK_PASS;
  }
  __u32 target = target_key;
  if (map_kind == STEER_PROBE_SOCKHASH)
    result->update_ret = bpf_map_update_elem(&probe_sockhash, &target, sk, BPF_ANY);
  else
    result->update_ret = bpf_map_update_elem(&probe_sockmap, &target, sk, BPF_ANY);
  bpf_sk_release(sk);
  return SK_PASS;
}

/* Refused by the verifier: sockops may insert only through bpf_sock_map_update /
 * bpf_sock_hash_update, which check the callback. */
SEC("sockops")
int update_from_sockops(struct bpf_sock_ops* ops) {
  struct bpf_sock* sk = ops->sk;
  if (!sk) return 1;
  __u32 key = 0;
  bpf_map_update_elem(&probe_sockmap, &key, sk, BPF_ANY);
  return 1;
}

/* Deleting is allowed from sockops (the verifier's may_update_sockmap). */
SEC("sockops")
int delete_from_sockops(struct bpf_sock_ops* ops) {
  __u32 key = 0;
  bpf_map_delete_elem(&probe_sockmap, &key);
  return 1;
}
