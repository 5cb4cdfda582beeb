#include "test/integration/http_test_helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tern {
namespace test {

std::string headerValue(const HeaderList& headers, absl::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

bool hasHeader(const HeaderList& headers, absl::string_view name) {
  for (const auto& h : headers) {
    if (h.first == name) return true;
  }
  return false;
}

std::string makeTempDir(absl::string_view tag) {
  static std::atomic<int> counter{0};
  const char* base = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base ? base : "/tmp", "/", tag, "-", getpid(), "-", counter++);
  mkdir(dir.c_str(), 0755);
  return dir;
}

void writeFile(const std::string& path, absl::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), content.size());
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {

// Parses "Name: value" lines of a header block (after the start line) into `out`.
void parseHeaderLines(absl::string_view block, HeaderList& out) {
  for (absl::string_view line : absl::StrSplit(block, "\r\n", absl::SkipEmpty())) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    out.emplace_back(name, std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
}

} // namespace

std::string shellQuote(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

CommandResult runCommand(const std::string& cmd) {
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool haveCommand(const std::string& name) {
  return runCommand(absl::StrCat("command -v ", shellQuote(name), " >/dev/null 2>&1")).exit_code == 0;
}

// ---------------------------------------------------------------------------------------
// ChildProcess

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  static std::atomic<int> counter{0};
  const char* base = getenv("TEST_TMPDIR");
  stderr_path_ = absl::StrCat(base ? base : "/tmp", "/child-", getpid(), "-", counter++, ".err");
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    error_ = "pipe failed";
    return;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    error_ = "pipe failed";
    return;
  }
  int err_fd = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  // Everything the child needs, prepared before fork (only async-signal-safe calls after).
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; e++) envs.emplace_back(*e);
  for (const auto& e : env) envs.push_back(e);
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(in[0], 0);
    dup2(out[1], 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  if (err_fd >= 0) ::close(err_fd);
  stdin_fd_ = in[1];
  stdout_fd_ = out[0];
  if (pid_ < 0) error_ = "fork failed";
}

ChildProcess::~ChildProcess() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status;
    bool exited = waitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, 10000);
    if (!exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

bool ChildProcess::readLine(std::string& line, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return true;
    }
    int left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || stdout_fd_ < 0) return false;
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[4096];
    ssize_t n = ::read(stdout_fd_, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf_.append(tmp, n);
  }
}

// ---------------------------------------------------------------------------------------
// Nginx

Nginx::Nginx(const std::vector<std::string>& servers,
             const std::vector<std::pair<std::string, std::string>>& files,
             const std::vector<std::string>& listen_params) {
  dir_ = makeTempDir("nginx");
  mkdir((dir_ + "/www").c_str(), 0755);
  mkdir((dir_ + "/tmp").c_str(), 0755);
  for (const auto& [path, content] : files) {
    // One level of subdirectories is enough here.
    size_t slash = path.rfind('/');
    if (slash != std::string::npos) mkdir((dir_ + "/www/" + path.substr(0, slash)).c_str(), 0755);
    writeFile(dir_ + "/www/" + path, content);
  }
  std::string conf = absl::StrCat(
      geteuid() == 0 ? "user root;\n" : "", "worker_processes 1;\nmaster_process off;\nerror_log ",
      dir_, "/error.log info;\npid ", dir_, "/nginx.pid;\nevents { worker_connections 1024; }\nhttp {\n",
      "  access_log off;\n  default_type application/octet-stream;\n",
      "  keepalive_timeout 75s;\n  keepalive_requests 100000;\n");
  for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    absl::StrAppend(&conf, "  ", t, "_temp_path ", dir_, "/tmp/", t, ";\n");
  }
  for (size_t i = 0; i < servers.size(); i++) {
    uint16_t port = freePort();
    ports_.push_back(port);
    std::string params = i < listen_params.size() && !listen_params[i].empty() ? " " + listen_params[i] : "";
    absl::StrAppend(&conf, "  server {\n    listen 127.0.0.1:", port, params, ";\n    root ", dir_,
                    "/www;\n", servers[i], "\n  }\n");
  }
  conf += "}\n";
  std::string conf_path = dir_ + "/nginx.conf";
  writeFile(conf_path, conf);

  // Everything the child needs, prepared before fork (only async-signal-safe calls after).
  std::string out_path = dir_ + "/stderr.log";
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::string prefix = dir_ + "/";
  std::string error_log = dir_ + "/error.log";
  std::vector<std::string> args = {"nginx", "-p", prefix, "-e", error_log, "-c", conf_path,
                                   "-g", "daemon off;"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // If the test process dies, so does nginx: no leftover listener on a reused port.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    execvp("nginx", argv.data());
    _exit(127);
  }
  close(out_fd);
  if (pid_ < 0) {
    error_ = "fork failed";
    return;
  }
  for (uint16_t port : ports_) {
    bool up = waitFor(
        [&] {
          int status;
          if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
          }
          int fd = connectTo(port, 200);
          if (fd < 0) return false;
          ::close(fd);
          return true;
        },
        15000);
    if (pid_ < 0 || !up) {
      error_ = absl::StrCat("nginx did not start on port ", port, "\nconfig:\n", conf,
                            "\nstderr:\n", readFile(out_path), "\nerror.log:\n", readFile(error_log));
      return;
    }
  }
}

Nginx::~Nginx() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status;
  bool exited = waitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, 10000);
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

// ---------------------------------------------------------------------------------------
// curl, wrk

CurlResult curl(const std::string& url, const std::vector<std::string>& args) {
  static std::atomic<int> counter{0};
  const char* base = getenv("TEST_TMPDIR");
  std::string stem = absl::StrCat(base ? base : "/tmp", "/curl-", getpid(), "-", counter++);
  std::string cmd = absl::StrCat("curl -sS --noproxy '*' --max-time 60 -o ", stem, ".body -D ",
                                 stem, ".hdr -w '%{http_code}'");
  for (const auto& a : args) absl::StrAppend(&cmd, " ", shellQuote(a));
  absl::StrAppend(&cmd, " ", shellQuote(url), " 2>", stem, ".err");
  CommandResult run = runCommand(cmd);
  CurlResult r;
  r.exit_code = run.exit_code;
  r.body = readFile(stem + ".body");
  r.raw_headers = readFile(stem + ".hdr");
  r.stderr_text = readFile(stem + ".err");
  // The last header block is the final response (1xx blocks come before it).
  std::vector<std::string> blocks = absl::StrSplit(r.raw_headers, "\r\n\r\n", absl::SkipEmpty());
  if (!blocks.empty()) {
    absl::string_view last = blocks.back();
    size_t eol = last.find("\r\n");
    absl::string_view status_line = last.substr(0, eol);
    std::vector<absl::string_view> parts = absl::StrSplit(status_line, absl::MaxSplits(' ', 2));
    if (parts.size() >= 2) {
      r.version = std::string(parts[0]);
      (void)absl::SimpleAtoi(parts[1], &r.status);
    }
    if (eol != absl::string_view::npos) parseHeaderLines(last.substr(eol + 2), r.headers);
  }
  for (const char* ext : {".body", ".hdr", ".err"}) unlink((stem + ext).c_str());
  return r;
}

WrkResult wrk(const std::string& url, int threads, int connections, int seconds) {
  std::string cmd = absl::StrCat("timeout 60 wrk -t", threads, " -c", connections, " -d", seconds,
                                 "s ", shellQuote(url), " 2>&1");
  CommandResult run = runCommand(cmd);
  WrkResult r;
  r.exit_code = run.exit_code;
  r.output = run.out;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::StrContains(line, "requests in")) {
      (void)absl::SimpleAtoi(line.substr(0, line.find(' ')), &r.requests);
    }
    if (absl::StartsWith(line, "Socket errors")) r.socket_errors = true;
    if (absl::StartsWith(line, "Non-2xx")) r.non_2xx = true;
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// RawClient

RawClient::RawClient(uint16_t port) { fd_ = connectTo(port); }

RawClient::~RawClient() { close(); }

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::send(absl::string_view bytes) {
  return fd_ >= 0 && writeAll(fd_, bytes.data(), bytes.size());
}

bool RawClient::fill(int timeout_ms) {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[65536];
  ssize_t n = ::read(fd_, buf, sizeof(buf));
  if (n <= 0) return false;
  buf_.append(buf, n);
  return true;
}

std::string RawClient::read(size_t n, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (buf_.size() < n) {
    int left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || !fill(left)) break;
  }
  std::string out = buf_.substr(0, std::min(n, buf_.size()));
  buf_.erase(0, out.size());
  return out;
}

HttpResponse RawClient::response(bool head, bool skip_1xx, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto left = [&] {
    return std::max<int>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - std::chrono::steady_clock::now())
                                .count());
  };
  for (;;) {
    HttpResponse r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(left())) return r;
    }
    std::string head_block = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    size_t eol = head_block.find("\r\n");
    std::vector<std::string> parts = absl::StrSplit(head_block.substr(0, eol), absl::MaxSplits(' ', 2));
    if (parts.size() < 2) return r;
    r.version = parts[0];
    (void)absl::SimpleAtoi(parts[1], &r.status);
    parseHeaderLines(absl::string_view(head_block).substr(eol + 2), r.headers);
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
      if (skip_1xx) continue;
      r.ok = true;
      return r;
    }
    if (head || r.status == 101 || r.status == 204 || r.status == 304) {
      r.ok = true;
      return r;
    }
    std::string te = absl::AsciiStrToLower(r.header("transfer-encoding"));
    if (absl::StrContains(te, "chunked")) {
      for (;;) {
        size_t eol2;
        while ((eol2 = buf_.find("\r\n")) == std::string::npos) {
          if (!fill(left())) return r;
        }
        std::string size_line = buf_.substr(0, eol2);
        size_t size = std::strtoul(size_line.c_str(), nullptr, 16);
        buf_.erase(0, eol2 + 2);
        if (size == 0) {
          // Trailers, up to the empty line.
          while ((eol2 = buf_.find("\r\n")) != 0) {
            if (eol2 == std::string::npos) {
              if (!fill(left())) return r;
              continue;
            }
            buf_.erase(0, eol2 + 2);
          }
          buf_.erase(0, 2);
          r.ok = true;
          return r;
        }
        while (buf_.size() < size + 2) {
          if (!fill(left())) return r;
        }
        r.body.append(buf_, 0, size);
        buf_.erase(0, size + 2);
      }
    }
    if (r.has("content-length")) {
      size_t len = std::strtoull(r.header("content-length").c_str(), nullptr, 10);
      while (buf_.size() < len) {
        if (!fill(left())) return r;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
      r.ok = true;
      return r;
    }
    // Close-delimited.
    while (fill(left())) {
    }
    r.body.swap(buf_);
    buf_.clear();
    r.ok = true;
    return r;
  }
}

bool RawClient::waitClosed(std::string* extra, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool closed = false;
  for (;;) {
    int left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || fd_ < 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) break;
    char buf[65536];
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n <= 0) {
      closed = true;
      break;
    }
    buf_.append(buf, n);
  }
  if (extra) *extra = buf_;
  buf_.clear();
  return closed;
}

// ---------------------------------------------------------------------------------------
// HttpUpstream

std::string httpResponse(int code, absl::string_view body, absl::string_view extra_headers) {
  return absl::StrCat("HTTP/1.1 ", code, " Test\r\ncontent-length: ", body.size(), "\r\n",
                      extra_headers, "\r\n", body);
}

HttpUpstream::HttpUpstream(Handler handler, Options options)
    : handler_(std::move(handler)), options_(options),
      upstream_([this](int fd) { serve(fd); }) {}

std::vector<Request> HttpUpstream::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

HttpUpstream::Handler HttpUpstream::fixed(int code, std::string body) {
  return [code, body](const Request&, int) { return Reply{httpResponse(code, body)}; };
}

namespace {

// Reads from `fd` into `buf`; false on EOF or error.
bool readMore(int fd, std::string& buf, size_t max = 65536) {
  char tmp[65536];
  ssize_t n = ::read(fd, tmp, std::min(max, sizeof(tmp)));
  if (n <= 0) return false;
  buf.append(tmp, n);
  return true;
}

} // namespace

void HttpUpstream::serve(int fd) {
  if (options_.rcvbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options_.rcvbuf, sizeof(options_.rcvbuf));
  }
  std::string buf;
  int body_reads = 0;
  // Body bytes come in through here: slow at first when asked to.
  auto readBody = [&]() -> bool {
    size_t before = buf.size();
    if (!readMore(fd, buf, 16384)) return false;
    bytes_ += buf.size() - before;
    if (body_reads++ < options_.slow_reads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
  };
  for (;;) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      size_t before = buf.size();
      if (!readMore(fd, buf)) return;
      bytes_ += buf.size() - before;
    }
    Request req;
    std::string head = buf.substr(0, end + 2);
    buf.erase(0, end + 4);
    size_t eol = head.find("\r\n");
    std::vector<std::string> parts = absl::StrSplit(head.substr(0, eol), ' ');
    if (parts.size() == 3) {
      req.method = parts[0];
      req.target = parts[1];
      req.version = parts[2];
    }
    parseHeaderLines(absl::string_view(head).substr(eol + 2), req.headers);
    auto addBody = [&](size_t n) {
      if (options_.keep_body) req.body.append(buf, 0, n);
      req.body_bytes += n;
      buf.erase(0, n);
    };
    if (absl::StrContains(absl::AsciiStrToLower(req.header("transfer-encoding")), "chunked")) {
      req.chunked = true;
      for (;;) {
        size_t e;
        while ((e = buf.find("\r\n")) == std::string::npos) {
          if (!readBody()) return;
        }
        size_t size = std::strtoul(buf.substr(0, e).c_str(), nullptr, 16);
        buf.erase(0, e + 2);
        if (size == 0) {
          while ((e = buf.find("\r\n")) != 0) { // trailers up to the empty line
            if (e == std::string::npos) {
              if (!readBody()) return;
              continue;
            }
            buf.erase(0, e + 2);
          }
          buf.erase(0, 2);
          break;
        }
        while (size > 0) {
          if (buf.empty() && !readBody()) return;
          size_t n = std::min(size, buf.size());
          addBody(n);
          size -= n;
        }
        while (buf.size() < 2) {
          if (!readBody()) return;
        }
        buf.erase(0, 2);
      }
    } else if (req.has("content-length")) {
      size_t len = std::strtoull(req.header("content-length").c_str(), nullptr, 10);
      while (len > 0) {
        if (buf.empty() && !readBody()) return;
        size_t n = std::min(len, buf.size());
        addBody(n);
        len -= n;
      }
    }
    int n = requests_++;
    {
      absl::MutexLock lock(&mu_);
      received_.push_back(req);
    }
    Reply reply = handler_(req, n);
    if (!reply.bytes.empty() && !writeAll(fd, reply.bytes.data(), reply.bytes.size())) return;
    switch (reply.then) {
    case Reply::Then::KeepAlive:
      break;
    case Reply::Then::Close:
      shutdown(fd, SHUT_WR);
      // Let the peer see the FIN before the close (and read what it still sends).
      while (readMore(fd, buf)) {
      }
      return;
    case Reply::Then::Reset: {
      linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      return;
    }
    case Reply::Then::Hang:
      while (readMore(fd, buf)) {
      }
      return;
    case Reply::Then::Custom:
      reply.custom(fd, buf);
      return;
    }
  }
}

} // namespace test
} // namespace tern
