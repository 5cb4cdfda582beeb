#!/usr/bin/env bash
# The tern binary as a user runs it: --mode validate on good and bad configs (exit code,
# file, field path and reason in the message), then a real start on loopback, an echo
# through the TCP proxy, SIGUSR1 stats, SIGTERM shutdown.
set -uo pipefail
TERN="$1"
DEFAULT_CONFIG="$2"
shift 2
EXAMPLES=("$@")
T=$(mktemp -d)
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

expect_valid() {
  if out=$("$TERN" --mode validate -c "$1" 2>&1); then ok "valid: $1"; else fail "valid: $1: $out"; fi
}
# expect_invalid FILE SUBSTRING...: exit 1 and every substring in the message.
expect_invalid() {
  local f=$1
  shift
  local out
  out=$("$TERN" --mode validate -c "$f" 2>&1)
  local rc=$?
  if [[ $rc -ne 1 ]]; then fail "$f: exit $rc, want 1 ($out)"; return; fi
  for s in "$@"; do
    if [[ "$out" != *"$s"* ]]; then fail "$f: message lacks '$s': $out"; return; fi
  done
  ok "invalid: $(basename "$f"): $out"
}

expect_valid "$DEFAULT_CONFIG"
for e in "${EXAMPLES[@]}"; do expect_valid "$e"; done

printf 'static_resources:\n  listenerz: []\n' > "$T/unknown_field.yaml"
expect_invalid "$T/unknown_field.yaml" "unknown_field.yaml" "static_resources.listenerz" "Cannot find field"

printf 'static_resources:\n  listeners:\n  - name: x\n    address: {socket_address: {address: 127.0.0.1, port_value: abc}}\n' > "$T/wrong_type.yaml"
expect_invalid "$T/wrong_type.yaml" "wrong_type.yaml" "static_resources.listeners[0].address.socket_address.port_value" "abc"

listener() { # name, filter yaml
  printf 'static_resources:\n  listeners:\n  - name: x\n    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n    filter_chains:\n    - filters:\n%s\n' "$1"
}
listener '      - name: nope
        typed_config: {"@type": type.googleapis.com/foo.Bar}' > "$T/unknown_type.yaml"
expect_invalid "$T/unknown_type.yaml" "unknown_type.yaml" "static_resources.listeners[0].filter_chains[0].filters[0].typed_config" "foo.Bar"

listener '      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: x
          cluster: nowhere' > "$T/dangling.yaml"
expect_invalid "$T/dangling.yaml" "dangling.yaml" "filters[0].typed_config.cluster" "unknown cluster 'nowhere'"

listener '      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          cluster: c' > "$T/no_prefix.yaml"
expect_invalid "$T/no_prefix.yaml" "typed_config.stat_prefix" "must be set"

printf 'static_resources:\n  clusters:\n  - name: c\n    type: STATIC\n    load_assignment:\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {address: {socket_address: {address: example.com, port_value: 80}}}\n' > "$T/static_host.yaml"
expect_invalid "$T/static_host.yaml" "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address" "STATIC"

printf 'static_resources:\n  clusters:\n  - {name: c}\n  - {name: c}\n' > "$T/dup.yaml"
expect_invalid "$T/dup.yaml" "static_resources.clusters[1].name" "duplicate"

printf 'static_resources:\n  listeners: [\n' > "$T/syntax.yaml"
expect_invalid "$T/syntax.yaml" "syntax.yaml" "line"

printf 'bootstrap_extensions:\n- name: s\n  typed_config:\n    "@type": type.googleapis.com/tern.bootstrap.v1.Settings\n    log_level: loud\n' > "$T/level.yaml"
expect_invalid "$T/level.yaml" "level.yaml" "bootstrap_extensions[0].typed_config.log_level" "loud"

expect_invalid "$T/does_not_exist.yaml" "does_not_exist.yaml" "cannot open"

if "$TERN" --bogus >/dev/null 2>&1; then fail "unknown flag accepted"; else ok "unknown flag rejected"; fi

# A real start: the default config on free ports.
read -r P1 P2 P3 P4 P5 < <(python3 -c '
import socket
s=[socket.socket() for _ in range(5)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
sed -e "s/port_value: 10000/port_value: $P1/g" -e "s/port_value: 10001/port_value: $P2/g" \
  -e "s/port_value: 10002/port_value: $P3/g" -e "s/port_value: 10003/port_value: $P4/g" \
  -e "s/port_value: 9901/port_value: $P5/g" "$DEFAULT_CONFIG" > "$T/run.yaml"
"$TERN" -c "$T/run.yaml" --concurrency 1 --log-level info 2> "$T/stderr" > "$T/stdout" &
PID=$!
for _ in $(seq 100); do
  grep -q "tern started" "$T/stderr" && break
  sleep 0.05
done
reply=$(python3 - "$P2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello through tern\n")
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    out += b
print(out.decode().strip())
PY
)
if [[ "$reply" == "hello through tern" ]]; then ok "TCP echo through the default config"; else fail "echo: got '$reply'"; fi
body=$(curl -s --max-time 5 "http://127.0.0.1:$P1/origin/hello")
if [[ "$body" == "hello from the origin behind Tern" ]]; then ok "HTTP proxied through the default config"; else fail "HTTP: got '$body'"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$P1/")
if [[ "$code" == "200" ]]; then ok "HTTP direct response"; else fail "HTTP direct response: $code"; fi
ready=$(curl -s --max-time 5 "http://127.0.0.1:$P5/ready")
if [[ "$ready" == "LIVE" ]]; then ok "admin /ready"; else fail "admin /ready: '$ready'"; fi
if grep -q '"GET /origin/hello HTTP/1.1" 200' "$T/stdout"; then ok "access log line"; else fail "access log: $(cat "$T/stdout")"; fi
# Admin endpoints.
A="http://127.0.0.1:$P5"
adm() { curl -s --max-time 5 "$@"; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
adm "$A/stats" > "$T/stats"
if grep -q "^http.http.downstream_rq_2xx: 2$" "$T/stats"; then ok "admin /stats counts requests"; else fail "admin /stats: $(grep downstream_rq_2xx "$T/stats")"; fi
if grep -q "^cluster.origin.upstream_rq_time: P50(" "$T/stats"; then ok "admin /stats histogram"; else fail "admin /stats histogram"; fi
filtered=$(adm "$A/stats?filter=^cluster%5C.origin%5C.upstream_rq_total")
if [[ "$filtered" == "cluster.origin.upstream_rq_total: 1" ]]; then ok "admin /stats?filter"; else fail "admin /stats?filter: '$filtered'"; fi
adm "$A/stats/prometheus" > "$T/prom"
if python3 - "$T/prom" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+]+$')
typed = set()
for l in lines:
    if l.startswith('# TYPE '):
        _, _, name, kind = l.split(' ')
        assert kind in ('counter', 'gauge', 'histogram'), l
        typed.add(name)
        continue
    assert sample.match(l), 'bad sample line: ' + l
    base = l.split('{')[0].split(' ')[0]
    for suffix in ('_bucket', '_sum', '_count'):
        if base.endswith(suffix) and base[:-len(suffix)] in typed:
            base = base[:-len(suffix)]
    assert base in typed, 'sample without TYPE: ' + l
assert any('tern_http_http_downstream_rq_time_bucket{le="+Inf"}' in l for l in lines)
PY
then ok "admin /stats/prometheus is valid exposition format"; else fail "admin /stats/prometheus format"; fi
if adm "$A/config_dump" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["static_resources"]["listeners"][0]["name"]=="http"'; then ok "admin /config_dump is the bootstrap as JSON"; else fail "admin /config_dump"; fi
adm "$A/clusters" > "$T/clusters"
if grep -q "^origin::127.0.0.1:$P4::cx_active::" "$T/clusters"; then ok "admin /clusters"; else fail "admin /clusters: $(head -3 "$T/clusters")"; fi
adm "$A/listeners" > "$T/listeners"
if grep -q "^http::127.0.0.1:$P1$" "$T/listeners"; then ok "admin /listeners"; else fail "admin /listeners"; fi
if [[ $(code "$A/healthcheck/fail") == 405 && $(code -XPOST "$A/healthcheck/fail") == 200 && $(code -XPOST "$A/healthcheck/ok") == 200 ]]; then ok "admin /healthcheck needs POST"; else fail "admin /healthcheck"; fi
if [[ $(code -XPOST "$A/logging?level=loud") == 400 ]] && [[ $(adm -XPOST "$A/logging?level=debug") == "active level: debug" ]] && [[ $(adm -XPOST "$A/logging?level=info") == "active level: info" ]]; then ok "admin /logging"; else fail "admin /logging"; fi
if [[ $(code "$A/nope") == 404 ]]; then ok "admin unknown path 404"; else fail "admin unknown path"; fi
kill -USR1 "$PID"
for _ in $(seq 100); do grep -q "tcp.default.downstream_cx_total: 1" "$T/stderr" && break; sleep 0.05; done
if grep -q "tcp.default.downstream_cx_total: 1" "$T/stderr"; then ok "SIGUSR1 prints stats"; else fail "SIGUSR1 stats missing"; fi
if [[ $(code "$A/quitquitquit") == 405 ]]; then ok "quitquitquit needs POST"; else fail "quitquitquit GET"; fi
adm -XPOST "$A/quitquitquit" > /dev/null
wait "$PID"
rc=$?
PID=""
if [[ $rc -eq 0 ]]; then ok "POST /quitquitquit exits 0"; else fail "quitquitquit exit $rc"; fi

# SIGTERM on a fresh instance.
"$TERN" -c "$T/run.yaml" --concurrency 1 2> "$T/stderr2" > /dev/null &
PID=$!
for _ in $(seq 100); do grep -q "tern started" "$T/stderr2" && break; sleep 0.05; done
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
if [[ $rc -eq 0 ]]; then ok "SIGTERM exits 0"; else fail "SIGTERM exit $rc"; fi

# Graceful drain: SIGTERM with an HTTP/2 request, an HTTP/1.1 request and an idle HTTP/2
# connection in flight. The requests finish (HTTP/1 with "connection: close"), the idle
# HTTP/2 connection gets GOAWAY, new connections are not served, Tern exits 0.
read -r PS PD < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
python3 - "$PS" > /dev/null 2>&1 <<'PY' &
# An origin that answers each request after 1.5 s.
import socket, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(16); srv.settimeout(20)
def serve(c):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d: return
            buf += d
        buf = buf[buf.index(b"\r\n\r\n") + 4:]
        time.sleep(1.5)
        c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nslow\n")
end = time.time() + 20
while time.time() < end:
    try: c, _ = srv.accept()
    except socket.timeout: break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
SLOW_PID=$!
cat > "$T/drain.yaml" <<YAML
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: $PD}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: slow}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: slow
    type: STATIC
    load_assignment:
      cluster_name: slow
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $PS}}}}]}]
YAML
"$TERN" -c "$T/drain.yaml" --concurrency 1 --drain-time-s 10 2> "$T/stderr3" > /dev/null &
PID=$!
for _ in $(seq 100); do grep -q "tern started" "$T/stderr3" && break; sleep 0.05; done
curl -s --http2-prior-knowledge --max-time 10 -o "$T/h2.body" -w '%{http_code}' "http://127.0.0.1:$PD/a" > "$T/h2.code" &
C1=$!
curl -s --http1.1 --max-time 10 -D "$T/h1.head" -o "$T/h1.body" "http://127.0.0.1:$PD/b" &
C2=$!
python3 - "$PD" > "$T/goaway" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=8)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
data = b""
while True:
    try: d = s.recv(65536)
    except socket.timeout: break
    if not d: break
    data += d
types, i = [], 0
while i + 9 <= len(data):
    n = int.from_bytes(data[i:i + 3], "big"); types.append(data[i + 3]); i += 9 + n
print("goaway" if 7 in types else "no goaway %s" % types, "closed")
PY
C3=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$PID"
sleep 0.3
late=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PD/late")
wait "$PID"; rc=$?; PID=""
t1=$(date +%s%N)
wait "$C1" "$C2" "$C3"
kill "$SLOW_PID" 2>/dev/null; wait "$SLOW_PID" 2>/dev/null
if [[ $rc -eq 0 ]]; then ok "drain: SIGTERM exits 0 after $(( (t1 - t0) / 1000000 )) ms"; else fail "drain: exit $rc"; fi
if [[ "$(cat "$T/h2.code")" == 200 && "$(cat "$T/h2.body")" == slow ]]; then ok "drain: HTTP/2 request in flight completes"; else fail "drain: HTTP/2 in flight: $(cat "$T/h2.code") '$(cat "$T/h2.body")'"; fi
if grep -q '^HTTP/1.1 200' "$T/h1.head" && grep -qi '^connection: close' "$T/h1.head" && [[ "$(cat "$T/h1.body")" == slow ]]; then ok "drain: HTTP/1 request in flight completes with connection: close"; else fail "drain: HTTP/1 in flight: $(tr -d '\r' < "$T/h1.head" | tr '\n' '|')"; fi
if [[ "$(cat "$T/goaway")" == "goaway closed" ]]; then ok "drain: idle HTTP/2 connection gets GOAWAY and is closed"; else fail "drain: idle HTTP/2: $(cat "$T/goaway")"; fi
if [[ "$late" != 200 ]]; then ok "drain: a new connection is not served ($late)"; else fail "drain: new connection served during drain"; fi

# A second instance on a busy port fails with a clear error and exit 1.
python3 -c '
import socket,sys,time,subprocess
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); p=s.getsockname()[1]
cfg=open(sys.argv[2]).read().replace("port_value: %s" % sys.argv[3], "port_value: %d" % p, 1)
open(sys.argv[4],"w").write(cfg)
r=subprocess.run([sys.argv[1],"-c",sys.argv[4]],capture_output=True,text=True,timeout=20)
print(r.returncode, r.stderr.strip().splitlines()[-1])' "$TERN" "$T/run.yaml" "$P1" "$T/busy.yaml" > "$T/busy.out"
if grep -q "^1 .*listeners\[0\] (http).*Address already in use" "$T/busy.out"; then ok "port in use: $(cat "$T/busy.out")"; else fail "port in use: $(cat "$T/busy.out")"; fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
