// steer version
#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>

#include "report/render.h"
#include "cli/verbs.h"
#include "base/version.h"

namespace steer::cli {

void add_version_verb(CLI::App& app, const GlobalOptions& globals, const VerbRunner& run) {
  auto* verb = app.add_subcommand("version", "Print steer's version and the libbpf it uses");
  verb->callback([&globals, run] {
    if (globals.json)
      fmt::print("{}\n", json_text({{"version", kSteerVersionString},
                                     {"libbpf", libbpf_version_string()}}));
    else
      fmt::print("steer {} (libbpf {})\n", kSteerVersionString, libbpf_version_string());
    run(Outcome{0});
  });
}

}  // namespace steer::cli
