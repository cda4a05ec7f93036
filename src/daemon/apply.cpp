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
  bool differs = false, found = false;
  for (const auto& destination : STEER_TRY(dispatcher.destinations())) {
    if (destination.label != service.label) continue;
    found = true;
    differs = differs || destination.policy != static_cast<uint32_t>(*service.policy);
  }
  if (!found || !differs) return std::string();
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

Result<ApplyReport> apply_config(const DaemonConfig& config) {
  ApplyReport report;
  auto target = target_of(config);
  auto opened = core::Dispatcher::open(target, core::LockMode::Exclusive);
  if (!opened && opened.error().code == ENOENT) {
    STEER_TRY(core::State::load(target, {}));
    report.loaded = true;
    report.changes.push_back("loaded the dispatcher");
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
      report.changes.push_back(fmt::format("bindings: {} added, {} removed, {} in all", added,
                                           removed, config.bindings.size()));
    }
  }
  for (const auto& [label, service] : config.services) {
    auto line = STEER_TRY(set_policy_if_needed(dispatcher, service));
    if (!line.empty()) report.changes.push_back(line);
  }
  return report;
}

Result<void> apply_service_policy(const DaemonConfig& config, const std::string& label) {
  auto service = config.services.find(label);
  if (service == config.services.end() || !service->second.policy) return {};
  auto dispatcher = STEER_TRY(core::Dispatcher::open(target_of(config), core::LockMode::Exclusive));
  STEER_TRY(set_policy_if_needed(dispatcher, service->second));
  return {};
}

}  // namespace steer::daemon
