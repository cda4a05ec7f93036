// The pinned state as the issue promises it: atomic creation, permissions, leftovers of a
// killed command repaired by the next one, and an all-or-nothing load-bindings.
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "abi/steer_abi.h"
#include "bpf/map.h"
#include "core/binding.h"
#include "support/kernel_test.h"
#include "support/steer_cli.h"

extern char** environ;

namespace steer::testing {
namespace {

class State : public KernelTest {
 protected:
  CommandResult steer(const std::vector<std::string>& args) { return run_steer(bpffs(), args); }
  nlohmann::json steer_json(const std::vector<std::string>& args) {
    return ::steer::testing::steer_json({.bpffs = bpffs(), .args = args});
  }
  std::string state_dir() {
    struct stat st {};
    ::stat("/proc/thread-self/ns/net", &st);
    return fmt::format("{}/steer/{}", bpffs(), st.st_ino);
  }
  std::string write_file(const std::string& name, const std::string& content) {
    std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << content;
    return path;
  }
};

TEST_F(State, DirectoriesAndPinsAreNotWorldAccessible) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  struct stat st {};
  ASSERT_EQ(::stat((bpffs() + "/steer").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::stat(state_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  for (const char* pin : {"meta", "control", "sockets", "link", "port_bindings_0", "slots"}) {
    ASSERT_EQ(::stat((state_dir() + "/" + pin).c_str(), &st), 0) << pin;
    EXPECT_EQ(st.st_mode & 07777, 0640u) << pin;
  }
}

// A load killed before its rename leaves tmp-<inode>-<pid>: invisible, and removed by the
// next load.
TEST_F(State, LeftoversOfAKilledLoadAreInvisibleAndCleaned) {
  ASSERT_EQ(::mkdir((bpffs() + "/steer").c_str(), 0750), 0);
  struct stat ns {};
  ::stat("/proc/thread-self/ns/net", &ns);
  std::string leftover = fmt::format("{}/steer/tmp-{}-999999", bpffs(), ns.st_ino);
  ASSERT_EQ(::mkdir(leftover.c_str(), 0750), 0);
  STEER_ASSERT_OK_AND_ASSIGN(auto map, bpf::Map::create(BPF_MAP_TYPE_ARRAY, "leftover", 4, 4, 1));
  STEER_ASSERT_OK(map.pin(leftover + "/control"));

  auto status = steer({"status"});
  EXPECT_NE(status.exit_code, 0);
  EXPECT_NE(status.err.find("not loaded"), std::string::npos) << status.err;
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  struct stat st {};
  EXPECT_NE(::stat(leftover.c_str(), &st), 0) << "the leftover is still there";
  EXPECT_EQ(steer({"status"}).exit_code, 0);
}

// load-bindings killed after filling the idle set but before the flip: the live set is
// untouched, the leftovers are not seen, and the next load-bindings applies exactly its file.
TEST_F(State, InterruptedLoadBindingsLeavesTheOldSetLive) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "127.0.0.0/8", "80"}).exit_code, 0);
  // What a killed load-bindings leaves: entries in the idle copy (set 1).
  STEER_ASSERT_OK_AND_ASSIGN(auto idle, bpf::Map::open_pinned(state_dir() + "/port_bindings_1"));
  auto prefix = *core::Prefix::parse("10.0.0.0/8");
  auto key = core::binding_key(core::Protocol::Tcp, prefix, 443);
  steer_port_binding value{0, 0};
  STEER_ASSERT_OK(idle.update(&key, &value, bpf::UpdateMode::Any));

  auto listed = steer_json({"bindings"});
  ASSERT_EQ(listed["bindings"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["bindings"][0]["prefix"], "127.0.0.0/8");

  auto file = write_file("next.toml", R"([[binding]]
label = "api"
protocol = "udp"
prefix = "192.0.2.0/24"
ports = "53"
)");
  ASSERT_EQ(steer({"load-bindings", file}).exit_code, 0);
  listed = steer_json({"bindings"});
  ASSERT_EQ(listed["bindings"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["bindings"][0]["label"], "api");
  EXPECT_EQ(listed["bindings"][0]["prefix"], "192.0.2.0/24");
  EXPECT_EQ(steer_json({"status"})["binding_count"], 1);
}

TEST_F(State, LoadBindingsReplacesTheWholeSetAndCanBeRepeated) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "old", "tcp", "127.0.0.0/8", "80"}).exit_code, 0);
  std::string content;
  for (int i = 0; i < 300; ++i)
    content += fmt::format("[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"10.{}.{}.0/24\"\nports = \"{}\"\n\n",
                           i / 256, i % 256, 8000 + i % 3);
  content += "[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = \"10.0.0.0/8\"\nports = \"7000-7999\"\n";
  auto file = write_file("many.toml", content);
  for (int round = 0; round < 3; ++round) {
    auto loaded = steer({"load-bindings", file});
    ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
    auto status = steer_json({"status"});
    EXPECT_EQ(status["binding_count"], 301) << "round " << round;
    auto listed = steer_json({"bindings", "--label", "old"});
    EXPECT_TRUE(listed["bindings"].empty()) << listed.dump();
  }
  auto listed = steer_json({"bindings"});
  EXPECT_EQ(listed["bindings"].size(), 301u);
  // Most specific first: every /24 comes before the /8 range.
  EXPECT_EQ(listed["bindings"].back()["prefix"], "10.0.0.0/8");
}

// Schema 3: the program's first read is the port's mask of bound prefix lengths, so a lookup
// for a port nothing is bound to ends at once. After every kind of change the masks are
// exactly what the listed bindings imply: a missing bit would lose a binding's traffic, an
// extra one would cost every lookup of that port a probe.
TEST_F(State, PortMasksAreExactlyTheBoundLengthsAfterEveryChange) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  STEER_ASSERT_OK_AND_ASSIGN(auto masks, bpf::Map::open_pinned(state_dir() + "/port_masks"));
  // The masks `steer bindings` implies, computed here from the listing (not by steer's code).
  auto expected = [&] {
    std::map<uint32_t, steer_prefix_mask> wanted;
    auto listed = steer_json({"bindings"});  // held: a range-for over a temporary's member dangles
    for (const auto& binding : listed["bindings"]) {
      auto prefix = *core::Prefix::parse(binding["prefix"].get<std::string>());
      uint32_t family = prefix.family == AF_INET6 ? STEER_FAMILY_V6 : STEER_FAMILY_V4;
      uint32_t protocol = binding["protocol"] == "udp" ? STEER_PROTO_UDP : STEER_PROTO_TCP;
      std::string ports = binding["ports"];
      uint32_t first = 1, last = 65535;
      bool single = false;
      if (ports != "0") {
        auto dash = ports.find('-');
        first = std::stoul(ports.substr(0, dash));
        last = dash == std::string::npos ? first : std::stoul(ports.substr(dash + 1));
        single = dash == std::string::npos;
      }
      for (uint32_t port = first; port <= last; ++port) {
        auto& mask = wanted[steer_port_mask_key(family, protocol, port)];
        __u64* words = single ? mask.ports : mask.ranges;
        words[prefix.length / 64] |= 1ULL << (prefix.length % 64);
      }
    }
    return wanted;
  };
  auto check = [&](const std::string& after) {
    SCOPED_TRACE(after);
    auto wanted = expected();
    size_t wrong = 0, set = 0;
    for (uint32_t key = 0; key < STEER_PORT_MASK_KEYS; ++key) {
      steer_prefix_mask mask{};
      ASSERT_TRUE(masks.lookup(&key, &mask));
      auto found = wanted.find(key);
      steer_prefix_mask want = found == wanted.end() ? steer_prefix_mask{} : found->second;
      if (std::memcmp(&mask, &want, sizeof(mask)) != 0 && wrong++ < 3)
        ADD_FAILURE() << "port mask " << key << " (port " << key % STEER_PORTS << ") is "
                      << mask.ports[0] << "/" << mask.ranges[0] << ", expected " << want.ports[0]
                      << "/" << want.ranges[0];
      bool any = false;
      for (int word = 0; word < 3; ++word) any = any || mask.ports[word] || mask.ranges[word];
      set += any;
    }
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(set, wanted.size());
  };
  check("load");
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.0.0.0/8", "80"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.1.0.0/16", "80"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.2.0.0/16", "80"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.0.0.0/8", "7000-7999"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.0.0.0/8", "7100-7199"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "10.9.0.0/16", "7500-7600"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "dns", "udp", "2001:db8::/32", "0"}).exit_code, 0);
  check("binds of single ports, nested ranges and all ports");
  // One of two /16s on port 80 goes: its bit stays for the other.
  ASSERT_EQ(steer({"unbind", "web", "tcp", "10.1.0.0/16", "80"}).exit_code, 0);
  check("unbind of one of two");
  ASSERT_EQ(steer({"unbind", "web", "tcp", "10.2.0.0/16", "80"}).exit_code, 0);
  check("unbind of the last /16 on 80");
  // The outer range goes: the nested one keeps its ports' /8 bit.
  ASSERT_EQ(steer({"unbind", "web", "tcp", "10.0.0.0/8", "7000-7999"}).exit_code, 0);
  check("unbind of the outer range");
  ASSERT_EQ(steer({"unbind", "dns", "udp", "2001:db8::/32", "0"}).exit_code, 0);
  check("unbind of all ports");
  std::string content;
  for (int i = 0; i < 200; ++i)
    content += fmt::format("[[binding]]\nlabel = \"web\"\nprotocol = \"tcp\"\nprefix = "
                           "\"10.{}.{}.0/{}\"\nports = \"{}\"\n\n", i / 256, i % 256, 24 + i % 9,
                           i % 2 ? std::to_string(8000 + i % 5) : "9000-9100");
  ASSERT_EQ(steer({"load-bindings", write_file("masks.toml", content)}).exit_code, 0);
  check("load-bindings");
  ASSERT_EQ(steer({"load-bindings", "--allow-empty", write_file("none.toml", "")}).exit_code, 0);
  check("load-bindings of nothing");
}

// kill -9 at random moments of a load-bindings: every time, the next commands read a whole
// set, old or new (never a mix), and the next load-bindings completes.
TEST_F(State, KilledLoadBindingsLeavesTheOldOrTheNewSet) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  auto make_file = [&](const std::string& name, const std::string& label, int count) {
    std::string content;
    for (int i = 0; i < count; ++i)
      content += fmt::format("[[binding]]\nlabel = \"{}\"\nprotocol = \"tcp\"\nprefix = "
                             "\"10.{}.{}.0/24\"\nports = \"80\"\n\n",
                             label, i / 256, i % 256);
    return write_file(name, content);
  };
  auto old_file = make_file("old.toml", "old", 5000);
  auto new_file = make_file("new.toml", "new", 7000);
  ASSERT_EQ(steer({"load-bindings", old_file}).exit_code, 0);
  auto argv = steer_argv({.bpffs = bpffs(), .args = {"load-bindings", new_file}});
  std::vector<char*> args;
  for (auto& word : argv) args.push_back(word.data());
  args.push_back(nullptr);
  int killed_midway = 0;
  for (int round = 0; round < 8; ++round) {
    pid_t pid = 0;
    ASSERT_EQ(::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ), 0);
    ::usleep(10000 + round * 15000);  // a different moment each round
    ::kill(pid, SIGKILL);
    int wait_status = 0;
    ::waitpid(pid, &wait_status, 0);
    if (WIFSIGNALED(wait_status)) ++killed_midway;
    auto status = steer_json({"status"});
    int count = status["binding_count"];
    EXPECT_TRUE(count == 5000 || count == 7000) << "round " << round << ": " << count;
    auto listed = steer_json({"bindings"})["bindings"];
    ASSERT_EQ(static_cast<int>(listed.size()), count) << "round " << round;
    std::string label = count == 5000 ? "old" : "new";
    for (const auto& binding : listed) ASSERT_EQ(binding["label"], label) << "round " << round;
    // Back to the old set for the next round.
    ASSERT_EQ(steer({"load-bindings", old_file}).exit_code, 0) << "round " << round;
  }
  EXPECT_GT(killed_midway, 0) << "no round killed load-bindings while it ran";
  ASSERT_EQ(steer({"load-bindings", new_file}).exit_code, 0);
  EXPECT_EQ(steer_json({"status"})["binding_count"], 7000);
}

TEST_F(State, UnloadRemovesEverythingAndLoadWorksAgain) {
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  ASSERT_EQ(steer({"bind", "web", "tcp", "127.0.0.0/8", "80"}).exit_code, 0);
  ASSERT_EQ(steer({"unload"}).exit_code, 0);
  struct stat st {};
  EXPECT_NE(::stat(state_dir().c_str(), &st), 0);
  auto again = steer({"unload"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("nothing to unload"), std::string::npos) << again.err;
  ASSERT_EQ(steer({"load"}).exit_code, 0);
  EXPECT_EQ(steer_json({"status"})["binding_count"], 0);
}

}  // namespace
}  // namespace steer::testing
