#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace tern {
namespace test {

// A real TCP server on 127.0.0.1 for tests, one thread per accepted connection, with
// blocking sockets: simple and obviously correct, unlike the code under test.
class TestUpstream {
public:
  // Handles one accepted connection (fd is closed after it returns).
  using Handler = std::function<void(int fd)>;

  // port 0: pick one. backlog < 0: do not accept at all (connections queue, then hang).
  explicit TestUpstream(Handler handler, int backlog = 128);
  ~TestUpstream();

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  void stop();

  static Handler echo();
  static Handler hold(); // reads until EOF, writes nothing
  static Handler reset(); // closes with RST at once

private:
  int listen_fd_{-1};
  uint16_t port_{0};
  Handler handler_;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
};

// Blocking client helpers.
int connectTo(uint16_t port, int timeout_ms = 5000);
bool writeAll(int fd, const void* data, size_t len);
// Reads until EOF (or error); returns the bytes.
std::string readToEof(int fd, int timeout_ms = 10000);
// Whether the peer closed: a read returns 0 or an error within `timeout_ms`.
bool waitClosed(int fd, int timeout_ms = 5000);
// Polls `pred` every 5 ms up to `timeout_ms`; true once it holds. For waiting on events
// across threads, never for asserting how long something took.
bool waitFor(const std::function<bool()>& pred, int timeout_ms = 10000);
// A free TCP port on 127.0.0.1 (bound then released).
uint16_t freePort();

} // namespace test
} // namespace tern
