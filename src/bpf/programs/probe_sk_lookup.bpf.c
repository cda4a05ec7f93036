/* sk_lookup probe: passes, drops, or assigns a socket from a socket map as configured,
 * and records what bpf_sk_assign returned. */
#include "probe_maps.bpf.h"

#include <linux/errno.h>

STEER_ONE_ENTRY_ARRAY(lookup_config, struct steer_probe_lookup_config);
STEER_ONE_ENTRY_ARRAY(lookup_result, struct steer_probe_lookup_result);

static __always_inline __s64 assign_key(struct bpf_sk_lookup* ctx, __u32 kind, __u32 key,
                                        __u32 flags) {
  struct bpf_sock* sk = bpf_map_lookup_elem(probe_map(kind), &key);
  if (!sk) return -ENOENT;
  __s64 ret = bpf_sk_assign(ctx, sk, flags);
  bpf_sk_release(sk);
  return ret;
}

SEC("sk_lookup")
int probe_lookup(struct bpf_sk_lookup* ctx) {
  __u32 zero = 0;
  struct steer_probe_lookup_config* config = bpf_map_lookup_elem(&lookup_config, &zero);
  struct steer_probe_lookup_result* result = bpf_map_lookup_elem(&lookup_result, &zero);
  if (!config || !result) return SK_PASS;
  if (config->match_port && ctx->local_port != config->match_port) return SK_PASS;

  __sync_fetch_and_add(&result->runs, 1);
  result->last_local_port = ctx->local_port;
  result->last_remote_port = bpf_ntohs((__u16)(ctx->remote_port & 0xffff));
  result->last_family = ctx->family;
  result->last_protocol = ctx->protocol;
  result->last_ingress_ifindex = ctx->ingress_ifindex;
  /* ctx->sk holds the selection of an earlier program in the chain (not a reference). */
  if (ctx->sk) __sync_fetch_and_add(&result->saw_selection, 1);

  if (config->action == STEER_PROBE_LOOKUP_DROP) return SK_DROP;
  if (config->action != STEER_PROBE_LOOKUP_ASSIGN) return SK_PASS;

  result->first_assign = assign_key(ctx, config->map_kind, config->key, config->flags);
  if (config->second_assign) {
    if (config->second_null)
      result->second_assign = bpf_sk_assign(ctx, NULL, config->second_flags);
    else
      result->second_assign =
          assign_key(ctx, config->map_kind, config->second_key, config->second_flags);
  }
  return config->verdict ? SK_PASS : SK_DROP;
}
