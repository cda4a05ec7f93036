/* sk_msg probe: redirects every message to the socket at `target_key` of the SOCKMAP and
 * records the verdict the helper returned. */
#include "probe_maps.bpf.h"

STEER_ONE_ENTRY_ARRAY(msg_result, struct steer_probe_msg_result);

const volatile __u32 target_key = 0;

SEC("sk_msg")
int probe_msg_redirect(struct sk_msg_md* msg) {
  __u32 zero = 0;
  struct steer_probe_msg_result* result = bpf_map_lookup_elem(&msg_result, &zero);
  long verdict = bpf_msg_redirect_map(msg, &probe_sockmap, target_key, BPF_F_INGRESS);
  if (result) {
    result->last_verdict = verdict;
    __sync_fetch_and_add(&result->runs, 1);
  }
  return (int)verdict;
}
