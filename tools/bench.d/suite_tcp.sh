# shellcheck shell=bash disable=SC2034  # variables shared across the sourced files
# L4 suite for tools/bench: Tern's tcp_proxy against nginx (stream) and HAProxy (mode tcp).
# Sourced by tools/bench after lib.sh.

TCP_PROXIES="tern tern-raw nginx haproxy"
TCP_TESTS="throughput,idle"
TCP_STREAMS="1,8"
IPERF_TIME=${BENCH_IPERF_TIME:-5}
TCP_ROUNDS=${BENCH_ROUNDS:-3}      # interleaved rounds per throughput figure (median)
IDLE_CONNS=${BENCH_IDLE_CONNS:-8000}
IDLE_DEADLINE=${BENCH_IDLE_DEADLINE:-60}   # seconds to open all idle connections

suite_usage() {
  cat <<EOF
tools/bench tcp [options]: L4 (TCP proxy) benchmarks.

Proxies (for --only): tern (io_model WORKER_LOOPS), tern-raw (io_model RAW_EPOLL),
nginx (stream module), haproxy (mode tcp). Each runs one worker on core 0.

Tests:
  throughput  iperf3 bulk transfer through each proxy, 1 and 8 parallel streams
              (Gbit/s received), plus direct client->server as a reference.
  idle        N idle connections through each proxy; proxy RSS growth per connection.

Options:
  --only LIST          proxies to run (default: all)
  --tests LIST         throughput,idle (default: both)
  --iperf-time S       seconds per iperf3 run (default 5; env BENCH_IPERF_TIME)
  --streams LIST       iperf3 -P values (default 1,8)
  --idle-conns N       idle connections (default 8000; env BENCH_IDLE_CONNS)
  --write-docs, --keep as for every suite

Environment: TERN_BIN (prebuilt tern, skips bazel build), BENCH_IDLE_DEADLINE (60),
BENCH_PORT_BASE (19000), BENCH_LIFETIME (1800).
EOF
}

suite_option() {
  case "$1" in
    --tests) TCP_TESTS=${2:?}; return 2 ;;
    --iperf-time) IPERF_TIME=${2:?}; return 2 ;;
    --streams) TCP_STREAMS=${2:?}; return 2 ;;
    --idle-conns) IDLE_CONNS=${2:?}; return 2 ;;
  esac
  return 0
}

# ---------------------------------------------------------------------------------------
# Proxies. start_proxy KEY UPSTREAM_PORT starts a fresh instance and sets PROXY_PORT,
# PROXY_PID (process to measure: nginx master, whose workers count too), PROXY_TPID.

nginx_load_module() {
  local v
  v=$(nginx -V 2>&1)
  if [[ "$v" == *"--with-stream=dynamic"* ]]; then
    local m
    for m in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
      [[ -f "$m" ]] && { echo "load_module $m;"; return; }
    done
    die "nginx has a dynamic stream module but it is not installed (Debian: libnginx-mod-stream)"
  elif [[ "$v" == *"--with-stream"* ]]; then
    echo ""   # built in
  else
    die "this nginx is built without the stream module"
  fi
}

proxy_label() {
  case "$1" in
    tern) echo "Tern (worker_loops)" ;;
    tern-raw) echo "Tern (raw_epoll)" ;;
    nginx) echo "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||')" ;;
    haproxy) echo "HAProxy $(haproxy -v | head -1 | awk '{print $3}' | sed 's/-.*//')" ;;
    direct) echo "direct (no proxy)" ;;
  esac
}

start_proxy() {
  local key=$1 up=$2 conf nofile
  alloc_port PROXY_PORT
  nofile=$(ulimit -n)
  case "$key" in
    tern|tern-raw)
      local model=WORKER_LOOPS
      [[ $key == tern-raw ]] && model=RAW_EPOLL
      conf="$WORK/$key-$PROXY_PORT.yaml"
      render_template "$BENCH_D/tern-tcp.yaml.in" "$conf" \
        PORT="$PROXY_PORT" UPSTREAM_PORT="$up" IO_MODEL="$model"
      bg_start "$key-$PROXY_PORT" "$PROXY_CORE" "$TERN_BIN" -c "$conf" --concurrency 1
      ;;
    nginx)
      local dir="$WORK/nginx-$PROXY_PORT"
      mkdir -p "$dir"
      conf="$dir/nginx.conf"
      # Two nginx connections per proxied connection, plus listeners and slack; sized to
      # the test, as nginx preallocates them all at startup.
      local wc=$((2 * IDLE_CONNS + 100))
      ((wc > nofile - 50)) && wc=$((nofile - 50))
      render_template "$BENCH_D/nginx-tcp.conf.in" "$conf" \
        LOAD_MODULE="$(nginx_load_module)" DIR="$dir" NOFILE="$nofile" \
        WORKER_CONNECTIONS="$wc" PORT="$PROXY_PORT" UPSTREAM_PORT="$up"
      bg_start "nginx-$PROXY_PORT" "$PROXY_CORE" nginx -p "$dir" -e "$dir/error.log" -c "$conf"
      ;;
    haproxy)
      conf="$WORK/haproxy-$PROXY_PORT.cfg"
      local maxconn=$((IDLE_CONNS + 100))
      (((2 * maxconn + 100) > nofile)) && maxconn=$(((nofile - 100) / 2))
      render_template "$BENCH_D/haproxy-tcp.cfg.in" "$conf" \
        MAXCONN="$maxconn" PORT="$PROXY_PORT" UPSTREAM_PORT="$up"
      bg_start "haproxy-$PROXY_PORT" "$PROXY_CORE" haproxy -db -f "$conf"
      ;;
    *) die "unknown proxy '$key'" ;;
  esac
  PROXY_PID=$BG_PID
  PROXY_TPID=$BG_TPID
  PROXY_LOG="$key-$PROXY_PORT"
  [[ $key == nginx ]] && PROXY_LOG="nginx-$PROXY_PORT"
  wait_listen "$PROXY_PORT" "$PROXY_PID" "$PROXY_LOG"
}

# ---------------------------------------------------------------------------------------
# Throughput: iperf3 -s on core 1 as the origin, iperf3 -c on core 1 through the proxy.

# iperf_once KEY TARGET_PORT STREAMS: one iperf3 run against 127.0.0.1:TARGET_PORT, where
# TARGET_PORT is the proxy (forwarding to IPERF_UP) or IPERF_UP itself. Sets IPERF_GBPS
# (not printed: a $(...) subshell would hide the server's PID from the EXIT trap).
iperf_once() {
  local key=$1 target=$2 streams=$3 json="$WORK/iperf-$1-P$3.json" gbps
  # A fresh one-off server per run (-1): a failed run cannot wedge the next one.
  # IPv4 only (-B), so it is reachable as 127.0.0.1 and visible in /proc/net/tcp.
  bg_start "iperf3-server-$key-P$streams" "$LOAD_CORE" \
    iperf3 -s -1 -B 127.0.0.1 -p "$IPERF_UP" --rcv-timeout 10000
  local stpid=$BG_TPID
  wait_listen "$IPERF_UP" "$BG_PID" "iperf3-server-$key-P$streams"
  timeout $((IPERF_TIME + 30)) taskset -c "$LOAD_CORE" \
    iperf3 -c 127.0.0.1 -p "$target" -t "$IPERF_TIME" -P "$streams" -J \
    --connect-timeout 3000 >"$json" 2>"$json.err" || true
  if ! gbps=$(python3 "$BENCH_D/util.py" iperf-gbps "$json" 2>&1); then
    log "iperf3 via $key -P $streams failed: $gbps $(head -c 300 "$json.err")"
    gbps=n/a
  fi
  bg_stop "$stpid"
  IPERF_GBPS=$gbps
}

# Runs are interleaved (every proxy once per round, TCP_ROUNDS rounds) and the median is
# reported: on a 2-core VM single runs swing by 20%, and interleaving spreads any
# background noise over all proxies alike. The proxy's own CPU time during each run is
# recorded too (user+system of its process; softirq work on its core may be charged
# elsewhere), as CPU seconds per GB moved.
test_throughput() {
  local keys=$1 key s r
  local -A target tpid mpid
  alloc_port IPERF_UP
  target[direct]=$IPERF_UP
  for key in $keys; do
    start_proxy "$key" "$IPERF_UP"
    target[$key]=$PROXY_PORT
    tpid[$key]=$PROXY_TPID
    mpid[$key]=$PROXY_PID
  done
  for s in ${TCP_STREAMS//,/ }; do
    local -A runs=() cpus=()
    for ((r = 1; r <= TCP_ROUNDS; r++)); do
      for key in direct $keys; do
        log "throughput: $key, $s stream(s), ${IPERF_TIME}s, round $r/$TCP_ROUNDS"
        local c0=0 c1=0
        [[ $key != direct ]] && c0=$(proc_cpu_ticks "${mpid[$key]}")
        iperf_once "$key" "${target[$key]}" "$s"
        [[ $key != direct ]] && c1=$(proc_cpu_ticks "${mpid[$key]}")
        runs[$key]+="$IPERF_GBPS "
        cpus[$key]+="$(python3 -c "import sys; t=($c1-$c0)/$(getconf CLK_TCK); g=float(sys.argv[1])*$IPERF_TIME/8; print(round(t/g,3) if g>0 else 0)" "$IPERF_GBPS") "
      done
    done
    local streams="$s streams"; [[ $s == 1 ]] && streams="1 stream"
    for key in direct $keys; do
      local med
      med=$(python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v),2))" ${runs[$key]})
      local note="median of ${TCP_ROUNDS} interleaved runs: ${runs[$key]% }; iperf3 -P $s -t $IPERF_TIME"
      if [[ $key != direct ]]; then
        local cmed
        cmed=$(python3 -c "import statistics,sys; print(round(statistics.median([float(x) for x in sys.argv[1:]]),3))" ${cpus[$key]})
        note+="; proxy CPU ${cmed} s/GB"
      fi
      result "TCP throughput, $streams" "$key" "$(proxy_label "$key")" "$med" "Gbit/s" higher "$note"
    done
  done
  for key in $keys; do bg_stop "${tpid[$key]}"; done
}

# ---------------------------------------------------------------------------------------
# Idle connections: origin holder (core 1) <- proxy (core 0) <- client holder (core 1).

test_idle() {
  local keys=$1 key
  for key in $keys; do
    log "idle: $key, $IDLE_CONNS connections"
    local up ustatus="$WORK/idle-up-$key.status" cstatus="$WORK/idle-client-$key.status"
    alloc_port up
    bg_start "idle-up-$key" "$LOAD_CORE" python3 "$BENCH_D/idle_conns.py" serve \
      --port "$up" --status "$ustatus" --max-seconds "$BENCH_LIFETIME"
    local utpid=$BG_TPID
    wait_listen "$up" "$BG_PID" "idle-up-$key"
    start_proxy "$key" "$up"

    # Warm-up: one connection through the proxy, so one-time lazy setup (first accept,
    # first upstream connect, buffer pools) is in the baseline, not in the growth.
    (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT" && sleep 0.3 && exec 3>&-) 2>/dev/null || true
    sleep 1
    local base_accepted before fds_before
    base_accepted=$(status_get "$ustatus" accepted)
    before=$(rss_kb "$PROXY_PID")
    fds_before=$(fd_count "$PROXY_PID")

    bg_start "idle-client-$key" "$LOAD_CORE" python3 "$BENCH_D/idle_conns.py" connect \
      --port "$PROXY_PORT" --count "$IDLE_CONNS" --status "$cstatus" \
      --deadline "$IDLE_DEADLINE" --max-seconds "$BENCH_LIFETIME"
    local ctpid=$BG_TPID

    # Wait until the proxy has opened an upstream connection for every client connection,
    # or the client gave up and the upstream count stopped moving, or the deadline.
    local t0=$SECONDS accepted=0 last=-1 still=0
    while ((SECONDS - t0 < IDLE_DEADLINE + 5)); do
      accepted=$(($(status_get "$ustatus" accepted) - base_accepted))
      ((accepted >= IDLE_CONNS)) && break
      if [[ $(status_get "$cstatus" "done") == 1 ]]; then
        ((accepted == last)) && still=$((still + 1)) || still=0
        ((still >= 10)) && break   # 2 s without progress after the client finished
      fi
      last=$accepted
      sleep 0.2
    done
    sleep 1   # let the proxy finish any per-connection work before measuring
    accepted=$(($(status_get "$ustatus" accepted) - base_accepted))
    local after fds_after connected desc
    after=$(rss_kb "$PROXY_PID")
    fds_after=$(fd_count "$PROXY_PID")
    connected=$(status_get "$cstatus" connected)
    desc=$(proxy_desc "$PROXY_PID")
    log "idle: $key client connected $connected, upstream accepted $accepted," \
      "proxy fds $fds_before -> $fds_after, RSS ${before} kB -> ${after} kB"

    local per=n/a
    ((accepted > 0)) && per=$(((after - before) * 1024 / accepted))
    result "Idle connections: RSS growth per connection" "$key" "$(proxy_label "$key")" \
      "$per" "B/conn" lower \
      "$accepted/$IDLE_CONNS proxied; RSS $(mib "$before") -> $(mib "$after") MiB; $desc"
    if ((accepted < IDLE_CONNS)); then
      log "warning: only $accepted of $IDLE_CONNS connections reached the origin via $key"
    fi

    # Client first, so the proxy sees closes from downstream as it would in life.
    bg_stop "$ctpid"
    bg_stop "$PROXY_TPID"
    bg_stop "$utpid"
  done
}

# ---------------------------------------------------------------------------------------

suite_run() {
  local keys="" k
  for k in $TCP_PROXIES; do in_only "$k" && keys+="$k "; done
  for k in ${ONLY//,/ }; do
    [[ " $TCP_PROXIES " == *" $k "* ]] || die "unknown proxy '$k' (have: $TCP_PROXIES)"
  done
  [[ -n "$keys" ]] || die "no proxy selected"

  # The proxy needs 2 fds per idle connection; each holder needs 1 (separate processes).
  local maxn=$((($(ulimit -n) - 200) / 2))
  if ((IDLE_CONNS > maxn)); then
    log "warning: fd limit $(ulimit -n) allows at most $maxn idle connections; using that"
    IDLE_CONNS=$maxn
  fi
  [[ " $keys" == *" tern"* ]] && ensure_tern

  local env_desc=""
  [[ -n "${BENCH_IDLE_CONNS:-}" ]] && env_desc+="BENCH_IDLE_CONNS=$BENCH_IDLE_CONNS "
  [[ -n "${BENCH_IPERF_TIME:-}" ]] && env_desc+="BENCH_IPERF_TIME=$BENCH_IPERF_TIME "
  BENCH_ENV_DESC=${env_desc% }
  SUITE_NOTES="- Proxies pinned to core 0 with one worker (Tern \`--concurrency 1\`, nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`); load generators and origin servers pinned to core 1."
  if [[ ",$TCP_TESTS," == *,throughput,* ]]; then
    SUITE_NOTES+="
- Throughput: \`iperf3 -t $IPERF_TIME -P N\` through each proxy to \`iperf3 -s\`, \`sum_received\` bits/s; \"direct\" is client to server with no proxy (both on core 1)."
  fi
  if [[ ",$TCP_TESTS," == *,idle,* ]]; then
    SUITE_NOTES+="
- Idle connections: $IDLE_CONNS client connections held open through the proxy to an origin that accepts and holds them; RSS (VmRSS; nginx: master + worker) once every upstream connection is up, minus RSS before (taken after one warm-up connection), divided by the connections proxied. nginx and HAProxy preallocate per-connection tables sized by worker_connections/maxconn at startup (sized here for the test): they count in the baseline, not in the growth."
  fi

  local t
  for t in ${TCP_TESTS//,/ }; do
    case "$t" in
      throughput) test_throughput "$keys" ;;
      idle) test_idle "$keys" ;;
      *) die "unknown test '$t' (have: throughput, idle)" ;;
    esac
  done
  publish tcp "L4: TCP proxy"
}
