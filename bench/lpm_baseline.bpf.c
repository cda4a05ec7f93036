/* The nearest peer's lookup, for comparison only (never used by steer): every binding in one
 * LPM trie keyed by (protocol, port, address), IPv4 mapped into IPv6; two trie lookups per
 * packet (the exact port, then port 0 for "all ports"), the longer prefix wins; then the
 * destination's counters and its socket in a SOCKMAP, and bpf_sk_assign. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lpm_baseline.h"

#ifndef AF_INET
#define AF_INET 2
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, LPM_BASELINE_MAX_ENTRIES);
  __type(key, struct lpm_baseline_key);
  __type(value, struct lpm_baseline_value);
} bindings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LPM_BASELINE_DESTINATIONS);
  __type(key, __u32);
  __type(value, __u64);
} lookups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, LPM_BASELINE_DESTINATIONS);
  __type(key, __u32);
  __type(value, __u64);
} sockets SEC(".maps");

SEC("sk_lookup")
int lpm_dispatch(struct bpf_sk_lookup* ctx) {
  struct lpm_baseline_key key = {};
  __u32 family = ctx->family;
  key.prefixlen = LPM_BASELINE_FULL_LENGTH;
  key.protocol = (__u8)ctx->protocol;
  key.port = (__u16)ctx->local_port;
  if (family == AF_INET) {
    key.addr[2] = bpf_htonl(0xffff);
    key.addr[3] = ctx->local_ip4;
    /* Keeps clang from hoisting the ctx field's address out of the branch (the verifier
     * refuses loads through an offset ctx pointer). */
    asm volatile("" ::: "memory");
  } else {
    key.addr[0] = ctx->local_ip6[0];
    key.addr[1] = ctx->local_ip6[1];
    key.addr[2] = ctx->local_ip6[2];
    key.addr[3] = ctx->local_ip6[3];
    asm volatile("" ::: "memory");
  }

  struct lpm_baseline_value* binding = bpf_map_lookup_elem(&bindings, &key);
  key.port = 0;
  struct lpm_baseline_value* all_ports = bpf_map_lookup_elem(&bindings, &key);
  if (!binding || (all_ports && all_ports->prefixlen > binding->prefixlen)) binding = all_ports;
  if (!binding) return SK_PASS;

  __u32 destination = binding->destination;
  __u64* count = bpf_map_lookup_elem(&lookups, &destination);
  if (count) *count += 1;
  struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &destination);
  if (!sk) return SK_DROP;
  long error = bpf_sk_assign(ctx, sk, 0);
  bpf_sk_release(sk);
  return error ? SK_DROP : SK_PASS;
}
