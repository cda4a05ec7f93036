#include "daemon/requests.h"

#include "core/dispatcher.h"
#include "daemon/apply.h"
#include "report/render.h"

namespace steer::daemon {
namespace {

using control::Op;
using control::Request;

std::string peer_text(const control::PeerCredentials& peer) {
  return fmt::format("pid {} uid {} gid {}", peer.pid, peer.uid, peer.gid);
}

Result<void> check_allowed(const DaemonConfig& config, const control::PeerCredentials& peer,
                           const Request& request) {
  if (request.op == Op::Status) return {};
  if (config.allows(request.label, peer.uid, peer.gid, peer.groups)) return {};
  if (!config.services.count(request.label))
    return fail(EPERM, "uid {} may not {} sockets of label '{}': steerd's config ({}) has no "
                       "[service.{}] that allows it (add one with allow_uids = [{}])",
                peer.uid, control::op_name(request.op), report::printable(request.label),
                config.source, report::printable(request.label), peer.uid);
  return fail(EPERM, "uid {} (gid {}) may not {} sockets of label '{}': add it to allow_uids "
                     "or one of its groups to allow_gids of [service.{}] in {}",
              peer.uid, peer.gid, control::op_name(request.op), report::printable(request.label),
              report::printable(request.label), config.source);
}

core::SocketFilter filter_of(const Request& request) {
  core::SocketFilter filter;
  filter.cookie = request.cookie;
  if (request.pid) filter.pid = *request.pid;
  filter.generation = request.generation;
  return filter;
}

Result<nlohmann::json> register_sockets(const DaemonConfig& config,
                                        const control::PeerCredentials& peer,
                                        const Request& request, const std::vector<Fd>& fds) {
  auto service = config.services.find(request.label);
  bool reuseport = request.reuseport ||
                   (service != config.services.end() && service->second.reuseport);
  std::vector<int> raw;
  std::vector<std::string> names;  // errors name the request's sockets, not steerd's fds
  for (const auto& fd : fds) {
    raw.push_back(fd.get());
    names.push_back(fmt::format("socket #{} of the request", names.size() + 1));
  }
  auto dispatcher = STEER_TRY(
      core::Dispatcher::open(target_of(config), core::LockMode::Exclusive));
  std::optional<uint32_t> generation = request.generation;
  if (request.next_generation)
    generation = STEER_TRY(dispatcher.newest_generation(request.label)) + 1;
  core::Owner owner = core::Owner::of_process(peer.pid);
  owner.uid = peer.uid;
  auto registered = STEER_TRY(dispatcher.register_sockets(
      request.label, raw, owner,
      {.generation = generation,
       .weight = service != config.services.end() ? service->second.weight : 1,
       .reuseport = reuseport,
       .names = names}));
  nlohmann::json result{{"label", request.label}, {"registered", nlohmann::json::array()}};
  for (const auto& socket : registered) result["registered"].push_back(report::to_json(socket));
  result["generation"] = registered.empty() ? 0 : registered.front().generation;
  if (reuseport) {
    auto attached = dispatcher.attach_reuseport(request.label, raw, /*replace=*/false);
    if (!attached)
      return fail(attached.error().code, "registered, but not attached to the reuseport "
                                         "group: {}", attached.error().message);
    result["reuseport_groups"] = nlohmann::json::array();
    for (const auto& group : *attached) result["reuseport_groups"].push_back(report::to_json(group));
  }
  STEER_TRY(apply_service_policy(dispatcher, config, request.label));
  return result;
}

Result<nlohmann::json> run_request(const DaemonConfig& config, const control::PeerCredentials& peer,
                                   const Request& request, const std::vector<Fd>& fds) {
  STEER_TRY(check_allowed(config, peer, request));
  if (request.op == Op::Register) return register_sockets(config, peer, request, fds);
  auto mode = request.op == Op::Status ? core::LockMode::Shared : core::LockMode::Exclusive;
  auto dispatcher = STEER_TRY(core::Dispatcher::open(target_of(config), mode));
  auto filter = filter_of(request);
  nlohmann::json result{{"label", request.label}};
  switch (request.op) {
    case Op::Unregister:
      result["unregistered"] = STEER_TRY(dispatcher.unregister(request.label, filter));
      break;
    case Op::Drain:
      result["drained"] = STEER_TRY(dispatcher.drain(request.label, filter));
      break;
    case Op::Undrain:
      result["undrained"] = STEER_TRY(dispatcher.undrain(request.label, filter));
      break;
    case Op::Weight:
      result["changed"] = STEER_TRY(dispatcher.set_weight(request.label, filter, *request.weight));
      break;
    case Op::Promote: {
      auto promotion = STEER_TRY(dispatcher.promote(request.label, *request.generation));
      result["generation"] = *request.generation;
      result["promoted"] = promotion.promoted;
      result["drained"] = promotion.drained;
      break;
    }
    case Op::Status:
      return report::status_json(STEER_TRY(dispatcher.status(request.label, 0)));
    case Op::Register:
      break;
  }
  return result;
}

}  // namespace

Handled handle_request(const DaemonConfig& config, const control::PeerCredentials& peer,
                       const control::Request& request, std::vector<Fd> fds) {
  auto result = run_request(config, peer, request, fds);
  std::string what = fmt::format("{} {}{}", peer_text(peer), control::op_name(request.op),
                                 request.label.empty() ? "" : " '" + report::printable(request.label) + "'");
  if (!result)
    return {control::error_reply(request.id, result.error()),
            fmt::format("refused: {}: {}", what, result.error().message)};
  return {control::Reply{.id = request.id, .ok = true, .error_code = {}, .error_message = {},
                         .result = std::move(*result)},
          fmt::format("done: {}", what)};
}

}  // namespace steer::daemon
