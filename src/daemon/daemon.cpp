#include "daemon/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "base/version.h"
#include "control/protocol.h"
#include "core/dispatcher.h"
#include "daemon/apply.h"
#include "daemon/requests.h"
#include "daemon/socket_watch.h"
#include "report/metrics.h"

namespace steer::daemon {
namespace {

// How many peers may be connected at once; more are closed as they come.
constexpr size_t kMaxPeers = 128;
// Requests served from one peer before the others get their turn.
constexpr int kRequestsPerTurn = 16;
// How often the pools are checked for closed sockets whatever the destroy notices say.
constexpr int kPoolCheckSeconds = 5;

Result<void> make_parent_directory(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == 0 || slash == std::string::npos) return {};
  std::string directory = path.substr(0, slash);
  if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST)
    return fail_errno("creating the control socket's directory " + directory);
  return {};
}

// The listening control socket: a stale one (no steerd behind it) is replaced; a live one
// means another steerd serves this path.
Result<Fd> listen_control(const DaemonConfig& config) {
  const std::string& path = config.control_socket;
  STEER_TRY(make_parent_directory(path));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  struct stat info{};
  if (::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode))
      return fail(EEXIST, "{} exists and is not a socket: remove it, or set [control] socket "
                          "to another path", path);
    Fd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0)
      return fail(EADDRINUSE, "another steerd serves {}: stop it first (systemctl stop steerd)",
                  path);
    if (::unlink(path.c_str()) != 0) return fail_errno("removing the stale socket " + path);
  }
  Fd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket) return fail_errno("creating the control socket");
  // Bound with no permission for anyone, then opened up to the configured mode: no window in
  // which the umask's mode lets others connect.
  mode_t old_mask = ::umask(0777);
  int bound = ::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
  int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) return fail_errno(bind_errno, "binding the control socket " + path);
  if (config.control_group && ::chown(path.c_str(), static_cast<uid_t>(-1), *config.control_group) != 0)
    return fail_errno("giving the control socket " + path + " to group " +
                      std::to_string(*config.control_group));
  if (::chmod(path.c_str(), config.control_mode) != 0)
    return fail_errno("setting the mode of the control socket " + path);
  if (::listen(socket.get(), 64) != 0) return fail_errno("listening on " + path);
  return socket;
}

void notify(const std::string& state) { (void)sd_notify(0, state.c_str()); }

class Daemon {
 public:
  explicit Daemon(DaemonOptions options) : options_(std::move(options)) {}
  Result<void> run();

 private:
  Result<DaemonConfig> load_config() const {
    if (options_.config_path.empty()) return default_config();
    return read_config(options_.config_path);
  }
  Result<void> apply(const DaemonConfig& config);
  void reload();
  void start_metrics();
  void stop_metrics();
  void accept_peers();
  void serve_peer(int fd);
  // Drops peers that closed their end but whose close the loop has not read yet.
  void forget_hung_up_peers() {
    std::erase_if(peers_, [this](const auto& entry) {
      pollfd polled{entry.first, POLLRDHUP, 0};
      bool gone = ::poll(&polled, 1, 0) > 0 && (polled.revents & (POLLHUP | POLLRDHUP | POLLERR));
      if (gone) (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, entry.first, nullptr);
      return gone;
    });
  }
  void check_pools(const char* why);
  void add_to_loop(int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event);
  }
  std::string status_line() const;

  DaemonOptions options_;
  DaemonConfig config_;
  Fd epoll_, signals_, timer_, control_;
  std::optional<SocketWatch> watch_;
  struct Peer {
    Fd socket;
    control::PeerCredentials credentials;
  };
  std::map<int, Peer> peers_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  std::string metrics_listening_;
  // The cookies of the pools' sockets, as of the last check: a destroy notice for one of
  // them means a pool to rebuild (most notices are of connections, not of pool sockets).
  std::set<uint64_t> pooled_cookies_;
  uint64_t requests_ = 0, refused_ = 0, pruned_ = 0;
  bool stopping_ = false;
};

Result<void> Daemon::apply(const DaemonConfig& config) {
  auto changes = STEER_TRY(apply_config(config));
  for (const auto& change : changes) spdlog::info("config {}: {}", config.source, change);
  if (changes.empty()) spdlog::info("config {}: nothing to change", config.source);
  return {};
}

void Daemon::reload() {
  notify("RELOADING=1");
  spdlog::info("SIGHUP: reading {}", options_.config_path.empty() ? "the built-in default"
                                                                  : options_.config_path);
  auto config = load_config();
  if (config) {
    if (config->control_socket != config_.control_socket ||
        config->control_mode != config_.control_mode || config->control_group != config_.control_group ||
        config->metrics_listen != config_.metrics_listen || config->bpffs != config_.bpffs ||
        config->netns != config_.netns)
      config = fail(EINVAL, "{}: [steerd], [control] and [metrics] take effect at start; "
                            "restart steerd to change them (the config was not applied)",
                    config->source);
  }
  if (config) {
    auto applied = apply(*config);
    if (applied)
      config_ = std::move(*config);
    else
      config = std::unexpected(applied.error());
  }
  if (!config) spdlog::error("config refused, the running state stays: {}", config.error().message);
  spdlog::info("SIGHUP: done");
  notify("READY=1\nSTATUS=" + status_line());
}

std::string Daemon::status_line() const {
  return fmt::format("serving {} ({} peers), metrics {}; {} requests, {} refused, {} closed "
                     "sockets pruned", config_.control_socket, peers_.size(),
                     metrics_listening_.empty() ? "off" : metrics_listening_, requests_, refused_,
                     pruned_);
}

void Daemon::start_metrics() {
  if (config_.metrics_listen.empty()) return;
  auto address = SocketAddress::parse(config_.metrics_listen);
  if (!address) return;
  http_ = std::make_unique<httplib::Server>();
  // The target is fixed at start (a reload that would move it is refused).
  auto snapshot = [target = target_of(config_)]() -> Result<core::StatusSnapshot> {
    auto dispatcher = STEER_TRY(core::Dispatcher::open(target, core::LockMode::Shared));
    return dispatcher.status("", 0);
  };
  http_->Get("/metrics", [snapshot](const httplib::Request&, httplib::Response& response) {
    auto status = snapshot();
    if (!status) {
      response.status = 503;
      response.set_content("steer state unreadable: " + status.error().message + "\n", "text/plain");
      return;
    }
    response.set_content(report::metrics_text(*status), "text/plain; version=0.0.4; charset=utf-8");
  });
  http_->Get("/healthz", [snapshot](const httplib::Request&, httplib::Response& response) {
    auto status = snapshot();
    if (!status) {
      response.status = 503;
      response.set_content("unhealthy: " + status.error().message + "\n", "text/plain");
    } else if (status->program_id == 0) {
      response.status = 503;
      response.set_content("unhealthy: the dispatcher is not attached (steer load)\n", "text/plain");
    } else {
      response.set_content("ok\n", "text/plain");
    }
  });
  std::string host = address->address_string();
  if (!http_->bind_to_port(host.c_str(), address->port())) {
    spdlog::error("metrics: cannot listen on {} (taken, or not an address of this host): no "
                  "/metrics", config_.metrics_listen);
    http_.reset();
    return;
  }
  metrics_listening_ = config_.metrics_listen;
  http_thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void Daemon::stop_metrics() {
  if (!http_) return;
  http_->stop();
  if (http_thread_.joinable()) http_thread_.join();
  http_.reset();
}

void Daemon::accept_peers() {
  for (;;) {
    Fd peer(::accept4(control_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!peer) return;  // EAGAIN, or a peer gone before we took it
    if (peers_.size() >= kMaxPeers) forget_hung_up_peers();
    if (peers_.size() >= kMaxPeers) {
      spdlog::warn("control: {} peers connected already; closing a new one", peers_.size());
      continue;
    }
    auto credentials = control::peer_credentials(peer.get());
    if (!credentials) {
      spdlog::warn("control: {}; closing the peer", credentials.error().message);
      continue;
    }
    int fd = peer.get();
    add_to_loop(fd);
    peers_.emplace(fd, Peer{std::move(peer), std::move(*credentials)});
  }
}

void Daemon::serve_peer(int fd) {
  auto found = peers_.find(fd);
  if (found == peers_.end()) return;
  Peer& peer = found->second;
  bool close_peer = false;
  for (int turn = 0; turn < kRequestsPerTurn && !close_peer; ++turn) {
    auto datagram = control::receive_datagram(fd, /*dont_wait=*/true);
    if (!datagram && (datagram.error().code == EAGAIN || datagram.error().code == EWOULDBLOCK))
      break;
    control::Reply reply;
    if (!datagram) {
      if (datagram.error().code != EMSGSIZE) {
        close_peer = true;  // the connection failed
        break;
      }
      reply = control::error_reply(0, datagram.error());
    } else if (!*datagram) {
      close_peer = true;  // the peer closed its end
      break;
    } else {
      ++requests_;
      auto request = control::parse_request((*datagram)->bytes, (*datagram)->fds.size());
      if (!request) {
        reply = control::error_reply(0, request.error());
        spdlog::warn("control: pid {} uid {}: bad request: {}", peer.credentials.pid,
                     peer.credentials.uid, request.error().message);
      } else {
        auto handled = handle_request(config_, peer.credentials, *request,
                                      std::move((*datagram)->fds));
        reply = std::move(handled.reply);
        // Its sockets' destroy notices now concern a pool.
        if (reply.ok && request->op == control::Op::Register)
          for (const auto& socket : reply.result.value("registered", nlohmann::json::array()))
            pooled_cookies_.insert(socket.value("cookie", uint64_t{0}));
        if (reply.ok) spdlog::info("control: {}", handled.log);
        else spdlog::warn("control: {}", handled.log);
      }
    }
    if (!reply.ok) ++refused_;
    // A peer that does not read its replies is dropped rather than waited for.
    auto sent = control::send_datagram(fd, control::encode_reply(reply), {}, /*dont_wait=*/true);
    if (!sent) close_peer = true;
  }
  if (close_peer) {
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    peers_.erase(found);
  }
}

void Daemon::check_pools(const char* why) {
  auto dispatcher = core::Dispatcher::open(target_of(config_), core::LockMode::Exclusive);
  if (!dispatcher) {
    spdlog::warn("pools: cannot open the state to check them: {}", dispatcher.error().message);
    return;
  }
  auto pruned = dispatcher->prune_closed();
  if (!pruned) {
    spdlog::warn("pools: {}", pruned.error().message);
    return;
  }
  for (const auto& notice : dispatcher->notices()) spdlog::info("pools: {}", notice);
  pooled_cookies_.clear();
  if (auto destinations = dispatcher->destinations())
    for (const auto& destination : *destinations)
      if (auto sockets = dispatcher->sockets(destination.id))
        for (const auto& socket : *sockets) pooled_cookies_.insert(socket.cookie);
  if (*pruned != 0) {
    pruned_ += *pruned;
    spdlog::info("pools: {} closed socket{} left their pools ({})", *pruned,
                 *pruned == 1 ? "" : "s", why);
  }
}

Result<void> Daemon::run() {
  config_ = STEER_TRY(load_config());
  spdlog::info("steerd {}: config {}", kSteerVersionString, config_.source);
  sigset_t handled;
  sigemptyset(&handled);
  for (int signal : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&handled, signal);
  // Blocked before any thread starts, so that every thread leaves them to the signalfd.
  ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  signals_ = Fd(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) return fail_errno("signalfd");
  STEER_TRY(apply(config_));
  control_ = STEER_TRY(listen_control(config_));
  std::optional<NetNamespace> netns;
  if (!config_.netns.empty()) netns.emplace(STEER_TRY(NetNamespace::open(config_.netns)));
  if (auto watch = SocketWatch::open(netns ? &*netns : nullptr))
    watch_.emplace(std::move(*watch));
  else
    spdlog::warn("pools: {}; closed sockets leave their pools at the next check (every {} s)",
                 watch.error().message, kPoolCheckSeconds);
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return fail_errno("epoll_create1");
  timer_ = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer_) return fail_errno("timerfd_create");
  // The tick: the pool check, and the watchdog at half its interval when systemd asks.
  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  uint64_t tick_usec = uint64_t{kPoolCheckSeconds} * 1000000;
  if (watchdog) tick_usec = std::min(tick_usec, watchdog_usec / 2);
  itimerspec tick{};
  tick.it_interval.tv_sec = static_cast<time_t>(tick_usec / 1000000);
  tick.it_interval.tv_nsec = static_cast<long>(tick_usec % 1000000) * 1000;
  tick.it_value = tick.it_interval;
  ::timerfd_settime(timer_.get(), 0, &tick, nullptr);
  add_to_loop(signals_.get());
  add_to_loop(timer_.get());
  add_to_loop(control_.get());
  if (watch_) add_to_loop(watch_->fd());
  start_metrics();
  check_pools("at start");
  spdlog::info("ready: control socket {}, metrics {}", config_.control_socket,
               metrics_listening_.empty() ? "off"
                                          : "http://" + metrics_listening_ + "/metrics");
  notify("READY=1\nSTATUS=" + status_line());
  uint64_t ticks = 0;
  while (!stopping_) {
    epoll_event events[32];
    int count = ::epoll_wait(epoll_.get(), events, 32, -1);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return fail_errno("epoll_wait");
    for (int i = 0; i < count; ++i) {
      int fd = events[i].data.fd;
      if (fd == signals_.get()) {
        signalfd_siginfo info{};
        while (::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
          if (info.ssi_signo == SIGHUP) reload();
          else stopping_ = true;
        }
      } else if (fd == timer_.get()) {
        uint64_t expirations = 0;
        (void)!::read(timer_.get(), &expirations, sizeof(expirations));
        if (watchdog) notify("WATCHDOG=1");
        ticks += expirations;
        if (ticks * tick_usec >= uint64_t{kPoolCheckSeconds} * 1000000) {
          ticks = 0;
          check_pools("periodic check");
          notify("STATUS=" + status_line());
        }
      } else if (fd == control_.get()) {
        accept_peers();
      } else if (watch_ && fd == watch_->fd()) {
        auto destroyed = watch_->read();
        if (!destroyed) spdlog::warn("pools: {}", destroyed.error().message);
        bool pooled = !destroyed || destroyed->overflowed;
        if (destroyed)
          for (uint64_t cookie : destroyed->cookies) pooled = pooled || pooled_cookies_.count(cookie);
        if (pooled) check_pools("a pool's socket closed");
      } else {
        serve_peer(fd);
      }
    }
  }
  spdlog::info("stopping: the kernel keeps steering (the state stays pinned)");
  notify("STOPPING=1");
  stop_metrics();
  peers_.clear();
  control_.reset();
  (void)::unlink(config_.control_socket.c_str());
  return {};
}

}  // namespace

Result<void> run_daemon(const DaemonOptions& options) { return Daemon(options).run(); }

}  // namespace steer::daemon
