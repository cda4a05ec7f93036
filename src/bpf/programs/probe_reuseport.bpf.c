/* sk_reuseport probe: selects a group member from a SOCKMAP or SOCKHASH as configured and
 * records what bpf_sk_select_reuseport returned. Two programs: a plain select, and a
 * select-or-migrate one that also picks where a closing member's connections go. */
#include "probe_maps.bpf.h"

STEER_ONE_ENTRY_ARRAY(reuseport_config, struct steer_probe_reuseport_config);
STEER_ONE_ENTRY_ARRAY(reuseport_result, struct steer_probe_reuseport_result);

static __always_inline int select_new(struct sk_reuseport_md* md,
                                      struct steer_probe_reuseport_config* config,
                                      struct steer_probe_reuseport_result* result) {
  __sync_fetch_and_add(&result->selections, 1);
  /* md->sk: the group member the lookup found, which tells the program its group. */
  result->last_sk_cookie = bpf_get_socket_cookie(md->sk);
  result->last_sk_port = md->sk->src_port;
  if (config->mode == STEER_PROBE_REUSEPORT_NO_SELECT) return SK_PASS;
  __u32 key = config->key;
  if (config->mode == STEER_PROBE_REUSEPORT_ROUND_ROBIN) {
    __u64 position = __sync_fetch_and_add(&result->counter, 1);
    key = config->count ? (__u32)(position % config->count) : 0;
  }
  __s64 ret = bpf_sk_select_reuseport(md, probe_map(config->map_kind), &key, 0);
  result->last_select = ret;
  if (ret) {
    __sync_fetch_and_add(&result->select_errors, 1);
    return SK_DROP;
  }
  return SK_PASS;
}

SEC("sk_reuseport")
int probe_select(struct sk_reuseport_md* md) {
  __u32 zero = 0;
  struct steer_probe_reuseport_config* config = bpf_map_lookup_elem(&reuseport_config, &zero);
  struct steer_probe_reuseport_result* result = bpf_map_lookup_elem(&reuseport_result, &zero);
  if (!config || !result) return SK_PASS;
  return select_new(md, config, result);
}

SEC("sk_reuseport/migrate")
int probe_select_or_migrate(struct sk_reuseport_md* md) {
  __u32 zero = 0;
  struct steer_probe_reuseport_config* config = bpf_map_lookup_elem(&reuseport_config, &zero);
  struct steer_probe_reuseport_result* result = bpf_map_lookup_elem(&reuseport_result, &zero);
  if (!config || !result) return SK_PASS;
  struct bpf_sock* migrating = md->migrating_sk;
  if (!migrating) return select_new(md, config, result);

  __sync_fetch_and_add(&result->migrations, 1);
  /* When migrating, md->sk is the closing listener and migrating_sk the child on the move. */
  result->migrate_sk_cookie = bpf_get_socket_cookie(md->sk);
  result->migrating_state = migrating->state;
  if (config->migrate_drop) return SK_DROP;
  if (config->migrate_key == STEER_PROBE_NO_KEY) return SK_PASS;
  __u32 key = config->migrate_key;
  result->last_migrate = bpf_sk_select_reuseport(md, probe_map(config->map_kind), &key, 0);
  return SK_PASS;
}
