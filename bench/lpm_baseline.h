/* Map layout of bench/lpm_baseline.bpf.c, shared with the benchmark. */
#ifndef STEER_BENCH_LPM_BASELINE_H
#define STEER_BENCH_LPM_BASELINE_H

#include <linux/types.h>

#define LPM_BASELINE_MAX_ENTRIES (1 << 20) /* as the peer sizes its trie */
#define LPM_BASELINE_DESTINATIONS 1024
/* Bits before the address: protocol (8), pad (8), port (16). */
#define LPM_BASELINE_HEADER_BITS 32
#define LPM_BASELINE_FULL_LENGTH (LPM_BASELINE_HEADER_BITS + 128)

struct lpm_baseline_key {
  __u32 prefixlen; /* LPM_BASELINE_HEADER_BITS + address prefix (IPv4: + 96, mapped) */
  __u8 protocol;
  __u8 pad;
  __u16 port;      /* host order; 0 = all ports */
  __u32 addr[4];   /* network order */
};

struct lpm_baseline_value {
  __u32 destination;
  __u32 prefixlen; /* the binding's prefix length, to compare the two lookups */
};

#endif
