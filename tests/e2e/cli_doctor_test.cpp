// `steer doctor` and the CLI's basics, run as a user runs them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/kernel_test.h"
#include "support/process.h"
#include "support/steer_cli.h"

namespace steer::testing {
namespace {

class CliDoctor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "doctor's probes need root";
  }
};

// Every check passes on this machine, and the table names each of them.
TEST_F(CliDoctor, ReportsEveryCheckOkAndExitsZero) {
  auto result = run_steer({.args = {"doctor"}});
  EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
  for (const char* name :
       {"kernel version", "bpf filesystem", "capabilities", "SOCKMAP holds TCP listeners",
        "SOCKMAP holds UDP sockets", "SOCKHASH holds TCP listeners", "SOCKHASH holds UDP sockets",
        "sk_lookup attached to a netns", "sk_reuseport selects from SOCKHASH",
        "SELECT_OR_MIGRATE on close", "BPF_PROG_TEST_RUN for sk_lookup",
        "sockops attached to a cgroup"})
    EXPECT_NE(result.out.find(name), std::string::npos) << "missing check: " << name;
  EXPECT_EQ(result.out.find("MISSING"), std::string::npos) << result.out;
}

TEST_F(CliDoctor, JsonListsChecksWithStatus) {
  auto result = run_steer({.args = {"doctor"}, .json = true});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  auto report = nlohmann::json::parse(result.out);
  EXPECT_TRUE(report.at("ok").get<bool>());
  ASSERT_GE(report.at("checks").size(), 12u);
  for (const auto& check : report.at("checks")) {
    EXPECT_EQ(check.at("status"), "OK") << check.dump();
    EXPECT_FALSE(check.at("detail").get<std::string>().empty()) << check.dump();
  }
}

// The probes leave nothing behind: no cgroup, and no link in the caller's namespace (the
// test runs doctor from a fresh namespace of its own, so any link there would be doctor's).
class CliDoctorInFreshNetns : public KernelTest {};

TEST_F(CliDoctorInFreshNetns, LeavesNothingInTheCallersNamespace) {
  ASSERT_EQ(run_steer({.args = {"doctor"}}).exit_code, 0);
  struct stat own {};
  ASSERT_EQ(::stat("/proc/thread-self/ns/net", &own), 0);
  auto links = run_command({"bpftool", "--json", "link", "show"});
  ASSERT_EQ(links.exit_code, 0) << links.err;
  for (const auto& link : nlohmann::json::parse(links.out))
    EXPECT_NE(link.value("netns_ino", uint64_t{0}), static_cast<uint64_t>(own.st_ino))
        << "a link in the caller's namespace: " << link.dump();
  auto cgroups = run_command({"sh", "-c", "ls -d /sys/fs/cgroup/unified/steer-doctor-* "
                                          "/sys/fs/cgroup/steer-doctor-* 2>/dev/null | wc -l"});
  EXPECT_EQ(cgroups.out, "0\n");
}

TEST(Cli, UnknownVerbIsAUsageError) {
  auto result = run_steer({.args = {"frobnicate"}});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("frobnicate"), std::string::npos) << result.err;
}

TEST(Cli, NoVerbPrintsHelpAndFails) {
  auto result = run_steer({});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE((result.out + result.err).find("doctor"), std::string::npos);
}

TEST(Cli, HelpTeachesWithExamples) {
  auto result = run_steer({.args = {"doctor", "--help"}});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("Examples:"), std::string::npos) << result.out;
}

TEST(Cli, VersionPrintsTheProjectVersion) {
  auto result = run_steer({.args = {"version"}});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("steer 0."), std::string::npos) << result.out;
  auto json = run_steer({.args = {"version"}, .json = true});
  EXPECT_EQ(nlohmann::json::parse(json.out).at("version").get<std::string>().substr(0, 2), "0.");
}

}  // namespace
}  // namespace steer::testing
