#include "common.h"

#include <arpa/inet.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/netns.h"

namespace steer::bench {

namespace {

ino_t g_host_netns = 0;

ino_t thread_netns_inode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) die("stat /proc/thread-self/ns/net");
  return st.st_ino;
}

}  // namespace

void die(std::string_view what) {
  fmt::print(stderr, "bench: FAILED: {}\n", what);
  std::exit(1);
}

void enter_private_mounts() {
  g_host_netns = thread_netns_inode();
  if (::unshare(CLONE_NEWNS) != 0) die(fmt::format("unshare(CLONE_NEWNS): {}", std::strerror(errno)));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    die(fmt::format("make / private: {}", std::strerror(errno)));
}

void require_private_netns() {
  if (g_host_netns == 0 || thread_netns_inode() == g_host_netns)
    die("refusing to run in the machine's own network namespace");
}

BpffsMount enter_fresh_netns() {
  if (::unshare(CLONE_NEWNET) != 0) die(fmt::format("unshare(CLONE_NEWNET): {}", std::strerror(errno)));
  require_private_netns();
  check(bring_up_loopback(), "bring lo up");
  return check(BpffsMount::create_temporary(), "mount a private bpffs");
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::vector<int> prefix_lengths(int family, int count) {
  int width = family == AF_INET ? 32 : 128;
  switch (count) {
    case 1: return {width};
    case 4: return family == AF_INET ? std::vector<int>{32, 24, 16, 8} : std::vector<int>{128, 64, 48, 32};
    case 32: {
      std::vector<int> lengths;
      int step = width / 32;
      for (int length = width; length > 0; length -= step) lengths.push_back(length);
      return lengths;
    }
  }
  die(fmt::format("no prefix length plan for {} lengths", count));
}

core::Prefix make_prefix(int family, const uint8_t* bytes, int length) {
  core::Prefix prefix;
  prefix.family = family;
  prefix.length = static_cast<uint8_t>(length);
  std::memcpy(prefix.bytes.data(), bytes, family == AF_INET ? 4 : 16);
  for (int bit = length; bit < prefix.max_length(); ++bit)
    prefix.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
  return prefix;
}

namespace {

// The `index`-th prefix of `length` bits: the index in the prefix's low bits (host bits 0).
core::Prefix indexed_prefix(int family, int length, uint64_t index) {
  uint8_t bytes[16] = {};
  int width = family == AF_INET ? 32 : 128;
  unsigned __int128 value = static_cast<unsigned __int128>(index) << (width - length);
  int size = width / 8;
  for (int i = size - 1; i >= 0; --i) {
    bytes[i] = static_cast<uint8_t>(value & 0xff);
    value >>= 8;
  }
  return make_prefix(family, bytes, length);
}

const uint8_t* address_bytes(const SocketAddress& address) {
  if (address.family() == AF_INET)
    return reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(address.data())->sin_addr);
  return reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(address.data())->sin6_addr);
}

}  // namespace

BindingSet make_binding_set(int family, size_t total, int length_count, const std::string& label,
                            const SocketAddress& target) {
  auto lengths = prefix_lengths(family, length_count);
  if (total < lengths.size()) die(fmt::format("{} bindings cannot use {} prefix lengths", total, lengths.size()));
  BindingSet set;
  set.hit = target;
  set.miss = target;
  set.miss.set_port(9);
  set.bindings.reserve(total);
  size_t others = total - 1;
  for (size_t n = 0; n < lengths.size(); ++n) {
    int length = lengths[n];
    size_t count = others / lengths.size() + (n < others % lengths.size() ? 1 : 0);
    uint64_t prefixes = length >= 20 ? (1u << 20) : (1u << length);
    for (size_t i = 0; i < count; ++i) {
      uint64_t port = 1024 + i / prefixes;
      if (port > 65535) die("binding generator ran out of ports");
      set.bindings.push_back(core::Binding{label, core::Protocol::Tcp,
                                           indexed_prefix(family, length, i % prefixes),
                                           core::PortRange{uint16_t(port), uint16_t(port)}});
    }
  }
  // The target last: on the shortest length, so every length is probed before it matches.
  set.bindings.push_back(core::Binding{label, core::Protocol::Tcp,
                                       make_prefix(family, address_bytes(target), lengths.back()),
                                       core::PortRange{target.port(), target.port()}});
  return set;
}

std::vector<core::Binding> loopback_host_bindings(size_t count, uint16_t port,
                                                  const std::string& label) {
  std::vector<core::Binding> bindings;
  bindings.reserve(count);
  // An odd multiplier permutes 0..2^24-1: distinct addresses, spread over the whole /8.
  for (uint32_t i = 1; bindings.size() < count; ++i) {
    uint32_t low = (i * 2654435761u) & 0xffffff;
    if (low == 0 || low == 0xffffff) continue;
    uint32_t address = htonl((127u << 24) | low);
    bindings.push_back(core::Binding{label, core::Protocol::Tcp,
                                     make_prefix(AF_INET, reinterpret_cast<uint8_t*>(&address), 32),
                                     core::PortRange{port, port}});
  }
  return bindings;
}

std::string Table::markdown() const {
  std::string out = "|";
  for (const auto& header : headers_) out += " " + header + " |";
  out += "\n|";
  for (size_t i = 0; i < headers_.size(); ++i) out += i == 0 ? " --- |" : " ---: |";
  out += "\n";
  for (const auto& row : rows_) {
    out += "|";
    for (const auto& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  return out;
}

std::string count_label(size_t count) {
  if (count >= 1000000 && count % 1000000 == 0) return fmt::format("{}M", count / 1000000);
  if (count >= 1000 && count % 1000 == 0) return fmt::format("{}k", count / 1000);
  return std::to_string(count);
}

std::string family_label(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

}  // namespace steer::bench
