#!/usr/bin/env python3
"""Writes the seed corpus of //test/fuzz:http2_server_fuzz_replay (test/fuzz/corpus/http2_server).

Run once from the workspace root when the seeds need regenerating:
    python3 test/extensions/codecs/http2/gen_fuzz_seeds.py
Each seed is: an options byte, a cut seed byte, then raw frames (layout in
test/fuzz/http2_server_fuzz.cc). Header blocks use HPACK literals without indexing (and a
few static-table indexes), so no HPACK library is needed here.
"""
import os
import struct

OUT = "test/fuzz/corpus/http2_server"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def lit(name, value):
    """Literal field without indexing, new name (RFC 7541 6.2.2); short strings only."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def block(fields):
    return b"".join(lit(k, v) for k, v in fields)


def req(method="GET", path="/", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "h"), (":path", path)] + list(extra)


def headers(stream, fields, end_stream=True):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block(fields))


def settings(*entries):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


ACK_SETTINGS = frame(SETTINGS, ACK, 0)

SEEDS = {
    # Server side, preface added by the harness (bit 0).
    "get": (0x01, 7, ACK_SETTINGS + headers(1, req())),
    "get_static_table": (0x01, 3, ACK_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                                       b"\x82\x86\x84\x41\x01h")),
    "post_body_trailers": (0x01, 11, ACK_SETTINGS + headers(1, req("POST"), False) +
                           frame(DATA, 0, 1, b"hello") + frame(DATA, PADDED, 1, b"\x02ab\x00\x00") +
                           headers(1, [("x-sum", "7")])),
    "respond_at_headers": (0x11, 5, headers(1, req("POST"), False) + frame(DATA, 0, 1, b"late") +
                           frame(DATA, END_STREAM, 1, b"")),
    "paused_reader": (0x21, 9, ACK_SETTINGS + headers(1, req("PUT"), False) +
                      frame(DATA, 0, 1, b"x" * 300) + frame(DATA, 0, 1, b"y" * 300) +
                      headers(1, [("x-t", "1")]) + headers(3, req())),
    "owner_reset": (0x31, 2, headers(1, req("POST"), False) + frame(DATA, END_STREAM, 1, b"abc") +
                    headers(3, req())),
    "client_resets": (0x01, 4, b"".join(headers(2 * i + 1, req("POST"), False) +
                                        frame(RST, 0, 2 * i + 1, struct.pack(">I", 8))
                                        for i in range(12))),
    "control_frames": (0x01, 6, settings((1, 8192), (3, 10), (4, 1 << 20)) + ACK_SETTINGS +
                       frame(PING, 0, 0, b"12345678") + frame(WINDOW, 0, 0, struct.pack(">I", 1000)) +
                       frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15)) + headers(1, req()) +
                       frame(WINDOW, 0, 1, struct.pack(">I", 5000)) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0))),
    "continuation": (0x01, 8, frame(HEADERS, 0, 1, block(req()[:2])) +
                     frame(CONT, 0, 1, block(req()[2:])) + frame(CONT, END_HEADERS, 1, block([("x-a", "b")]))),
    "uppercase_name": (0x01, 1, headers(1, req(extra=[("X-Upper", "1")])) + headers(3, req())),
    "uppercase_name_stream_error": (0x03, 1, headers(1, req(extra=[("X-Upper", "1")])) +
                                    headers(3, req(extra=[("connection", "close")])) +
                                    headers(5, [(":method", "GET")]) + headers(7, req())),
    "host_cookie_expect": (0x01, 12, headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/"),
                                                 ("host", "a"), ("cookie", "x=1"), ("cookie", "y=2"),
                                                 ("expect", "100-continue")], False) +
                           frame(DATA, END_STREAM, 1, b"ok")),
    "small_limits": (0x05, 13, headers(1, req(extra=[("x-%d" % i, "v" * 100) for i in range(12)])) +
                     b"".join(headers(2 * i + 3, req()) for i in range(6))),
    "full_write_buffer": (0x19, 14, b"".join(headers(2 * i + 1, req()) for i in range(8)) +
                          frame(WINDOW, 0, 0, struct.pack(">I", 100000))),
    "empty_data_flood": (0x01, 10, headers(1, req("POST"), False) + frame(DATA, 0, 1) + frame(DATA, 0, 1)),
    # A DATA frame announcing 16385 bytes: rejected at its header, the payload never matters.
    "oversized_frame": (0x01, 0, headers(1, req("POST"), False) +
                        struct.pack(">I", 16385)[1:] + bytes([DATA, 0]) + struct.pack(">I", 1) + b"z" * 8),
    "bad_preface": (0x00, 0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
    "raw_preface": (0x00, 3, PREFACE + settings() + headers(1, req())),
    # Client side: three requests (streams 1, 3, 5) are open; this is the server talking.
    "client_responses": (0x81, 5, ACK_SETTINGS +
                         headers(1, [(":status", "200")], False) + frame(DATA, 0, 1, b"body") +
                         headers(1, [("x-t", "1")]) +
                         headers(3, [(":status", "103"), ("link", "</a>")], False) +
                         headers(3, [(":status", "204")]) +
                         frame(RST, 0, 5, struct.pack(">I", 7))),
    "client_goaway": (0x81, 6, settings((3, 1)) + headers(1, [(":status", "200")], False) +
                      frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)) + frame(DATA, END_STREAM, 1, b"x")),
    "client_bad_response": (0x81, 7, headers(1, [(":status", "200"), ("Bad", "x")]) +
                            headers(3, [("x-no-status", "1")])),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (mode, seed, payload) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([mode, seed]) + payload)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
