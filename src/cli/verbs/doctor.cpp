// steer doctor: what this kernel and this process can do, probed for real.
#include <nlohmann/json.hpp>

#include "report/render.h"
#include "report/table.h"
#include "cli/verbs.h"
#include "core/doctor.h"

namespace steer::cli {

void add_doctor_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("doctor", "Check that this kernel and user can run steer");
  verb->footer(
      "Each check runs for real (maps created, programs loaded and attached) in a throw-away\n"
      "network namespace; nothing is left behind and the host's own namespace is not touched.\n"
      "Exit status: 0 when every check passes, 1 otherwise.\n\n"
      "Examples:\n"
      "  steer doctor          # a table, one line a check\n"
      "  steer doctor --json   # for scripts: {\"ok\": true, \"checks\": [...]}");
  verb->callback([&globals, run] {
    auto report = core::run_doctor({.bpffs = globals.bpffs});
    if (globals.json) {
      nlohmann::json out{{"ok", report.all_ok()}, {"checks", nlohmann::json::array()}};
      for (const auto& check : report.checks)
        out["checks"].push_back({{"name", check.name},
                                 {"status", check.ok ? "OK" : "MISSING"},
                                 {"detail", check.detail},
                                 {"needed_for", check.needed_for},
                                 {"fix", check.fix}});
      fmt::print("{}\n", json_text(out));
    } else {
      Table table({"CHECK", "STATUS", "DETAIL"});
      for (const auto& check : report.checks) {
        std::string detail = check.detail;
        if (!check.ok) detail += fmt::format(" -- breaks: {}", check.needed_for);
        if (!check.fix.empty()) detail += fmt::format(" -- {}", check.fix);
        table.add_row({check.name, check.ok ? "OK" : "MISSING", detail});
      }
      fmt::print("{}", table.render());
      fmt::print("{}\n", report.all_ok() ? "steer can run here."
                                         : "steer cannot fully run here: see MISSING above.");
    }
    run(Outcome{report.all_ok() ? 0 : 1});
  });
}

}  // namespace steer::cli
