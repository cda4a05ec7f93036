#include "bpf/sync.h"

#include <bpf/bpf.h>

#include "base/fd.h"

namespace steer::bpf {

Result<void> wait_for_running_programs() {
  Fd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "steer_rcu_inner", 4, 4, 1, nullptr));
  if (!inner) return fail_errno("create a map to wait for running BPF programs");
  LIBBPF_OPTS(bpf_map_create_opts, options, .inner_map_fd = static_cast<__u32>(inner.get()));
  Fd outer(bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "steer_rcu_outer", 4, 4, 1, &options));
  if (!outer) return fail_errno("create a map-in-map to wait for running BPF programs");
  uint32_t key = 0, value = static_cast<uint32_t>(inner.get());
  if (bpf_map_update_elem(outer.get(), &key, &value, BPF_ANY) != 0)  // synchronize_rcu()
    return fail_errno("wait for running BPF programs (map-in-map update)");
  return {};
}

}  // namespace steer::bpf
