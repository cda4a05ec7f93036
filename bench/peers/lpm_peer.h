/* Maps of bench/peers/lpm_peer.bpf.c, shared with the benchmark (peer_bench.cpp).
 *
 * The layouts are tubular's (bench/peers/README.md): the benchmark writes them the way
 * tubular's control plane does, and the program reads them the way tubular's does. Plain C,
 * so C++ includes it too. */
#ifndef STEER_BENCH_LPM_PEER_H
#define STEER_BENCH_LPM_PEER_H

#include <linux/types.h>

#define LPM_PEER_BINDINGS 1000000  /* trie entries (BPF_F_NO_PREALLOC) */
#define LPM_PEER_DESTINATIONS 1024 /* destination ids: sockets, counters, allocations */

/* The trie key: 23 bytes, no padding, native byte order except the address. */
#define LPM_PEER_HEADER_BITS 24 /* protocol (8) + port (16), always matched */
#define LPM_PEER_V4_MAPPED_BITS 96 /* an IPv4 prefix sits behind ::ffff: */
#define LPM_PEER_FULL_BITS (LPM_PEER_HEADER_BITS + 128)
#define LPM_PEER_ALL_PORTS 0

struct lpm_peer_key {
  __u32 prefixlen; /* LPM_PEER_HEADER_BITS + the prefix (IPv4: + LPM_PEER_V4_MAPPED_BITS) */
  __u8 protocol;   /* IPPROTO_TCP / IPPROTO_UDP */
  __u16 port;      /* host order; LPM_PEER_ALL_PORTS: every port */
  __u32 addr[4];   /* network order; IPv4 as ::ffff:a.b.c.d */
} __attribute__((packed));

struct lpm_peer_binding {
  __u32 destination; /* index into the socket map and the counters */
  __u32 prefixlen;   /* the key's: the longer of the two matches wins */
};

/* Per CPU, per destination. */
struct lpm_peer_counters {
  __u64 lookups;    /* a binding matched */
  __u64 misses;     /* ... but its destination has no socket */
  __u64 bad_socket; /* ... and bpf_sk_assign refused the socket */
};

/* The control plane's destinations (the program never reads them): a service label, NUL
 * padded, and the socket's domain and protocol map to an id and a reference count. */
struct lpm_peer_destination {
  char label[255];
  __u8 domain;
  __u8 protocol;
};

struct lpm_peer_allocation {
  __u32 destination;
  __u32 references; /* bindings that name the destination */
};

#endif
