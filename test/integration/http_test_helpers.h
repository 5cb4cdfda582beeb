#pragma once

// Real HTTP peers for integration tests: nginx as an upstream, curl and wrk as clients
// (subprocesses), a raw-socket client for byte-exact cases, and a small threaded HTTP/1.1
// upstream for behaviours nginx cannot produce on demand (slow, failing, resetting,
// upgrading). Everything talks to 127.0.0.1 only.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "test/test_common/test_upstream.h"

namespace tern {
namespace test {

using HeaderList = std::vector<std::pair<std::string, std::string>>; // names lower-case

// First value of `name` (lower-case) in `headers`, or "" (see hasHeader).
std::string headerValue(const HeaderList& headers, absl::string_view name);
bool hasHeader(const HeaderList& headers, absl::string_view name);

// A fresh directory under $TEST_TMPDIR (or /tmp).
std::string makeTempDir(absl::string_view tag);
void writeFile(const std::string& path, absl::string_view content);
std::string readFile(const std::string& path);

// ---------------------------------------------------------------------------------------
// nginx, started by us (daemon off, master_process off: one process, killed by its PID).

class Nginx {
public:
  // Each entry of `servers` is the inside of a `server { ... }` block (locations etc.); it
  // gets its own free 127.0.0.1 port and `root DIR/www`. `files` are written under
  // DIR/www first (path relative to www -> content).
  Nginx(const std::vector<std::string>& servers,
        const std::vector<std::pair<std::string, std::string>>& files)
      : Nginx(servers, files, {}) {}
  // `listen_params[i]`, when given, follows server i's listen address ("http2": HTTP/2
  // with prior knowledge, h2c, on that port).
  Nginx(const std::vector<std::string>& servers,
        const std::vector<std::pair<std::string, std::string>>& files,
        const std::vector<std::string>& listen_params);
  ~Nginx(); // SIGTERM, wait; SIGKILL if it does not exit

  // Empty when nginx is up and answering on every port; otherwise what went wrong.
  const std::string& error() const { return error_; }
  uint16_t port(size_t server) const { return ports_.at(server); }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }

private:
  std::string dir_;
  std::vector<uint16_t> ports_;
  pid_t pid_{-1};
  std::string error_;
};

// ---------------------------------------------------------------------------------------
// Subprocesses

// 'text' for a POSIX shell.
std::string shellQuote(absl::string_view s);

struct CommandResult {
  int exit_code{-1}; // -1 when it did not exit normally
  std::string out;   // its stdout
};
// Runs `cmd` with /bin/sh and waits for it; stderr is not captured (redirect it in `cmd`).
// Bound its run time in `cmd` (`timeout 60 ...`).
CommandResult runCommand(const std::string& cmd);

// Whether `name` is a command on PATH.
bool haveCommand(const std::string& name);

// A long-running helper process (a node peer, say): stdin is a pipe it can watch (closed
// when this object goes, so a peer that exits on EOF never outlives the test), stdout a
// pipe read by line, stderr a file. It gets SIGKILL if the test process dies.
class ChildProcess {
public:
  // `env` entries ("NAME=value") are added to the inherited environment.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  ~ChildProcess(); // SIGTERM, wait; SIGKILL if it does not exit

  // Empty when it started; otherwise why not.
  const std::string& error() const { return error_; }
  pid_t pid() const { return pid_; }
  // The next line of its stdout, without the newline; false on EOF or when `timeout_ms`
  // passes first.
  bool readLine(std::string& line, int timeout_ms = 10000);
  std::string stderrText() const { return readFile(stderr_path_); }

private:
  pid_t pid_{-1};
  int stdin_fd_{-1};
  int stdout_fd_{-1};
  std::string buf_;
  std::string stderr_path_;
  std::string error_;
};

// ---------------------------------------------------------------------------------------
// curl and wrk

struct CurlResult {
  int exit_code{-1};       // curl's exit status (0: transfer fine, 28: timeout, ...)
  int status{0};           // final response status (after any 1xx)
  std::string version;     // "HTTP/1.1" of the final response
  std::string raw_headers; // every header block curl saw, 1xx ones included
  HeaderList headers;      // of the final response
  std::string body;
  std::string stderr_text;
  std::string header(absl::string_view name) const { return headerValue(headers, name); }
  bool has(absl::string_view name) const { return hasHeader(headers, name); }
};

// Runs `curl -sS --noproxy '*' --max-time 60 <args> <url>` and collects the result.
CurlResult curl(const std::string& url, const std::vector<std::string>& args = {});

struct WrkResult {
  int exit_code{-1};
  std::string output;
  uint64_t requests{0};  // "N requests in ..."
  bool socket_errors{false}; // "Socket errors: ..." line present
  bool non_2xx{false};       // "Non-2xx or 3xx responses: ..." line present
};
WrkResult wrk(const std::string& url, int threads, int connections, int seconds);

// ---------------------------------------------------------------------------------------
// Raw-socket client

struct HttpResponse {
  bool ok{false};      // a whole response was read
  std::string version; // "HTTP/1.1"
  int status{0};
  HeaderList headers;
  std::string body;
  std::string header(absl::string_view name) const { return headerValue(headers, name); }
  bool has(absl::string_view name) const { return hasHeader(headers, name); }
};

class RawClient {
public:
  explicit RawClient(uint16_t port);
  ~RawClient();
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool send(absl::string_view bytes);
  // The next response (framed by content-length, chunked or close). `head`: the
  // request was HEAD. `skip_1xx`: return the final response, not 100 Continue.
  HttpResponse response(bool head = false, bool skip_1xx = true, int timeout_ms = 15000);
  // Exactly `n` bytes (tunnels), or fewer on close/timeout.
  std::string read(size_t n, int timeout_ms = 10000);
  // Reads until the server closes; true if it did within the timeout. `extra` gets any
  // bytes that came before the close (beyond responses already read).
  bool waitClosed(std::string* extra = nullptr, int timeout_ms = 10000);
  void close();

private:
  bool fill(int timeout_ms); // one read into buf_; false on EOF/error/timeout
  int fd_{-1};
  std::string buf_;
};

// ---------------------------------------------------------------------------------------
// A threaded HTTP/1.1 upstream (one thread per connection, keep-alive).

struct Request {
  std::string method, target, version;
  HeaderList headers;
  std::string body;       // kept unless Options::keep_body is false
  uint64_t body_bytes{0}; // decoded body length
  bool chunked{false};
  std::string header(absl::string_view name) const { return headerValue(headers, name); }
  bool has(absl::string_view name) const { return hasHeader(headers, name); }
};

struct Reply {
  enum class Then {
    KeepAlive, // read the next request on this connection
    Close,     // FIN (after the bytes)
    Reset,     // RST (after the bytes)
    Hang,      // read until the peer goes away, never answering more
    Custom,    // run `custom` with the fd and any bytes already read past the request
  };
  std::string bytes; // written as they are
  Then then{Then::KeepAlive};
  std::function<void(int fd, std::string& leftover)> custom;
};

// "HTTP/1.1 <code> X\r\ncontent-length: N\r\n<extra_headers>\r\n<body>"; extra_headers
// lines end with \r\n.
std::string httpResponse(int code, absl::string_view body, absl::string_view extra_headers = "");

class HttpUpstream {
public:
  // `n` counts requests from 0 across all connections.
  using Handler = std::function<Reply(const Request& request, int n)>;
  struct Options {
    bool keep_body{true};
    int rcvbuf{0};     // SO_RCVBUF for accepted sockets, 0: default
    int slow_reads{0}; // sleep 1 ms after each of the first N body reads
  };

  explicit HttpUpstream(Handler handler) : HttpUpstream(std::move(handler), Options{}) {}
  HttpUpstream(Handler handler, Options options);
  ~HttpUpstream() { upstream_.stop(); }

  uint16_t port() const { return upstream_.port(); }
  int connections() const { return upstream_.accepted(); }
  int requests() const { return requests_.load(); }
  uint64_t bytesReceived() const { return bytes_.load(); }
  std::vector<Request> received() const;

  // Always answers `code` with `body`.
  static Handler fixed(int code, std::string body);

private:
  void serve(int fd);
  Handler handler_;
  Options options_;
  std::atomic<int> requests_{0};
  std::atomic<uint64_t> bytes_{0};
  mutable absl::Mutex mu_;
  std::vector<Request> received_ ABSL_GUARDED_BY(mu_);
  TestUpstream upstream_; // last: its threads use the members above
};

} // namespace test
} // namespace tern
