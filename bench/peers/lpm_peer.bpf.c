/* A stand-in for cloudflare/tubular's sk_lookup program, written for steer's benchmark from
 * tubular's documented behaviour and map layout (bench/peers/README.md says what it
 * reproduces, how it was checked against tubular, and why each step is here). steer never
 * uses it.
 *
 * Per packet: the (protocol, port, address) key, IPv4 mapped into IPv6; one trie lookup for
 * the packet's port and one for "every port"; the longer match wins; that destination's
 * per-CPU counters; its socket from a SOCKMAP; bpf_sk_assign. A match whose destination has no
 * usable socket is dropped, so that nothing else bound to the address takes it. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lpm_peer.h"

#define PEER_AF_INET 2
#define PEER_AF_INET6 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, LPM_PEER_BINDINGS);
  __type(key, struct lpm_peer_key);
  __type(value, struct lpm_peer_binding);
} peer_trie SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, LPM_PEER_DESTINATIONS);
  __type(key, __u32);
  __type(value, __u64);
} peer_sockets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LPM_PEER_DESTINATIONS);
  __type(key, __u32);
  __type(value, struct lpm_peer_counters);
} peer_counters SEC(".maps");

/* Only the benchmark's control plane touches it; here so that one object holds all four. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LPM_PEER_DESTINATIONS);
  __type(key, struct lpm_peer_destination);
  __type(value, struct lpm_peer_allocation);
} peer_dests SEC(".maps");

SEC("sk_lookup")
int lpm_peer(struct bpf_sk_lookup *ctx)
{
  /* The key is packed (23 bytes), so clang writes it a byte at a time, as tubular's does. */
  __u32 a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  __u32 family = ctx->family;
  switch (family) {
  case PEER_AF_INET: /* ::ffff:a.b.c.d */
    a2 = bpf_htonl(0x0000ffff);
    a3 = ctx->local_ip4;
    break;
  case PEER_AF_INET6:
    a0 = ctx->local_ip6[0];
    a1 = ctx->local_ip6[1];
    a2 = ctx->local_ip6[2];
    a3 = ctx->local_ip6[3];
    break;
  }
  struct lpm_peer_key key = {
      .prefixlen = LPM_PEER_FULL_BITS,
      .protocol = ctx->protocol,
      .port = ctx->local_port,
      .addr = {a0, a1, a2, a3},
  };

  const struct lpm_peer_binding *on_port = bpf_map_lookup_elem(&peer_trie, &key);
  key.port = LPM_PEER_ALL_PORTS;
  const struct lpm_peer_binding *on_all = bpf_map_lookup_elem(&peer_trie, &key);
  /* A tie goes to the binding of the packet's own port. */
  const struct lpm_peer_binding *match = on_port;
  if (!match || (on_all && on_all->prefixlen > match->prefixlen))
    match = on_all;
  if (!match)
    return SK_PASS; /* not ours: the kernel's own socket lookup runs */

  /* A per-CPU array holds every index below max_entries, so this fails only for an id out of
   * range, which the socket map (as large) would not hold either. */
  struct lpm_peer_counters *counters = bpf_map_lookup_elem(&peer_counters, &match->destination);
  if (!counters)
    return SK_DROP;
  counters->lookups += 1;

  /* The lookup takes a reference on the socket (bpf_sk_assign takes its own): released on
   * every path that has one. */
  int verdict = SK_DROP;
  struct bpf_sock *sk = bpf_map_lookup_elem(&peer_sockets, &match->destination);
  if (sk) {
    int error = bpf_sk_assign(ctx, sk, 0);
    if (error)
      counters->bad_socket += 1; /* wrong family or protocol for the binding */
    else
      verdict = SK_PASS;
    bpf_sk_release(sk);
  } else {
    counters->misses += 1; /* the service is down: hold its addresses anyway */
  }
  return verdict;
}
