/* sk_msg probe: redirects every message to the socket at `target_key` of the SOCKMAP or
 * SOCKHASH (by `map_kind`) with `redirect_flags`, and records the verdict the helper
 * returned; the program returns that verdict. Attach it to the map it redirects into. */
#include "probe_maps.bpf.h"

STEER_ONE_ENTRY_ARRAY(msg_result, struct steer_probe_msg_result);

const volatile __u32 target_key = 0;
const volatile __u32 map_kind = STEER_PROBE_SOCKMAP; /* enum steer_probe_map_kind */
const volatile __u64 redirect_flags = BPF_F_INGRESS;

SEC("sk_msg")
int probe_msg_redirect(struct sk_msg_md* msg) {
  __u32 zero = 0;
  struct steer_probe_msg_result* result = bpf_map_lookup_elem(&msg_result, &zero);
  __u32 key = target_key;
  long verdict;
  if (map_kind == STEER_PROBE_SOCKHASH)
    verdict = bpf_msg_redirect_hash(msg, &probe_sockhash, &key, redirect_flags);
  else
    verdict = bpf_msg_redirect_map(msg, &probe_sockmap, key, redirect_flags);
  if (result) {
    result->last_verdict = verdict;
    __sync_fetch_and_add(&result->runs, 1);
  }
  return (int)verdict;
}
