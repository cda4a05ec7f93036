// The benchmarks of `make bench`. Each runs in its own fresh network namespace and private
// bpffs, and returns its part of the report (Markdown).
#pragma once

#include <string>

namespace steer::bench {

struct Options {
  std::string steer_binary;  // the CLI, for load-bindings
  bool quick = false;        // small sizes only: a smoke run of every benchmark
};

std::string lookup_bench(const Options& options);      // dispatcher, BPF_PROG_TEST_RUN
std::string peer_bench(const Options& options);        // steer vs tubular-like (bench/peers/)
std::string pool_bench(const Options& options);        // SOCKMAP vs SOCKHASH pool lookups
std::string run_time_bench(const Options& options);    // BPF_ENABLE_STATS under real connects
std::string connect_rate_bench(const Options& options);  // connections/s, steer vs direct
std::string load_bindings_bench(const Options& options);  // `steer load-bindings` of 1M
// Reuseport groups and policies (groups_bench.cpp), with real connections.
std::string balance_bench(const Options& options);       // max/mean per socket, per policy
std::string tail_latency_bench(const Options& options);  // one slow worker of 4
std::string restarts_bench(const Options& options);      // lost while restarting every second
std::string program_cost_bench(const Options& options);  // reuseport and sockops programs

}  // namespace steer::bench
