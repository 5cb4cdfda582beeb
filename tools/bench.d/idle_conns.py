#!/usr/bin/env python3
"""Idle-connection holders for the proxy memory benchmark (loopback only).

  idle_conns.py serve   --port P --status FILE [--max-seconds S]
      Origin side: accepts connections and holds them open, never reading or writing.
  idle_conns.py connect --port P --count N --status FILE [--deadline S] [--max-seconds S]
      Client side: opens N connections to 127.0.0.1:P and holds them open.

Both sides run as separate processes because each needs N fds and the fd limit is per
process. Progress is published in FILE (rewritten atomically a few times a second) as
`key=value` words, e.g. `accepted=8000` or `connected=8000 failed=0 done=1`, so the
harness can poll it without talking to the process. Both exit on their own after
--max-seconds (bounded lifetime), or earlier on SIGTERM.
"""
import argparse
import errno
import os
import selectors
import signal
import socket
import sys
import time


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


def serve(args):
    raise_nofile()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(4096)  # capped by net.core.somaxconn
    ls.setblocking(False)
    sel = selectors.DefaultSelector()  # epoll: no 1024-fd select() limit
    sel.register(ls, selectors.EVENT_READ)
    held = []
    errors = 0
    end = time.monotonic() + args.max_seconds
    last = -1
    write_status(args.status, accepted=0, errors=0)
    while time.monotonic() < end:
        for _ in sel.select(timeout=0.1):
            # Drain the accept queue; keep the sockets referenced so they stay open.
            while True:
                try:
                    s, _ = ls.accept()
                except BlockingIOError:
                    break
                except OSError as e:  # EMFILE and friends: count, keep going
                    errors += 1
                    if e.errno in (errno.EMFILE, errno.ENFILE):
                        time.sleep(0.01)
                    break
                held.append(s)
        if len(held) != last:
            last = len(held)
            write_status(args.status, accepted=last, errors=errors)
    return 0


def connect(args):
    limit = raise_nofile()
    if args.count + 16 > limit:
        print(f"idle_conns: fd limit {limit} too low for {args.count} connections",
              file=sys.stderr)
    sel = selectors.DefaultSelector()
    connected = []
    failed = 0
    started = 0
    inflight = 0
    deadline = time.monotonic() + args.deadline
    next_status = 0.0

    def status(done):
        write_status(args.status, connected=len(connected), failed=failed,
                     inflight=inflight, done=int(done))

    # Non-blocking connects with a bounded number in flight, so a proxy with a short
    # accept backlog sees a steady stream rather than thousands of SYNs at once.
    while time.monotonic() < deadline and (started < args.count or inflight):
        while started < args.count and inflight < args.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            started += 1
            try:
                rc = s.connect_ex(("127.0.0.1", args.port))
            except OSError:
                rc = errno.EMFILE
            if rc == 0:
                connected.append(s)
            elif rc == errno.EINPROGRESS:
                sel.register(s, selectors.EVENT_WRITE)
                inflight += 1
            else:
                failed += 1
                s.close()
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            sel.unregister(s)
            inflight -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                failed += 1
                s.close()
        now = time.monotonic()
        if now >= next_status:
            status(False)
            next_status = now + 0.2
    status(True)
    # Hold the connections until killed or the lifetime ends.
    end = time.monotonic() + args.max_seconds
    while time.monotonic() < end:
        time.sleep(0.5)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("serve")
    ps.add_argument("--port", type=int, required=True)
    ps.add_argument("--status", required=True)
    ps.add_argument("--max-seconds", type=float, default=600)
    pc = sub.add_parser("connect")
    pc.add_argument("--port", type=int, required=True)
    pc.add_argument("--count", type=int, required=True)
    pc.add_argument("--status", required=True)
    pc.add_argument("--inflight", type=int, default=256)
    pc.add_argument("--deadline", type=float, default=60,
                    help="give up opening connections after this many seconds")
    pc.add_argument("--max-seconds", type=float, default=600,
                    help="exit after holding this long")
    args = p.parse_args()
    # Exit promptly (closing every socket) on SIGTERM from the harness.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(args) if args.cmd == "serve" else connect(args)


if __name__ == "__main__":
    sys.exit(main())
