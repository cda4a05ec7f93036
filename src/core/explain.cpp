// steer explain: the explain build of the dispatcher (the same source, compiled with
// -DSTEER_EXPLAIN) run on a made-up lookup with BPF_PROG_TEST_RUN over the pinned maps.
#include "bpf/test_run.h"
#include "core/dispatcher_internal.h"

namespace steer::core {

Result<Explanation> Dispatcher::explain(Protocol protocol, const SocketAddress& source,
                                        const SocketAddress& destination_address) {
  if (source.family() != destination_address.family())
    return fail(EINVAL, "{} and {} are of different families: give two IPv4 or two IPv6 "
                        "addresses", source.to_string(), destination_address.to_string());
  auto* program = STEER_TRY(explain_program());
  STEER_TRY(bpf::store_single((*program)->maps.explain, steer_explain{}));
  auto context = bpf::make_sk_lookup_context(static_cast<int>(protocol), source, destination_address);
  auto run = STEER_TRY(bpf::test_run_sk_lookup(bpf_program__fd((*program)->progs.steer_dispatch), context));
  auto record = STEER_TRY(bpf::load_single<steer_explain>((*program)->maps.explain));

  Explanation explanation;
  explanation.verdict = run.verdict;
  explanation.record = record;
  explanation.steered = record.outcome != STEER_EXPLAIN_NO_BINDING;
  if (!explanation.steered) return explanation;
  auto matched = this->destination(record.destination);
  if (matched) {
    explanation.destination = *matched;
    Prefix prefix;
    prefix.family = destination_address.family();
    prefix.length = record.prefix_len;
    if (prefix.family == AF_INET)
      std::memcpy(prefix.bytes.data(), &reinterpret_cast<const sockaddr_in*>(destination_address.data())->sin_addr, 4);
    else
      std::memcpy(prefix.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(destination_address.data())->sin6_addr, 16);
    for (int bit = prefix.length; bit < prefix.max_length(); ++bit)
      prefix.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    PortRange ports = record.matched_range ? PortRange{record.range_first, record.range_last}
                                            : PortRange{destination_address.port(), destination_address.port()};
    explanation.binding = BoundBinding{Binding{matched->label, protocol, prefix, ports}, matched->id};
  }
  auto pooled = sockets(record.destination);
  if (pooled) explanation.pool_sockets = pooled->size();
  if (record.outcome == STEER_EXPLAIN_SELECTED || record.outcome == STEER_EXPLAIN_ASSIGN_FAILED) {
    if (pooled)
      for (const auto& socket : *pooled)
        if (socket.slot == record.slot) explanation.socket = socket;
    // The kernel's own word on what was selected (ctx_out's cookie), not only the program's.
    explanation.record.cookie = run.selected_cookie;
  }
  return explanation;
}

}  // namespace steer::core
