// Where libbpf's messages go: kept quiet unless asked, so probes that are expected to fail
// (the verifier refusing a program, say) do not flood the terminal.
#pragma once

#include <string>

namespace steer::bpf {

enum class LibbpfLog { Quiet, Warnings, Debug };

void set_libbpf_log(LibbpfLog level);
// The last warning libbpf printed on this thread (verifier logs included), for error messages.
std::string last_libbpf_warning();

}  // namespace steer::bpf
