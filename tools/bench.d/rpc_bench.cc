// A fast SOFARPC (Bolt v1) / Dubbo load generator and upstream for tools/bench rpc: one
// thread, edge-triggered epoll, non-blocking sockets, 127.0.0.1 only. Far cheaper per
// request than any proxy, so the proxy is what a run measures.
//
//   rpc_bench server --proto bolt|dubbo --port P
//       Answers every two-way request at once with a success response carrying its id
//       (Bolt: SofaResponse class, respStatus 0; Dubbo: status 20, hessian2 value);
//       heartbeats with heartbeats; one-way requests with nothing. Runs until killed.
//
//   rpc_bench load --proto bolt|dubbo --port P [--connections 64] [--inflight 16]
//                  [--duration S] [--warmup S] [--requests N]
//       Keeps `inflight` requests outstanding on each connection (ids from 1 on each; a
//       SofaRequest with SOFARPC's headers, or a hessian2 Dubbo call with attachments),
//       checks that every response answers an outstanding id with success, and prints one
//       JSON line: {"proto","requests","errors","seconds","rps","p50_us","p99_us"}.
//       --warmup S runs first without counting. --requests N stops after N responses
//       instead of after --duration (callgrind runs: a fixed amount of work).
//
// Build: g++ -O2 -std=c++17 -o rpc_bench rpc_bench.cc (tools/bench rpc does this).

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

enum class Proto { Bolt, Dubbo };

void die(const char* what) {
  std::fprintf(stderr, "rpc_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void put16(std::string& s, uint16_t v) {
  s.push_back(char(v >> 8));
  s.push_back(char(v));
}
void put32(std::string& s, uint32_t v) {
  put16(s, uint16_t(v >> 16));
  put16(s, uint16_t(v));
}
void put64(std::string& s, uint64_t v) {
  put32(s, uint32_t(v >> 32));
  put32(s, uint32_t(v));
}
uint16_t get16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
uint32_t get32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint64_t get64(const uint8_t* p) { return (uint64_t(get32(p)) << 32) | get32(p + 4); }
void set32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
void set64(uint8_t* p, uint64_t v) {
  set32(p, uint32_t(v >> 32));
  set32(p + 4, uint32_t(v));
}

// Hessian 2 short string (under 32 bytes).
std::string hs(const std::string& s) { return std::string(1, char(s.size())) + s; }

// ---- Frames -----------------------------------------------------------------------------

std::string boltRequest() {
  const std::string cls = "com.alipay.sofa.rpc.core.request.SofaRequest";
  std::string hm;
  for (auto [k, v] : {std::pair<const char*, const char*>{"service", "com.tern.bench.EchoService:1.0"},
                      {"sofa_head_method_name", "echo"},
                      {"sofa_head_target_app", "bench"},
                      {"sofa_head_target_service", "com.tern.bench.EchoService:1.0"},
                      {"type", "sync"}}) {
    put32(hm, uint32_t(std::strlen(k)));
    hm += k;
    put32(hm, uint32_t(std::strlen(v)));
    hm += v;
  }
  // A SofaRequest-shaped hessian object, about 100 bytes; never decoded by the proxy.
  std::string content = "O" + std::string(1, char(0x90 + 1)) + "C" + hs("methodName") + hs("echo") +
                        hs("methodArgSigs") + hs("java.lang.String") + hs("args") + hs("hello, tern bench!") +
                        hs("requestProps") + "N";
  std::string f;
  f.push_back(1);  // proto v1
  f.push_back(1);  // request
  put16(f, 1);     // cmdcode RPC request
  f.push_back(1);  // ver2
  put32(f, 0);     // id, patched per request
  f.push_back(1);  // hessian2
  put32(f, 3000);  // timeout
  put16(f, uint16_t(cls.size()));
  put16(f, uint16_t(hm.size()));
  put32(f, uint32_t(content.size()));
  return f + cls + hm + content;
}

std::string boltResponse(uint32_t id) {
  const std::string cls = "com.alipay.sofa.rpc.core.response.SofaResponse";
  std::string content = "O" + std::string(1, char(0x90 + 1)) + "C" + hs("appResponse") + hs("hello, tern bench!");
  std::string f;
  f.push_back(1);
  f.push_back(0);  // response
  put16(f, 2);     // cmdcode RPC response
  f.push_back(1);
  put32(f, id);
  f.push_back(1);
  put16(f, 0);     // SUCCESS
  put16(f, uint16_t(cls.size()));
  put16(f, 0);
  put32(f, uint32_t(content.size()));
  return f + cls + content;
}

std::string boltHeartbeatAck(uint32_t id) {
  std::string f;
  f.push_back(1);
  f.push_back(0);
  put16(f, 0);
  f.push_back(1);
  put32(f, id);
  f.push_back(1);
  put16(f, 0);
  put16(f, 0);
  put16(f, 0);
  put32(f, 0);
  return f;
}

std::string dubboRequest() {
  std::string body = hs("2.0.2") + hs("com.tern.bench.EchoService") + hs("1.0.0") + hs("echo") +
                     hs("Ljava/lang/String;") + hs("hello, tern bench!") + "H" + hs("path") +
                     hs("com.tern.bench.EchoService") + hs("interface") + hs("com.tern.bench.EchoService") +
                     hs("version") + hs("1.0.0") + "Z";
  std::string f = "\xda\xbb";
  f.push_back(char(0xc2));  // request, two-way, hessian2
  f.push_back(0);
  put64(f, 0);
  put32(f, uint32_t(body.size()));
  return f + body;
}

std::string dubboResponse(uint64_t id, bool event) {
  std::string body = event ? std::string("N") : "\x91" + hs("hello, tern bench!");
  std::string f = "\xda\xbb";
  f.push_back(char(event ? 0x22 : 0x02));
  f.push_back(20);
  put64(f, id);
  put32(f, uint32_t(body.size()));
  return f + body;
}

// Length of the frame at p (n bytes available), 0 if more are needed; -1 if not a frame.
long frameLength(Proto proto, const uint8_t* p, size_t n) {
  if (proto == Proto::Dubbo) {
    if (n < 16) return 0;
    if (p[0] != 0xda || p[1] != 0xbb) return -1;
    size_t len = 16 + size_t(get32(p + 12));
    return n >= len ? long(len) : 0;
  }
  if (n < 2) return 0;
  if (p[0] != 1) return -1;
  const bool response = p[1] == 0;
  const size_t fixed = response ? 20 : 22;
  if (n < fixed) return 0;
  const uint8_t* l = p + (response ? 12 : 14);
  size_t len = fixed + get16(l) + get16(l + 2) + get32(l + 4);
  return n >= len ? long(len) : 0;
}

// ---- Connections ------------------------------------------------------------------------

struct Conn {
  int fd{-1};
  std::string in;
  size_t in_off{0};
  std::string out;
  size_t out_off{0};
  bool want_write{false};
  // Load side.
  uint64_t next_id{1};
  std::vector<uint64_t> slot_id;  // outstanding id per slot (id % slots), 0 free
  std::vector<std::chrono::steady_clock::time_point> slot_t;
};

void setNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Writes what it can; arms EPOLLOUT when the socket is full.
bool flush(int ep, Conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t w = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
    if (w > 0) {
      c.out_off += size_t(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c.want_write) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
        ev.data.ptr = &c;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        c.want_write = true;
      }
      return true;
    }
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  if (c.want_write) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
    c.want_write = false;
  }
  return true;
}

// Reads everything available into c.in; false on EOF or error.
bool fill(Conn& c) {
  if (c.in_off > 0 && c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  } else if (c.in_off > 65536) {
    c.in.erase(0, c.in_off);
    c.in_off = 0;
  }
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(c.fd, buf, sizeof(buf));
    if (r > 0) {
      c.in.append(buf, size_t(r));
      if (size_t(r) < sizeof(buf)) return true;
      continue;
    }
    if (r == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

const char* arg(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 2; i + 1 < argc; i++) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return dflt;
}

Proto parseProto(const char* s) {
  if (std::strcmp(s, "bolt") == 0) return Proto::Bolt;
  if (std::strcmp(s, "dubbo") == 0) return Proto::Dubbo;
  std::fprintf(stderr, "rpc_bench: --proto bolt|dubbo\n");
  std::exit(2);
}

// ---- Server -----------------------------------------------------------------------------

int server(Proto proto, int port) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) die("bind");
  if (listen(ls, 1024) != 0) die("listen");
  setNonBlocking(ls);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  const std::string bolt_ok = boltResponse(0);
  const std::string dubbo_ok = dubboResponse(0, false);
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = epoll_wait(ep, events.data(), int(events.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == nullptr) {
        for (;;) {
          int fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          auto* c = new Conn;
          c->fd = fd;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLET;
          cev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      bool ok = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ok = fill(c);
        for (;;) {
          const uint8_t* p = reinterpret_cast<const uint8_t*>(c.in.data()) + c.in_off;
          long len = frameLength(proto, p, c.in.size() - c.in_off);
          if (len < 0) {
            ok = false;
            break;
          }
          if (len == 0) break;
          if (proto == Proto::Bolt) {
            const uint32_t id = get32(p + 5);
            if (p[1] == 1 && get16(p + 2) == 1) {
              size_t at = c.out.size();
              c.out += bolt_ok;
              set32(reinterpret_cast<uint8_t*>(&c.out[at]) + 5, id);
            } else if (p[1] == 1 && get16(p + 2) == 0) {
              c.out += boltHeartbeatAck(id);
            }
          } else {
            const uint8_t flag = p[2];
            if ((flag & 0x80) && (flag & 0x40)) {
              if (flag & 0x20) {
                c.out += dubboResponse(get64(p + 4), true);
              } else {
                size_t at = c.out.size();
                c.out += dubbo_ok;
                set64(reinterpret_cast<uint8_t*>(&c.out[at]) + 4, get64(p + 4));
              }
            }
          }
          c.in_off += size_t(len);
        }
      }
      if (ok) ok = flush(ep, c);
      if (!ok) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        delete &c;
      }
    }
  }
}

// ---- Load -------------------------------------------------------------------------------

int load(Proto proto, int port, int conns, int inflight, double duration, double warmup, long limit) {
  signal(SIGPIPE, SIG_IGN);
  const std::string tmpl = proto == Proto::Bolt ? boltRequest() : dubboRequest();
  const size_t id_at = proto == Proto::Bolt ? 5 : 4;
  const size_t slots = size_t(inflight) * 4;
  int ep = epoll_create1(0);
  std::vector<std::unique_ptr<Conn>> cs;
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto send = [&](Conn& c) {
    const uint64_t id = c.next_id++;
    size_t at = c.out.size();
    c.out += tmpl;
    uint8_t* p = reinterpret_cast<uint8_t*>(&c.out[at]) + id_at;
    if (proto == Proto::Bolt) set32(p, uint32_t(id));
    else set64(p, id);
    c.slot_id[id % slots] = id;
    c.slot_t[id % slots] = now();
  };
  for (int i = 0; i < conns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setNonBlocking(fd);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->slot_id.assign(slots, 0);
    c->slot_t.resize(slots);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.ptr = c.get();
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (int k = 0; k < inflight; k++) send(*c);
    if (!flush(ep, *c)) die("write");
    cs.push_back(std::move(c));
  }
  // Latency histogram in microseconds (1 us buckets to 100 ms).
  std::vector<uint64_t> hist(100001, 0);
  uint64_t done = 0, errors = 0, sent = uint64_t(conns) * uint64_t(inflight);
  const auto t_start = now();
  auto t_measure = t_start + std::chrono::microseconds(int64_t(warmup * 1e6));
  bool measuring = warmup <= 0 || limit > 0;
  auto t_end = (measuring ? t_start : t_measure) + std::chrono::microseconds(int64_t(duration * 1e6));
  std::vector<epoll_event> events(256);
  while (true) {
    const auto t = now();
    if (!measuring && t >= t_measure) {
      measuring = true;
      t_measure = t;
      t_end = t + std::chrono::microseconds(int64_t(duration * 1e6));
    }
    if (limit > 0 ? done >= uint64_t(limit) : (measuring && t >= t_end)) break;
    int n = epoll_wait(ep, events.data(), int(events.size()), 100);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (!fill(c)) {
        std::fprintf(stderr, "rpc_bench: connection closed by the server\n");
        return 1;
      }
      const auto tr = now();
      for (;;) {
        const uint8_t* p = reinterpret_cast<const uint8_t*>(c.in.data()) + c.in_off;
        long len = frameLength(proto, p, c.in.size() - c.in_off);
        if (len < 0) {
          std::fprintf(stderr, "rpc_bench: not a %s frame from the server\n", proto == Proto::Bolt ? "bolt" : "dubbo");
          return 1;
        }
        if (len == 0) break;
        uint64_t id;
        bool ok;
        if (proto == Proto::Bolt) {
          id = get32(p + 5);
          ok = p[1] == 0 && get16(p + 2) == 2 && get16(p + 10) == 0;
        } else {
          id = get64(p + 4);
          ok = (p[2] & 0x80) == 0 && p[3] == 20;
        }
        const size_t s = id % slots;
        if (c.slot_id[s] != id) {
          ok = false;
        } else {
          c.slot_id[s] = 0;
          if (measuring) {
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(tr - c.slot_t[s]).count();
            hist[size_t(us < 0 ? 0 : us > 100000 ? 100000 : us)]++;
          }
        }
        if (measuring || limit > 0) {
          done++;
          if (!ok) errors++;
        }
        c.in_off += size_t(len);
        if (limit <= 0 || sent < uint64_t(limit)) {
          send(c);
          sent++;
        }
      }
      if (!flush(ep, c)) {
        std::fprintf(stderr, "rpc_bench: write failed\n");
        return 1;
      }
    }
  }
  const double secs = std::chrono::duration<double>(now() - (limit > 0 ? t_start : t_measure)).count();
  auto pct = [&](double q) {
    uint64_t total = 0;
    for (uint64_t v : hist) total += v;
    uint64_t want = uint64_t(q * double(total)), acc = 0;
    for (size_t i = 0; i < hist.size(); i++) {
      acc += hist[i];
      if (acc > want) return long(i);
    }
    return 0L;
  };
  std::printf("{\"proto\":\"%s\",\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"rps\":%.0f,"
              "\"p50_us\":%ld,\"p99_us\":%ld}\n",
              proto == Proto::Bolt ? "bolt" : "dubbo", static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(errors), secs, double(done) / secs, pct(0.5), pct(0.99));
  return errors == 0 ? 0 : 3;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "server") != 0 && std::strcmp(argv[1], "load") != 0)) {
    std::fprintf(stderr, "usage: rpc_bench server|load --proto bolt|dubbo --port P [...]\n");
    return 2;
  }
  const Proto proto = parseProto(arg(argc, argv, "--proto", "bolt"));
  const int port = std::atoi(arg(argc, argv, "--port", "0"));
  if (port <= 0) {
    std::fprintf(stderr, "rpc_bench: --port is required\n");
    return 2;
  }
  if (std::strcmp(argv[1], "server") == 0) return server(proto, port);
  return load(proto, port, std::atoi(arg(argc, argv, "--connections", "64")),
              std::atoi(arg(argc, argv, "--inflight", "16")), std::atof(arg(argc, argv, "--duration", "5")),
              std::atof(arg(argc, argv, "--warmup", "0")), std::atol(arg(argc, argv, "--requests", "0")));
}
