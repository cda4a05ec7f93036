/* Maps every probe program has: a SOCKMAP and a SOCKHASH (u32 keys) of the sockets under
 * test, so one program can be pointed at either map by its config. */
#ifndef STEER_PROBE_MAPS_BPF_H
#define STEER_PROBE_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "abi/steer_abi.h"

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, STEER_PROBE_MAP_ENTRIES);
  __type(key, __u32);
  __type(value, __u64);
} probe_sockmap SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, STEER_PROBE_MAP_ENTRIES);
  __type(key, __u32);
  __type(value, __u64);
} probe_sockhash SEC(".maps");

static __always_inline void* probe_map(__u32 kind) {
  return kind == STEER_PROBE_SOCKHASH ? (void*)&probe_sockhash : (void*)&probe_sockmap;
}

#define STEER_ONE_ENTRY_ARRAY(name, value_type) \
  struct {                                      \
    __uint(type, BPF_MAP_TYPE_ARRAY);           \
    __uint(max_entries, 1);                     \
    __type(key, __u32);                         \
    __type(value, value_type);                  \
  } name SEC(".maps")

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif
