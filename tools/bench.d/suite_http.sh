# shellcheck shell=bash disable=SC2034  # variables shared across the sourced files
# HTTP/1.1 suite for tools/bench: Tern's http_connection_manager + router against nginx
# (proxy_pass with upstream keepalive) and HAProxy (mode http, http-reuse always), all
# proxying to the same nginx origin that answers a small static 200.
# Sourced by tools/bench after lib.sh.

HTTP_PROXIES="tern tern-raw nginx haproxy"
HTTP_TESTS="wrk,insns,idle"
WRK_TIME=${BENCH_WRK_TIME:-5}
WRK_CONNS=${BENCH_WRK_CONNS:-64}
HTTP_ROUNDS=${BENCH_ROUNDS:-3}            # interleaved rounds per wrk figure (median)
CG_WARMUP=${BENCH_CG_WARMUP:-200}         # requests in the baseline callgrind session
CG_REQUESTS=${BENCH_CG_REQUESTS:-2000}    # extra requests in the measured session
CG_WAIT=${BENCH_CG_WAIT:-120}             # seconds for a proxy under valgrind to start/stop
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
IDLE_DEADLINE=${BENCH_IDLE_DEADLINE:-60}  # seconds to open and use all idle connections
# QUIET_WAIT, NOISY_CORES, NOISY_RETRIES, QUIET_BUDGET: lib.sh (shared with the h2 suite).
# Its own port range (unless BENCH_PORT_BASE is set), apart from the tcp suite's 19000+,
# in case two engineers run suites at once.
[[ -n "${BENCH_PORT_BASE:-}" ]] || NEXT_PORT=19500

suite_usage() {
  cat <<EOF
tools/bench http [options]: HTTP/1.1 reverse-proxy benchmarks.

Proxies (for --only): tern (io_model WORKER_LOOPS), tern-raw (io_model RAW_EPOLL),
nginx (proxy_pass, upstream keepalive 64), haproxy (mode http, http-reuse always).
Each runs one worker on core 0 and proxies to one nginx origin (1 worker, core 1) that
answers every request with a 6-byte 200 (return 200 "hello\n").

Tests:
  wrk    wrk -t1 -c$WRK_CONNS through each proxy (wrk on core 1): requests/s, p50 and p99
         latency, proxy CPU (user+system) per request; direct to the origin as reference.
  insns  user-space instructions per proxied request, from two callgrind sessions per
         proxy (one keep-alive connection, $CG_WARMUP and $CG_WARMUP+$CG_REQUESTS requests):
         (Ir2 - Ir1) / $CG_REQUESTS, which cancels startup and shutdown.
  idle   N client connections that each make one request and then stay open, idle;
         proxy RSS growth per connection.

Options:
  --only LIST          proxies to run (default: all)
  --tests LIST         wrk,insns,idle (default: all three)
  --wrk-time S         seconds per wrk run (default 5; env BENCH_WRK_TIME)
  --rounds N           interleaved wrk rounds (default 3; env BENCH_ROUNDS)
  --cg-requests N      measured requests per callgrind session (default 2000)
  --idle-conns N       idle connections (default 5000; env BENCH_IDLE_CONNS)
  --write-docs, --keep as for every suite

Environment: TERN_BIN (prebuilt tern, skips bazel build), BENCH_WRK_CONNS (64),
BENCH_CG_WARMUP (200), BENCH_CG_WAIT (120), BENCH_IDLE_DEADLINE (60),
BENCH_QUIET_WAIT (120: before each wrk run, wait this long at most for the rest of the
machine to go quiet), BENCH_NOISY_RETRIES (2: repeats of a wrk run during which other
processes used over 0.25 core; the least disturbed attempt counts), BENCH_QUIET_BUDGET
(900: total seconds those waits and repeats may add), BENCH_PORT_BASE (19500 for this
suite), BENCH_LIFETIME (1800).
EOF
}

suite_option() {
  case "$1" in
    --tests) HTTP_TESTS=${2:?}; return 2 ;;
    --wrk-time) WRK_TIME=${2:?}; return 2 ;;
    --rounds) HTTP_ROUNDS=${2:?}; return 2 ;;
    --cg-requests) CG_REQUESTS=${2:?}; return 2 ;;
    --idle-conns) IDLE_CONNS=${2:?}; return 2 ;;
  esac
  return 0
}

# proxy_label, median, alive, issue, start_origin, prepare_tern, wait_quiet, load_run
# and quiet_run are in lib.sh (shared with the h2 suite).

# ---------------------------------------------------------------------------------------
# Proxies. start_proxy KEY ORIGIN_PORT [CALLGRIND_OUT] starts a fresh instance (under
# callgrind when CALLGRIND_OUT is given) and sets PROXY_PORT, PROXY_PID (process to
# measure: nginx master, whose worker counts too), PROXY_TPID, PROXY_LOG.

start_proxy() {
  local key=$1 origin=$2 cgout=${3:-} conf nofile wait=10
  local -a pre=()
  alloc_port PROXY_PORT
  nofile=$(ulimit -n)
  if [[ -n "$cgout" ]]; then
    pre=(valgrind --tool=callgrind --callgrind-out-file="$cgout" --dump-instr=no
      --trace-children=no)
    wait=$CG_WAIT
  fi
  PROXY_LOG="$key-$PROXY_PORT${cgout:+-cg}"
  case "$key" in
    tern|tern-raw)
      local model=WORKER_LOOPS
      [[ $key == tern-raw ]] && model=RAW_EPOLL
      conf="$WORK/$key-$PROXY_PORT.yaml"
      render_template "$BENCH_D/tern-http.yaml.in" "$conf" \
        PORT="$PROXY_PORT" ORIGIN_PORT="$origin" IO_MODEL="$model"
      bg_start "$PROXY_LOG" "$PROXY_CORE" "${pre[@]}" "$TERN_BIN" -c "$conf" --concurrency 1
      ;;
    nginx)
      local dir="$WORK/nginx-$PROXY_PORT" master=on
      [[ -n "$cgout" ]] && master=off   # one process under callgrind
      mkdir -p "$dir"
      conf="$dir/nginx.conf"
      # A proxied request holds a client and (while in flight or cached) an upstream
      # connection; nginx preallocates them all at startup, so size to the test.
      local wc=$((2 * IDLE_CONNS + 100))
      ((wc > nofile - 50)) && wc=$((nofile - 50))
      render_template "$BENCH_D/nginx-http.conf.in" "$conf" \
        DIR="$dir" NOFILE="$nofile" WORKER_CONNECTIONS="$wc" PORT="$PROXY_PORT" \
        ORIGIN_PORT="$origin" MASTER_PROCESS="$master"
      bg_start "$PROXY_LOG" "$PROXY_CORE" "${pre[@]}" nginx -p "$dir" -e "$dir/error.log" -c "$conf"
      ;;
    haproxy)
      conf="$WORK/haproxy-$PROXY_PORT.cfg"
      local maxconn=$((IDLE_CONNS + 100))
      (((2 * maxconn + 100) > nofile)) && maxconn=$(((nofile - 100) / 2))
      render_template "$BENCH_D/haproxy-http.cfg.in" "$conf" \
        MAXCONN="$maxconn" PORT="$PROXY_PORT" ORIGIN_PORT="$origin"
      bg_start "$PROXY_LOG" "$PROXY_CORE" "${pre[@]}" haproxy -db -f "$conf"
      ;;
    *) die "unknown proxy '$key'" ;;
  esac
  PROXY_PID=$BG_PID
  PROXY_TPID=$BG_TPID
  wait_listen "$PROXY_PORT" "$PROXY_PID" "$PROXY_LOG" "$wait"
}

# stop_wait TPID SECS: like bg_stop, but waits up to SECS for a clean exit (callgrind
# writes its profile at exit, which takes a while) before KILL.
stop_wait() {
  local tpid=$1 secs=$2 child i
  kill -0 "$tpid" 2>/dev/null || { wait "$tpid" 2>/dev/null || true; return 0; }
  child=$(awk '{print $1}' "/proc/$tpid/task/$tpid/children" 2>/dev/null)
  kill -TERM "$tpid" 2>/dev/null || true
  for i in $(seq 1 $((secs * 10))); do
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$tpid" 2>/dev/null; then
    log "warning: process $child did not exit within ${secs}s of SIGTERM; killing it"
    if [[ -n "$child" ]]; then kill -KILL "$child" 2>/dev/null || true; fi
    kill -KILL "$tpid" 2>/dev/null || true
  fi
  wait "$tpid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------
# wrk: requests/s, latency, proxy CPU per request.

# wrk_once NAME PORT [PROXY_PID]: one wrk run on the load core (load_run). Sets RUN_OUT,
# RUN_PROXY_TICKS, RUN_FOREIGN and RUN_VALS ("rps p50_us p99_us requests non2xx
# socket_errors", empty on failure).
wrk_once() {
  local name=$1 port=$2 ppid=${3:-}
  load_run "wrk-$name" "$ppid" $((WRK_TIME + 30)) \
    wrk -t1 -c"$WRK_CONNS" -d"${WRK_TIME}s" --timeout 5s --latency "http://127.0.0.1:$port/"
  RUN_VALS=$(python3 "$BENCH_D/http_clients.py" wrk-parse "$RUN_OUT" 2>/dev/null) || RUN_VALS=""
  log "wrk: $name: $(awk '/Requests\/sec/ {print $2}' "$RUN_OUT") req/s; other processes used $RUN_FOREIGN cores"
}

# Like the tcp suite: every proxy once per round, HTTP_ROUNDS rounds, medians reported;
# on a 2-core VM single runs swing by 20% and interleaving spreads noise over all alike.
test_wrk() {
  local keys=$1 key r
  local -A target tpid mpid rps p50 p99 cpu bad foreign
  quiet_budget_start
  start_origin
  local otpid=$ORIGIN_TPID
  target[direct]=$ORIGIN_PORT
  for key in $keys; do
    start_proxy "$key" "$ORIGIN_PORT"
    target[$key]=$PROXY_PORT
    tpid[$key]=$PROXY_TPID
    mpid[$key]=$PROXY_PID
  done
  # Warm-up (not recorded): first connections, upstream pools, lazy allocations.
  for key in direct $keys; do
    local save=$WRK_TIME
    WRK_TIME=1
    wrk_once "warmup-$key" "${target[$key]}" "${mpid[$key]:-}"
    WRK_TIME=$save
  done
  for ((r = 1; r <= HTTP_ROUNDS; r++)); do
    for key in direct $keys; do
      log "wrk: $key, -c$WRK_CONNS ${WRK_TIME}s, round $r/$HTTP_ROUNDS"
      local v_rps v_p50 v_p99 v_n v_non2xx v_err
      # Repeated when other processes took more than NOISY_CORES (lib.sh: quiet_run).
      quiet_run "$key-r$r" wrk_once "${target[$key]}" "${mpid[$key]:-}"
      foreign[$key]+="$RUN_FOREIGN "
      if [[ -z "$RUN_VALS" ]]; then
        issue "wrk via $key round $r produced no result: $(head -c 300 "$RUN_OUT" | tr '\n' ' ')"
        [[ $key != direct ]] && { alive "${tpid[$key]}" "$key-${target[$key]}" || true; }
        continue
      fi
      read -r v_rps v_p50 v_p99 v_n v_non2xx v_err <<<"$RUN_VALS"
      rps[$key]+="$v_rps "
      p50[$key]+="$v_p50 "
      p99[$key]+="$v_p99 "
      if [[ $key != direct ]]; then
        cpu[$key]+="$(us_per_req "$RUN_PROXY_TICKS" "$v_n") "
      fi
      if ((v_non2xx > 0 || v_err > 0)); then
        bad[$key]+="round $r: $v_non2xx non-2xx, $v_err socket errors of $v_n; "
        issue "wrk via $key round $r: $v_non2xx non-2xx responses, $v_err socket errors, $v_n requests ($RUN_OUT)"
      fi
    done
  done
  for key in direct $keys; do
    [[ -n "${rps[$key]:-}" ]] || {
      result "HTTP requests/s (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" n/a "req/s" higher "no successful run"
      continue
    }
    local note="median of ${HTTP_ROUNDS} interleaved runs: ${rps[$key]% }"
    note+="; other load $(max_of "${foreign[$key]}") cores max"
    [[ -n "${bad[$key]:-}" ]] && note+="; ERRORS ${bad[$key]% ; }"
    result "HTTP requests/s (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" \
      "$(median 0 "${rps[$key]}")" "req/s" higher "$note"
  done
  for key in direct $keys; do
    [[ -n "${p50[$key]:-}" ]] || continue
    result "HTTP p50 latency (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" \
      "$(median 1 "${p50[$key]}")" "µs" lower "runs: ${p50[$key]% }"
  done
  for key in direct $keys; do
    [[ -n "${p99[$key]:-}" ]] || continue
    result "HTTP p99 latency (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" \
      "$(median 1 "${p99[$key]}")" "µs" lower "runs: ${p99[$key]% }"
  done
  for key in $keys; do
    [[ -n "${cpu[$key]:-}" ]] || continue
    result "HTTP proxy CPU per request (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" \
      "$(median 2 "${cpu[$key]}")" "µs/req" lower "user+system; runs: ${cpu[$key]% }"
  done
  for key in $keys; do
    alive "${tpid[$key]}" "$key-${target[$key]}" || true
    bg_stop "${tpid[$key]}"
  done
  bg_stop "$otpid"
}

# ---------------------------------------------------------------------------------------
# insns: user-space instructions per request under callgrind.

# cg_session KEY N: runs KEY under callgrind, sends N keep-alive requests, stops it;
# sets CG_IR (total Ir of the whole process lifetime, empty on failure).
cg_session() {
  local key=$1 n=$2 out="$WORK/callgrind-$1-$2.out" res
  CG_IR=""
  start_proxy "$key" "$ORIGIN_PORT" "$out"
  local cg_tpid=$PROXY_TPID cg_log=$PROXY_LOG
  # Valgrind runs the proxy ~50x slower: generous per-request timeout, bounded overall.
  if ! res=$(timeout -k 5 $((CG_WAIT + n / 5)) taskset -c "$LOAD_CORE" \
      python3 "$BENCH_D/http_clients.py" keepalive --port "$PROXY_PORT" --requests "$n" \
      --timeout 30 2>>"$WORK/$cg_log.client.err"); then
    issue "callgrind: $key, $n requests: client reported ${res:-nothing} ($(tail -n 2 "$WORK/$cg_log.client.err" | tr '\n' ' '))"
    alive "$cg_tpid" "$cg_log" || true
  fi
  log "callgrind: $key, $n requests: $res"
  stop_wait "$cg_tpid" "$CG_WAIT"
  if [[ -f "$out" ]]; then
    CG_IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
  fi
  [[ -n "$CG_IR" ]] || issue "callgrind: no profile from $key ($out); log: $(tail -n 3 "$WORK/$cg_log.log" | tr '\n' ' ')"
  [[ "$res" == ok=$n\ * ]] || CG_IR=""
}

test_insns() {
  local keys=$1 key
  start_origin
  local otpid=$ORIGIN_TPID
  local n1=$CG_WARMUP n2=$((CG_WARMUP + CG_REQUESTS))
  for key in $keys; do
    log "callgrind: $key, sessions of $n1 and $n2 requests"
    cg_session "$key" "$n1"
    local ir1=$CG_IR
    cg_session "$key" "$n2"
    local ir2=$CG_IR
    local per=n/a note
    if [[ -n "$ir1" && -n "$ir2" ]]; then
      per=$(((ir2 - ir1) / CG_REQUESTS))
      note="(Ir $ir2 - $ir1) / $CG_REQUESTS; one keep-alive connection"
    else
      note="callgrind session failed (see log)"
    fi
    result "HTTP user-space instructions per request (callgrind)" "$key" \
      "$(proxy_label "$key")" "$per" "instr/req" lower "$note"
  done
  bg_stop "$otpid"
}

# ---------------------------------------------------------------------------------------
# idle: client holder (core 1) -> proxy (core 0) -> origin nginx (core 1).

test_idle() {
  local keys=$1 key
  for key in $keys; do
    log "idle: $key, $IDLE_CONNS connections, one request each"
    start_origin
    local otpid=$ORIGIN_TPID
    start_proxy "$key" "$ORIGIN_PORT"
    local ptpid=$PROXY_TPID plog=$PROXY_LOG

    # Warm-up: a few requests on one connection, so one-time lazy setup (first accept,
    # first upstream connection, buffer pools) is in the baseline, not in the growth.
    timeout 20 python3 "$BENCH_D/http_clients.py" keepalive --port "$PROXY_PORT" \
      --requests 20 --timeout 5 >/dev/null 2>&1 || issue "idle: warm-up requests via $key failed"
    sleep 1
    local before fds_before
    before=$(rss_kb "$PROXY_PID")
    fds_before=$(fd_count "$PROXY_PID")

    local cstatus="$WORK/idle-client-$key.status"
    bg_start "idle-client-$key" "$LOAD_CORE" python3 "$BENCH_D/http_clients.py" idle \
      --port "$PROXY_PORT" --count "$IDLE_CONNS" --status "$cstatus" \
      --deadline "$IDLE_DEADLINE" --max-seconds "$BENCH_LIFETIME"
    local ctpid=$BG_TPID
    local t0=$SECONDS
    while ((SECONDS - t0 < IDLE_DEADLINE + 10)); do
      [[ $(status_get "$cstatus" "done") == 1 ]] && break
      kill -0 "$ctpid" 2>/dev/null || break
      sleep 0.2
    done
    sleep 2   # let the proxy finish any per-connection work (and pools settle)
    local after fds_after desc ok non2xx failed closed
    after=$(rss_kb "$PROXY_PID")
    fds_after=$(fd_count "$PROXY_PID")
    desc=$(proxy_desc "$PROXY_PID")
    ok=$(status_get "$cstatus" ok)
    non2xx=$(status_get "$cstatus" non2xx)
    failed=$(status_get "$cstatus" failed)
    closed=$(status_get "$cstatus" closed)
    log "idle: $key: $ok ok, $non2xx non-2xx, $failed failed, $closed closed by proxy;" \
      "proxy fds $fds_before -> $fds_after, RSS ${before} kB -> ${after} kB"
    local open=$((ok + non2xx - closed)) per=n/a
    ((open > 0)) && per=$(((after - before) * 1024 / open))
    result "Idle keep-alive connections: RSS growth per connection" "$key" \
      "$(proxy_label "$key")" "$per" "B/conn" lower \
      "$open/$IDLE_CONNS open after 1 request each; RSS $(mib "$before") -> $(mib "$after") MiB; proxy fds $fds_before -> $fds_after; $desc"
    if ((ok < IDLE_CONNS || non2xx > 0 || failed > 0 || closed > 0)); then
      issue "idle via $key: $ok/$IDLE_CONNS ok, $non2xx non-2xx, $failed failed, $closed closed while idle"
    fi
    alive "$ptpid" "$plog" || true
    # Client first, so the proxy sees closes from downstream as it would in life.
    bg_stop "$ctpid"
    bg_stop "$ptpid"
    bg_stop "$otpid"
  done
}

# ---------------------------------------------------------------------------------------

suite_run() {
  local keys="" k
  for k in $HTTP_PROXIES; do in_only "$k" && keys+="$k "; done
  for k in ${ONLY//,/ }; do
    [[ " $HTTP_PROXIES " == *" $k "* ]] || die "unknown proxy '$k' (have: $HTTP_PROXIES)"
  done
  [[ -n "$keys" ]] || die "no proxy selected"
  for k in ${HTTP_TESTS//,/ }; do
    [[ ",wrk,insns,idle," == *",$k,"* ]] || die "unknown test '$k' (have: wrk, insns, idle)"
  done
  command -v wrk >/dev/null || die "wrk not found (tools/setup --test installs it)"
  if [[ ",$HTTP_TESTS," == *,insns,* ]]; then
    command -v valgrind >/dev/null || die "valgrind not found (tools/setup --test installs it)"
  fi
  # The proxy needs 1 fd per idle client connection plus its upstream connections; the
  # client holder needs 1 per connection (separate process).
  local maxn=$((($(ulimit -n) - 200) / 2))
  if ((IDLE_CONNS > maxn)); then
    log "warning: fd limit $(ulimit -n) allows at most $maxn idle connections; using that"
    IDLE_CONNS=$maxn
  fi
  local tern_desc=""
  if [[ " $keys" == *" tern"* ]]; then
    prepare_tern
    tern_desc=" $TERN_DESC"
  fi

  bench_env_desc BENCH_WRK_TIME BENCH_ROUNDS BENCH_IDLE_CONNS BENCH_WRK_CONNS
  SUITE_NOTES="- Proxies pinned to core 0 with one worker (Tern \`--concurrency 1\` with http_connection_manager + router, nginx \`worker_processes 1\` with \`proxy_pass\` to an upstream with \`keepalive 64\`, HAProxy \`nbthread 1\`, \`mode http\`, \`http-reuse always\`); the origin (nginx, 1 worker, \`return 200 \"hello\\n\"\`) and the load generators pinned to core 1. Keep-alive everywhere, no access logs.$tern_desc"
  if [[ ",$HTTP_TESTS," == *,wrk,* ]]; then
    SUITE_NOTES+="
- wrk: \`wrk -t1 -c$WRK_CONNS -d${WRK_TIME}s --latency\`, median of $HTTP_ROUNDS interleaved rounds after a 1 s warm-up; \"direct\" is wrk straight to the origin. Proxy CPU per request is the user+system time of the proxy process (nginx: master + worker) during the run divided by the requests wrk completed; wrk and the origin share core 1, so requests/s is bounded by them too. Each run waits (up to ${QUIET_WAIT} s; waits and repeats together at most ${QUIET_BUDGET} s) until other processes use under 0.15 core; \"other load\" is the CPU used during the run by anything but wrk, the origin and the proxy (from /proc/stat), in cores; a run with over $NOISY_CORES is repeated (up to $NOISY_RETRIES times) and the least disturbed attempt counts. Well above 0 means the figures are skewed."
  fi
  if [[ ",$HTTP_TESTS," == *,insns,* ]]; then
    SUITE_NOTES+="
- Instructions: each proxy under \`valgrind --tool=callgrind\` (nginx \`master_process off\`, HAProxy \`-db\`, Tern \`--concurrency 1\`), one client keep-alive connection sending sequential GETs; two sessions of $CG_WARMUP and $((CG_WARMUP + CG_REQUESTS)) requests, (Ir₂ − Ir₁) / $CG_REQUESTS. Counts user-space instructions of the proxy process (libc included), not the kernel."
  fi
  if [[ ",$HTTP_TESTS," == *,idle,* ]]; then
    SUITE_NOTES+="
- Idle: $IDLE_CONNS client connections (256 at a time in flight) each send one GET, read the 200 and then stay open, idle; proxy RSS (VmRSS; nginx: master + worker) afterwards minus RSS before (after a 20-request warm-up), divided by the connections still open. Upstream connections the proxy keeps pooled count in the growth. nginx and HAProxy preallocate per-connection tables sized by worker_connections/maxconn at startup (sized here for the test): they count in the baseline, not in the growth."
  fi

  local t
  for t in ${HTTP_TESTS//,/ }; do
    case "$t" in
      wrk) test_wrk "$keys" ;;
      insns) test_insns "$keys" ;;
      idle) test_idle "$keys" ;;
    esac
  done
  report_issues
  publish http "L7: HTTP/1.1 proxy"
}
