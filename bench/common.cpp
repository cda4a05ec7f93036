#include "common.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

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

namespace {

using Address = unsigned __int128;  // an IPv4 or IPv6 address as a number (IPv4 in the low 32 bits)

int address_width(int family) { return family == AF_INET ? 32 : 128; }

core::Prefix prefix_of(int family, Address value, int length) {
  uint8_t bytes[16] = {};
  int size = address_width(family) / 8;
  for (int i = size - 1; i >= 0; --i, value >>= 8) bytes[i] = static_cast<uint8_t>(value & 0xff);
  return make_prefix(family, bytes, length);
}

SocketAddress socket_address_of(int family, Address value, uint16_t port) {
  if (family == AF_INET) return SocketAddress::ipv4(static_cast<uint32_t>(value), port);
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(port);
  std::memcpy(&address.sin6_addr, prefix_of(family, value, 128).bytes.data(), 16);
  return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&address), sizeof(address));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

NestedBindingSet make_nested_binding_set(int family, size_t total, const std::vector<int>& lengths,
                                         const std::string& label) {
  const int width = address_width(family);
  if (lengths.empty() || lengths.front() != width || !std::is_sorted(lengths.rbegin(), lengths.rend()))
    die("a nested mix lists its lengths longest first, starting at the full length");
  if (total == 0 || (total > 1 && total - 1 < lengths.size()))
    die(fmt::format("{} bindings cannot hold a chain of {} lengths", total, lengths.size()));
  const size_t depth = lengths.size();
  const int shortest = lengths.back();
  // IPv4 over the whole space (a /8 mix needs it), IPv6 over 2000::/3.
  const int region_bits = family == AF_INET ? 0 : 3;
  const Address region = family == AF_INET ? 0 : Address(0x2000) << 112;
  constexpr uint16_t kFirstBusyPort = 1024, kLonePort = 60000, kUnboundPort = 9;

  NestedBindingSet set;
  // Every other shortest-length prefix of the region, at most 65536 chains a port.
  int free_bits = shortest - region_bits - 1;
  set.chains_per_port = free_bits >= 16 ? 65536 : size_t{1} << free_bits;
  size_t chains = total > 1 ? (total - 1) / depth : 0;
  size_t leftover = total > 1 ? (total - 1) % depth : 0;  // a last chain cut short
  set.chains = chains;
  set.busy_ports = (chains + (leftover ? 1 : 0) + set.chains_per_port - 1) / set.chains_per_port;
  if (kFirstBusyPort + set.busy_ports >= kLonePort) die("the nested binding set ran out of ports");

  auto shift = [&](int length) { return width - length; };
  // Chain `chain`'s prefixes, shortest first.
  auto chain_values = [&](size_t chain) {
    size_t slot = chain % set.chains_per_port;
    std::vector<Address> values{region + (Address(2 * slot) << shift(shortest))};
    for (size_t level = depth - 1; level-- > 0;) {
      int extra = lengths[level] - lengths[level + 1];
      Address offset = Address(splitmix64(chain * 64 + level)) & ((Address(1) << extra) - 1);
      values.push_back(values.back() + (offset << shift(lengths[level])));
    }
    return values;
  };
  auto port_of = [&](size_t chain) { return uint16_t(kFirstBusyPort + chain / set.chains_per_port); };
  auto add_chain = [&](size_t chain, size_t count) {
    auto values = chain_values(chain);
    for (size_t n = 0; n < count; ++n)
      set.bindings.push_back(core::Binding{label, core::Protocol::Tcp,
                                           prefix_of(family, values[n], lengths[depth - 1 - n]),
                                           core::PortRange{port_of(chain), port_of(chain)}});
  };
  set.bindings.reserve(total);
  for (size_t chain = 0; chain < chains; ++chain) add_chain(chain, depth);
  if (leftover) add_chain(chains, leftover);

  // The typical chain: mid-way through the first busy port's chains.
  size_t typical = std::min(chains, set.chains_per_port) / 2;
  auto values = chain_values(typical);
  Address longest = values.back();
  uint16_t busy_port = port_of(typical);
  if (chains > 0) {
    set.longest_hit = socket_address_of(family, longest, busy_port);
    if (depth > 1) {
      // Inside the shortest prefix, on the other side of the first bit its child fixes.
      Address child = values[1];
      Address side = (child >> (shift(shortest) - 1)) & 1;
      Address inside = values[0] + ((side ^ 1) << (shift(shortest) - 1)) + 1;
      set.shortest_hit = socket_address_of(family, inside, busy_port);
    }
  }
  set.bindings.push_back(core::Binding{label, core::Protocol::Tcp, prefix_of(family, longest, width),
                                       core::PortRange{kLonePort, kLonePort}});
  set.lone_hit = socket_address_of(family, longest, kLonePort);
  set.unbound_port_miss = socket_address_of(family, longest, kUnboundPort);
  // The odd shortest-length prefix next to the typical chain's: bound on no port. With one
  // binding, the lone binding's port is the bound one.
  Address neighbour = longest ^ (Address(1) << shift(shortest));
  set.bound_port_miss = socket_address_of(family, neighbour, chains > 0 ? busy_port : kLonePort);
  if (set.bindings.size() != total) die("the nested binding set miscounted");
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

SteerWithListeners load_steer_with_listeners(const std::string& bpffs, const std::string& label) {
  auto state = check(core::State::load(core::Target{"", bpffs}, core::LoadOptions{}), "steer load");
  Fd program(bpf_prog_get_fd_by_id(state.program_id()));
  if (!program) die("open the attached dispatcher program by id");
  SteerWithListeners steer{core::Dispatcher(std::move(state)), std::move(program),
                           {check(listen_tcp(SocketAddress::ipv4_loopback(0)), "listen 127.0.0.1"),
                            check(listen_tcp(SocketAddress::ipv6_loopback(0)), "listen [::1]")},
                           {}};
  for (int i = 0; i < 2; ++i) {
    check(steer.dispatcher.register_socket(label, steer.listeners[i].get(),
                                           core::Owner::of_process(::getpid())),
          "register a listener");
    steer.cookies[i] = check(socket_cookie(steer.listeners[i].get()), "SO_COOKIE");
  }
  return steer;
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
