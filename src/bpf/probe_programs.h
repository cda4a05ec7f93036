// The probe programs (src/bpf/programs/probe_*.bpf.c) as typed skeletons.
#pragma once

#include "abi/steer_abi.h"
#include "bpf/skeleton.h"
#include "probe_map_update.skel.h"
#include "probe_reuseport.skel.h"
#include "probe_sk_lookup.skel.h"
#include "probe_sk_msg.skel.h"
#include "probe_sockops.skel.h"

namespace steer::bpf {

using ProbeSkLookup = Skeleton<probe_sk_lookup>;
using ProbeReuseport = Skeleton<probe_reuseport>;
using ProbeSkMsg = Skeleton<probe_sk_msg>;
using ProbeSockops = Skeleton<probe_sockops>;
using ProbeMapUpdate = Skeleton<probe_map_update>;

// The ABI is shared with BPF; these catch a change that would break old pinned state.
static_assert(sizeof(steer_probe_lookup_config) == 40);
static_assert(sizeof(steer_probe_lookup_result) == 48);
static_assert(sizeof(steer_probe_reuseport_config) == 24);
static_assert(sizeof(steer_probe_reuseport_result) == 72);
static_assert(sizeof(steer_probe_msg_result) == 16);
static_assert(sizeof(steer_probe_sockops_result) == 24);
static_assert(sizeof(steer_probe_map_update_result) == 16);

}  // namespace steer::bpf
