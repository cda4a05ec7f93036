/* The pool lookup alone, for choosing the socket map of the dispatcher's pools: the same
 * keys looked up in a SOCKMAP and in a SOCKHASH of the same size and contents, one lookup
 * or POOL_LOOKUPS_PER_RUN lookups per run (bpf_map_lookup_elem + bpf_sk_release), plus an
 * empty program to subtract BPF_PROG_TEST_RUN's own overhead. The first key is the lookup's
 * local port; the keys of one run are spread over the pool by a fixed stride. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "pool_lookup.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, POOL_LOOKUP_MAX_ENTRIES);
  __type(key, __u32);
  __type(value, __u64);
} pool_sockmap SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, POOL_LOOKUP_MAX_ENTRIES);
  __type(key, __u32);
  __type(value, __u64);
} pool_sockhash SEC(".maps");

/* How many keys are filled (0..sockets-1); set by the benchmark before each run. */
volatile __u32 sockets;
volatile __u32 found;

static __always_inline int lookup_once(void* map, __u32 key) {
  struct bpf_sock* sk = bpf_map_lookup_elem(map, &key);
  if (!sk) return 0;
  bpf_sk_release(sk);
  return 1;
}

static __always_inline int lookup_many(void* map, __u32 first) {
  __u32 count = sockets;
  if (count == 0) return SK_PASS;
  __u32 hits = 0;
  for (__u32 i = 0; i < POOL_LOOKUPS_PER_RUN; i++)
    hits += lookup_once(map, (first + i * POOL_LOOKUP_STRIDE) % count);
  found = hits;
  return SK_PASS;
}

SEC("sk_lookup")
int empty(struct bpf_sk_lookup* ctx) { return SK_PASS; }

SEC("sk_lookup")
int sockmap_once(struct bpf_sk_lookup* ctx) {
  __u32 count = sockets;
  found = count ? lookup_once(&pool_sockmap, ctx->local_port % count) : 0;
  return SK_PASS;
}

SEC("sk_lookup")
int sockhash_once(struct bpf_sk_lookup* ctx) {
  __u32 count = sockets;
  found = count ? lookup_once(&pool_sockhash, ctx->local_port % count) : 0;
  return SK_PASS;
}

SEC("sk_lookup")
int sockmap_many(struct bpf_sk_lookup* ctx) { return lookup_many(&pool_sockmap, ctx->local_port); }

SEC("sk_lookup")
int sockhash_many(struct bpf_sk_lookup* ctx) { return lookup_many(&pool_sockhash, ctx->local_port); }
