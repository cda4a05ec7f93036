#include "base/flock.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

namespace steer {

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kReportAfter = std::chrono::seconds(1);

// Parses "<major hex>:<minor hex>:<inode decimal>" as /proc/locks prints a file.
bool parse_file_id(std::string_view text, unsigned* major_number, unsigned* minor_number,
                   unsigned long* inode) {
  auto first = text.find(':');
  auto second = first == std::string_view::npos ? first : text.find(':', first + 1);
  if (second == std::string_view::npos) return false;
  auto parse = [](std::string_view part, auto* value, int base) {
    auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), *value, base);
    return error == std::errc() && end == part.data() + part.size();
  };
  return parse(text.substr(0, first), major_number, 16) &&
         parse(text.substr(first + 1, second - first - 1), minor_number, 16) &&
         parse(text.substr(second + 1), inode, 10);
}

std::string process_command(pid_t pid) {
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string command;
  std::getline(comm, command);
  return command;
}

std::string format_seconds(std::chrono::milliseconds duration) {
  return fmt::format("{:g}", std::chrono::duration<double>(duration).count());
}

}  // namespace

std::vector<LockHolder> flock_holders(int fd) {
  std::vector<LockHolder> holders;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return holders;
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5 0 EOF"; waiters read "1: -> FLOCK ...".
    std::istringstream words(line);
    std::string number, kind, mode, access, file;
    pid_t pid = 0;
    if (!(words >> number >> kind) || kind == "->") continue;
    if (kind != "FLOCK" || !(words >> mode >> access >> pid >> file)) continue;
    unsigned major_number = 0, minor_number = 0;
    unsigned long inode = 0;
    if (!parse_file_id(file, &major_number, &minor_number, &inode)) continue;
    if (major_number != major(st.st_dev) || minor_number != minor(st.st_dev) ||
        inode != st.st_ino)
      continue;
    holders.push_back({pid, pid > 0 ? process_command(pid) : std::string()});
  }
  return holders;
}

std::string describe_lock_holders(const std::vector<LockHolder>& holders) {
  std::string text;
  for (const auto& holder : holders) {
    if (holder.pid <= 0) continue;
    if (!text.empty()) text += ", ";
    text += holder.command.empty() ? fmt::format("pid {}", holder.pid)
                                   : fmt::format("pid {} ({})", holder.pid, holder.command);
  }
  return text.empty() ? "another process" : text;
}

Result<void> lock_with_timeout(int fd, bool exclusive, std::chrono::milliseconds timeout,
                               std::string_view what, const LockWaitReport& report_waiting) {
  const auto start = std::chrono::steady_clock::now();
  bool reported = false;
  for (;;) {
    if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return {};
    if (errno != EWOULDBLOCK && errno != EINTR) return fail_errno(fmt::format("lock {}", what));
    auto waited = std::chrono::steady_clock::now() - start;
    if (!reported && waited >= kReportAfter && report_waiting) {
      report_waiting(fmt::format("waiting for the lock on {}, held by {}", what,
                                 describe_lock_holders(flock_holders(fd))));
      reported = true;
    }
    if (waited >= timeout) {
      std::string holders = describe_lock_holders(flock_holders(fd));
      if (timeout.count() == 0)
        return fail(ETIMEDOUT, "{} is locked by {}: wait for it to finish, stop it, or pass "
                               "--lock-timeout SECONDS to wait for it", what, holders);
      return fail(ETIMEDOUT, "{} is locked by {} for more than {} s: wait for it to finish, "
                             "stop it, or pass --lock-timeout SECONDS", what, holders,
                  format_seconds(timeout));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace steer
