#!/usr/bin/env python3
"""HTTP/1.1 clients and load-generator output parsers for tools/bench http and h2
(stdlib only, loopback only).

  http_clients.py keepalive --port P --requests N [--timeout S]
      N sequential GET / requests on one keep-alive connection (reconnecting only if the
      server closes it). Prints `ok=N non2xx=N errors=N reconnects=N seconds=S` and exits
      non-zero unless every request got a 2xx. Used to drive a proxy under callgrind
      with an exact request count.
  http_clients.py idle --port P --count N --status FILE [--inflight K] [--deadline S]
                       [--max-seconds S]
      Opens N connections, sends one GET / on each, reads the response, then keeps the
      connection open and idle. Progress in FILE (rewritten atomically) as key=value
      words: `connected= ok= non2xx= failed= closed= inflight= done=`; `closed` counts
      held connections the server closed afterwards. Exits after --max-seconds or on
      SIGTERM.
  http_clients.py wrk-parse FILE
      From `wrk --latency` output: `rps p50_us p99_us requests non2xx socket_errors`.
  http_clients.py h2load-parse FILE
      From h2load output: `rps succeeded done failed errored timeout non2xx mean_us
      max_us sd_us` (the "time for request" line: h2load 1.52 prints min, max, mean and
      sd, no percentiles).
"""
import argparse
import errno
import os
import re
import selectors
import signal
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: tern-bench\r\n\r\n"


class Response:
    """Incremental parser for one response (Content-Length or chunked body)."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.body_left = None   # bytes of body still expected (Content-Length)
        self.chunked = False
        self.close = False      # server said Connection: close

    def feed(self, data):
        """Adds bytes; returns leftover bytes after a complete response, or None."""
        self.buf += data
        if self.status is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
            lines = head.split("\r\n")
            self.status = int(lines[0].split(" ", 2)[1])
            self.body_left = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                k, v = k.strip().lower(), v.strip().lower()
                if k == "content-length":
                    self.body_left = int(v)
                elif k == "transfer-encoding" and "chunked" in v:
                    self.chunked = True
                elif k == "connection" and v == "close":
                    self.close = True
        if self.chunked:
            # Walk complete chunks; done at the zero-size chunk plus its trailer CRLF.
            while True:
                nl = self.buf.find(b"\r\n")
                if nl < 0:
                    return None
                size = int(self.buf[:nl].split(b";")[0], 16)
                if size == 0:
                    end = self.buf.find(b"\r\n\r\n", nl)
                    if end < 0:
                        return None
                    return self.buf[end + 4:]
                if len(self.buf) < nl + 2 + size + 2:
                    return None
                self.buf = self.buf[nl + 2 + size + 2:]
        if len(self.buf) < self.body_left:
            return None
        return self.buf[self.body_left:]


def keepalive(args):
    ok = non2xx = errors = reconnects = 0
    t0 = time.monotonic()
    s = None
    pending = b""
    for _ in range(args.requests):
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending = b""
            s.sendall(REQUEST)
            r = Response()
            rest = r.feed(pending)
            while rest is None:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed by server mid-response")
                rest = r.feed(data)
            pending = rest
            if 200 <= r.status < 300:
                ok += 1
            else:
                non2xx += 1
            if r.close:
                s.close()
                s = None
                reconnects += 1
        except (OSError, ValueError, IndexError) as e:
            errors += 1
            print(f"http_clients: request failed: {e!r}", file=sys.stderr)
            if s is not None:
                s.close()
            s = None
            reconnects += 1
            if errors > 10:
                break
    if s is not None:
        s.close()
    print(f"ok={ok} non2xx={non2xx} errors={errors} reconnects={reconnects} "
          f"seconds={time.monotonic() - t0:.3f}")
    return 0 if ok == args.requests else 1


def write_status(path, **kv):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(f"{k}={v}" for k, v in kv.items()) + "\n")
    os.replace(tmp, path)


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle(args):
    limit = raise_nofile()
    if args.count + 16 > limit:
        print(f"http_clients: fd limit {limit} too low for {args.count} connections",
              file=sys.stderr)
    sel = selectors.DefaultSelector()
    st = dict(connected=0, ok=0, non2xx=0, failed=0, closed=0, inflight=0, done=0)
    held = []   # sockets whose request completed; kept referenced so they stay open
    started = 0
    deadline = time.monotonic() + args.deadline
    next_status = 0.0

    def fail(s):
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        st["failed"] += 1
        st["inflight"] -= 1

    # Phase 1: connect, send one request, read its response; bounded number in flight.
    # Per-socket state: "connecting" -> "reading" (request sent) -> "idle" (held).
    while time.monotonic() < deadline and (started < args.count or st["inflight"]):
        while started < args.count and st["inflight"] < args.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            started += 1
            st["inflight"] += 1
            try:
                rc = s.connect_ex(("127.0.0.1", args.port))
            except OSError:
                rc = errno.EMFILE
            if rc in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE, ["connecting", None])
            else:
                fail(s)
        for key, _ in sel.select(timeout=0.1):
            s, data = key.fileobj, key.data
            if data[0] == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    fail(s)
                    continue
                st["connected"] += 1
                try:
                    s.send(REQUEST)   # tiny: fits an empty socket buffer
                except OSError:
                    fail(s)
                    continue
                data[0], data[1] = "reading", Response()
                sel.modify(s, selectors.EVENT_READ, data)
            elif data[0] == "reading":
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    fail(s)
                    continue
                if not chunk:
                    fail(s)
                    continue
                try:
                    rest = data[1].feed(chunk)
                except (ValueError, IndexError):
                    fail(s)
                    continue
                if rest is None:
                    continue
                st["ok" if 200 <= data[1].status < 300 else "non2xx"] += 1
                st["inflight"] -= 1
                data[0], data[1] = "idle", None
                held.append(s)   # stays registered for reading: a close shows up
            else:  # idle: the server closed it (or sent something unasked)
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(s)
                    s.close()
                    st["closed"] += 1
        now = time.monotonic()
        if now >= next_status:
            write_status(args.status, **st)
            next_status = now + 0.2
    # Whatever is still in flight at the deadline counts as failed.
    st["failed"] += st["inflight"]
    st["inflight"] = 0
    st["done"] = 1
    write_status(args.status, **st)
    # Phase 2: hold, noticing closes, until killed or the lifetime ends.
    end = time.monotonic() + args.max_seconds
    while time.monotonic() < end:
        changed = False
        for key, _ in sel.select(timeout=0.5):
            s, data = key.fileobj, key.data
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk or data[0] != "idle":
                sel.unregister(s)
                s.close()
                st["closed" if data[0] == "idle" else "failed"] += 1
                changed = True
        if changed:
            write_status(args.status, **st)
    return 0


def to_us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        raise ValueError(f"bad latency {v!r}")
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def wrk_parse(path):
    text = open(path).read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rps or not total:
        sys.exit(f"wrk-parse: no result in {path}")
    lat = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", text, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     text)
    errs = sum(int(x) for x in sock.groups()) if sock else 0
    p50 = f"{to_us(lat['50']):.1f}" if "50" in lat else "n/a"
    p99 = f"{to_us(lat['99']):.1f}" if "99" in lat else "n/a"
    print(f"{float(rps.group(1)):.0f} {p50} {p99} {total.group(1)} "
          f"{non2xx.group(1) if non2xx else 0} {errs}")


def h2load_parse(path):
    text = open(path).read()
    fin = re.search(r"^finished in \S+, ([\d.]+) req/s", text, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    lat = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if not fin or not req or not codes or not lat:
        sys.exit(f"h2load-parse: no result in {path}")
    _total, _started, done, ok, failed, errored, timeout = req.groups()
    if int(ok) == 0:
        sys.exit(f"h2load-parse: no successful request in {path}")
    non2xx = sum(int(x) for x in codes.groups()[1:])
    _lo, hi, mean, sd = (to_us(x) for x in lat.groups())
    print(f"{float(fin.group(1)):.0f} {ok} {done} {failed} {errored} {timeout} {non2xx} "
          f"{mean:.1f} {hi:.1f} {sd:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("keepalive")
    pk.add_argument("--port", type=int, required=True)
    pk.add_argument("--requests", type=int, required=True)
    pk.add_argument("--timeout", type=float, default=30,
                    help="per-operation socket timeout (a proxy under valgrind is slow)")
    pi = sub.add_parser("idle")
    pi.add_argument("--port", type=int, required=True)
    pi.add_argument("--count", type=int, required=True)
    pi.add_argument("--status", required=True)
    pi.add_argument("--inflight", type=int, default=256)
    pi.add_argument("--deadline", type=float, default=60,
                    help="give up on connections not answered after this many seconds")
    pi.add_argument("--max-seconds", type=float, default=600,
                    help="exit after holding this long")
    pw = sub.add_parser("wrk-parse")
    pw.add_argument("file")
    ph = sub.add_parser("h2load-parse")
    ph.add_argument("file")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.cmd == "keepalive":
        return keepalive(args)
    if args.cmd == "idle":
        return idle(args)
    if args.cmd == "h2load-parse":
        h2load_parse(args.file)
        return 0
    wrk_parse(args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
