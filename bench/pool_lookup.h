/* Sizes of bench/pool_lookup.bpf.c, shared with the benchmark. */
#ifndef STEER_BENCH_POOL_LOOKUP_H
#define STEER_BENCH_POOL_LOOKUP_H

#include "abi/steer_abi.h"

#define POOL_LOOKUP_MAX_ENTRIES STEER_SOCKET_KEYS /* as the dispatcher's `sockets` map */
#define POOL_LOOKUPS_PER_RUN 16
#define POOL_LOOKUP_STRIDE 37

#endif
