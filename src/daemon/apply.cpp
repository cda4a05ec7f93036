#include "daemon/apply.h"

#include <set>

#include "core/dispatcher.h"
#include "core/policy.h"

namespace steer::daemon {
namespace {

std::string binding_text(const core::Binding& binding) {
  return fmt::format("{} {} {} {}", binding.label, core::to_string(binding.protocol),
                     binding.prefix.to_string(), binding.ports.to_string());
}

// Sets the policy of the label's destinations when one of them has another; returns the line
// for the report, or "" when nothing changed.
Result<std::string> set_policy_if_needed(core::Dispatcher& dispatcher, const ServiceConfig& service) {
  if (!service.policy) return std::string();
  bool differs = false;  // a label with no destination yet has nothing to set
  for (const auto& destination : STEER_TRY(dispatcher.destinations()))
    differs = differs || (destination.label == service.label &&
                          destination.policy != static_cast<uint32_t>(*service.policy));
  if (!differs) return std::string();
  STEER_TRY(dispatcher.set_policy(service.label, *service.policy));
  return fmt::format("policy of '{}': {}", service.label, core::policy_name(*service.policy));
}

}  // namespace

core::Target target_of(const DaemonConfig& config) {
  core::Target target;
  target.bpffs = config.bpffs;
  target.netns_path = config.netns;
  return target;
}

Result<std::vector<std::string>> apply_config(const DaemonConfig& config) {
  std::vector<std::string> changes;
  auto target = target_of(config);
  auto opened = core::Dispatcher::open(target, core::LockMode::Exclusive);
  if (!opened && opened.error().code == ENOENT) {
    STEER_TRY(core::State::load(target, {}));
    changes.push_back("loaded the dispatcher");
    opened = core::Dispatcher::open(target, core::LockMode::Exclusive);
  }
  if (!opened) return std::unexpected(opened.error());
  auto& dispatcher = *opened;
  if (config.manages_bindings) {
    std::set<std::string> wanted, loaded;
    for (const auto& binding : config.bindings) wanted.insert(binding_text(binding));
    for (const auto& bound : STEER_TRY(dispatcher.bindings()))
      loaded.insert(binding_text(bound.binding));
    size_t added = 0, removed = 0;
    for (const auto& text : wanted) added += !loaded.count(text);
    for (const auto& text : loaded) removed += !wanted.count(text);
    if (added + removed != 0) {
      STEER_TRY(dispatcher.replace_bindings(config.bindings));
      changes.push_back(fmt::format("bindings: {} added, {} removed, {} in all", added,
                                           removed, config.bindings.size()));
    }
  }
  for (const auto& [label, service] : config.services) {
    auto line = STEER_TRY(set_policy_if_needed(dispatcher, service));
    if (!line.empty()) changes.push_back(line);
  }
  return changes;
}

Result<void> apply_service_policy(core::Dispatcher& dispatcher, const DaemonConfig& config,
                                  const std::string& label) {
  auto service = config.services.find(label);
  if (service == config.services.end()) return {};
  STEER_TRY(set_policy_if_needed(dispatcher, service->second));
  return {};
}

}  // namespace steer::daemon
