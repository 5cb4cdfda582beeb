// tern: the service-mesh data plane. `tern -c bootstrap.yaml`.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "source/common/common/heap.h"
#include "source/common/common/logger.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/server/server.h"

namespace {

constexpr char kUsage[] =
    "usage: tern -c FILE [--mode serve|validate] [--concurrency N] [--log-level LEVEL]\n"
    "            [--drain-time-s N]\n"
    "  -c, --config-path FILE   Envoy v3 bootstrap, YAML or JSON\n"
    "  --mode validate          check the config and exit 0 (valid) or 1\n"
    "  --concurrency N          worker threads (overrides the Tern settings)\n"
    "  -l, --log-level LEVEL    trace, debug, info, warn, error, off\n"
    "  --drain-time-s N         on SIGTERM/SIGINT, wait up to N s (default 5) for requests in\n"
    "                           flight: no new connections, HTTP/2 GOAWAY, HTTP/1 close\n"
    "Signals: SIGTERM/SIGINT drain and stop; SIGUSR1 prints the stats.\n";

int usageError(const std::string& msg) {
  std::cerr << "tern: " << msg << "\n" << kUsage;
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with mutex deadlock detection on: a graph update on every
  // lock, paid on the hot path. Tern's few locks are leaf locks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  tern::server::Options opts;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&](std::string* out) -> bool {
      size_t eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
        *out = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string name = a.substr(0, a.find('='));
    std::string v;
    if (name == "-h" || name == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (name == "-c" || name == "--config-path") {
      if (!value(&opts.config_path)) return usageError("-c needs a file");
    } else if (name == "--mode") {
      if (!value(&opts.mode) || (opts.mode != "serve" && opts.mode != "validate")) {
        return usageError("--mode is serve or validate");
      }
    } else if (name == "--concurrency") {
      int n;
      if (!value(&v) || !absl::SimpleAtoi(v, &n) || n < 0 || n > 1024) {
        return usageError("--concurrency needs a number from 0 to 1024");
      }
      opts.concurrency = n;
    } else if (name == "--drain-time-s") {
      int n;
      if (!value(&v) || !absl::SimpleAtoi(v, &n) || n < 0 || n > 86400) {
        return usageError("--drain-time-s needs a number of seconds from 0 to 86400");
      }
      opts.drain_time_s = n;
    } else if (name == "-l" || name == "--log-level") {
      tern::log::Level l;
      if (!value(&opts.log_level) || !tern::log::parseLevel(opts.log_level, &l)) {
        return usageError("--log-level is one of trace, debug, info, warn, error, off");
      }
    } else {
      return usageError(absl::StrCat("unknown argument '", a, "'"));
    }
  }
  if (opts.config_path.empty()) return usageError("no config file (-c FILE)");

  auto bootstrap = tern::config::loadBootstrapFile(opts.config_path);
  if (!bootstrap.ok()) {
    std::cerr << "tern: invalid config: " << bootstrap.status().message() << "\n";
    return 1;
  }
  // Block the signals we handle before any thread starts, so only sigwait sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  bool validate = opts.mode == "validate";
  auto server = tern::server::Server::create(*bootstrap, opts, !validate);
  if (!server.ok()) {
    std::cerr << "tern: " << (validate || server.status().code() == absl::StatusCode::kInvalidArgument
                                  ? "invalid config: "
                                  : "cannot start: ")
              << opts.config_path << ": " << server.status().message() << "\n";
    return 1;
  }
  if (validate) {
    std::cout << "tern: " << opts.config_path << " is valid\n";
    return 0;
  }
  (*server)->start();
  for (;;) {
    // Wake once a second to hand memory freed after a burst back to the kernel.
    const timespec tick{1, 0};
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig < 0) {
      size_t was_free = tern::common::shrinkHeapIfWorthIt();
      if (was_free > 0) TERN_LOG(Debug, "returned free heap memory to the kernel (%zu bytes free)", was_free);
      continue;
    }
    if (sig == SIGUSR1) {
      std::string dump = (*server)->stats().dump();
      std::cerr << dump << std::flush;
      continue;
    }
    if (sig == SIGHUP) continue; // reserved for reload
    TERN_LOG(Info, "signal %d: draining (up to %d s), then shutting down", sig, opts.drain_time_s);
    break;
  }
  size_t left = (*server)->drain(std::chrono::seconds(opts.drain_time_s));
  if (left > 0) TERN_LOG(Info, "drain time over: closing %zu connections still open", left);
  (*server)->stop();
  std::cerr << (*server)->stats().dump() << std::flush;
  return 0;
}
