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
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}       # max seconds to wait for other load to stop
NOISY_CORES=0.25                          # other load (cores) that makes a wrk run noisy
NOISY_RETRIES=${BENCH_NOISY_RETRIES:-2}   # extra attempts at a noisy wrk run
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-900}   # total seconds the two above may add to a run
QUIET_END=0                               # SECONDS value when that budget runs out
HTTP_ISSUES=()                            # anomalies seen (non-2xx, errors, crashes)
CLK_TCK=$(getconf CLK_TCK)
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

issue() { HTTP_ISSUES+=("$*"); log "warning: $*"; }

# ---------------------------------------------------------------------------------------
# Helpers (the tcp suite has the same ones; each suite is sourced on its own).

proxy_label() {
  case "$1" in
    tern) echo "Tern (worker_loops)" ;;
    tern-raw) echo "Tern (raw_epoll)" ;;
    nginx) echo "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||')" ;;
    haproxy) echo "HAProxy $(haproxy -v | head -1 | awk '{print $3}' | sed 's/-.*//')" ;;
    direct) echo "direct to origin (no proxy)" ;;
  esac
}

# median DIGITS "V1 V2 ...": the median of the space-separated values, rounded.
median() { python3 -c "import statistics,sys; print(round(statistics.median([float(x) for x in sys.argv[2].split()]), int(sys.argv[1])))" "$1" "$2"; }

# alive TPID NAME: records an issue when a process the harness started has died.
alive() {
  kill -0 "$1" 2>/dev/null && return 0
  issue "$2 exited unexpectedly; log tail: $(tail -n 5 "$WORK/$2.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# ---------------------------------------------------------------------------------------
# Origin: nginx, 1 worker on the load core. Sets ORIGIN_PORT, ORIGIN_PID, ORIGIN_TPID.

start_origin() {
  local nofile dir conf
  nofile=$(ulimit -n)
  alloc_port ORIGIN_PORT
  dir="$WORK/origin-$ORIGIN_PORT"
  mkdir -p "$dir"
  conf="$dir/nginx.conf"
  render_template "$BENCH_D/nginx-http-origin.conf.in" "$conf" \
    DIR="$dir" NOFILE="$nofile" WORKER_CONNECTIONS="$((nofile - 50))" PORT="$ORIGIN_PORT"
  bg_start "origin-$ORIGIN_PORT" "$LOAD_CORE" nginx -p "$dir" -e "$dir/error.log" -c "$conf"
  ORIGIN_PID=$BG_PID
  ORIGIN_TPID=$BG_TPID
  wait_listen "$ORIGIN_PORT" "$ORIGIN_PID" "origin-$ORIGIN_PORT"
}

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

# busy_ticks: non-idle clock ticks of the whole machine, all cores (/proc/stat).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# children_ticks FILE: CPU ticks of this shell's waited-for children, from `times`
# output saved in FILE. `times` itself must run in this shell (`times >FILE`): inside
# $(...) it would report that subshell's children only, i.e. none.
children_ticks() {
  awk -v hz="$CLK_TCK" 'NR == 2 {
      t = 0
      for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
      printf "%d\n", t * hz }' "$1"
}

# wait_quiet: before a measured run, waits (up to QUIET_WAIT s) until the rest of the
# machine uses under 0.15 core; builds by other users on a 2-core VM halve every figure.
wait_quiet() {
  local t0=$SECONDS b0 b1 busy said=0
  while :; do
    if ((SECONDS >= QUIET_END)); then
      ((said)) && issue "quiet-wait budget (${QUIET_BUDGET}s) used up; measuring anyway"
      return 0
    fi
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    busy=$(awk -v d=$((b1 - b0)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", d / hz}')
    awk -v b="$busy" 'BEGIN {exit !(b < 0.15)}' && return 0
    if ((SECONDS - t0 >= QUIET_WAIT)); then
      issue "other processes kept $busy cores busy for ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
    ((said)) || log "waiting for other load to stop ($busy cores busy; up to ${QUIET_WAIT}s)"
    said=1
  done
}

# wrk_once NAME PORT [PROXY_PID]: one wrk run on the load core. Sets WRK_OUT (file),
# WRK_VALS ("rps p50_us p99_us requests non2xx socket_errors", empty on failure),
# WRK_PROXY_TICKS (CPU ticks of the proxy during the run) and WRK_FOREIGN (cores used
# by processes other than wrk, the origin and the proxy during the run: noise).
wrk_once() {
  local name=$1 port=$2 ppid=${3:-} p0=0 p1=0 o0 o1 w0 w1 b0 b1 t0 t1
  WRK_OUT="$WORK/wrk-$name.txt"
  WRK_VALS=""
  [[ -n "$ppid" ]] && p0=$(proc_cpu_ticks "$ppid")
  o0=$(proc_cpu_ticks "$ORIGIN_PID")
  times >"$WORK/times0.txt"
  b0=$(busy_ticks)
  t0=$(date +%s.%N)
  timeout -k 5 $((WRK_TIME + 30)) taskset -c "$LOAD_CORE" \
    wrk -t1 -c"$WRK_CONNS" -d"${WRK_TIME}s" --timeout 5s --latency \
    "http://127.0.0.1:$port/" >"$WRK_OUT" 2>&1 || true
  t1=$(date +%s.%N)
  b1=$(busy_ticks)
  times >"$WORK/times1.txt"
  w0=$(children_ticks "$WORK/times0.txt")
  w1=$(children_ticks "$WORK/times1.txt")
  o1=$(proc_cpu_ticks "$ORIGIN_PID")
  [[ -n "$ppid" ]] && p1=$(proc_cpu_ticks "$ppid")
  WRK_PROXY_TICKS=$((p1 - p0))
  WRK_FOREIGN=$(awk -v o=$((b1 - b0 - (p1 - p0) - (o1 - o0) - (w1 - w0))) -v hz="$CLK_TCK" \
    -v t0="$t0" -v t1="$t1" 'BEGIN {f = o / hz / (t1 - t0); printf "%.2f", f < 0 ? 0 : f}')
  WRK_VALS=$(python3 "$BENCH_D/http_clients.py" wrk-parse "$WRK_OUT" 2>/dev/null) || WRK_VALS=""
}

# Like the tcp suite: every proxy once per round, HTTP_ROUNDS rounds, medians reported;
# on a 2-core VM single runs swing by 20% and interleaving spreads noise over all alike.
test_wrk() {
  local keys=$1 key r
  local -A target tpid mpid rps p50 p99 cpu bad foreign
  QUIET_END=$((SECONDS + QUIET_BUDGET))
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
      # A run during which other processes took more than NOISY_CORES is repeated (at
      # most NOISY_RETRIES times); the least disturbed attempt counts.
      local a best_f="" best_vals="" best_out="" best_ticks=0
      for ((a = 0; a <= NOISY_RETRIES; a++)); do
        wait_quiet
        wrk_once "$key-r$r-a$a" "${target[$key]}" "${mpid[$key]:-}"
        log "wrk: $key: $(awk '/Requests\/sec/ {print $2}' "$WRK_OUT") req/s; other processes used $WRK_FOREIGN cores"
        if [[ -z "$best_f" ]] || awk -v f="$WRK_FOREIGN" -v b="$best_f" 'BEGIN {exit !(f < b)}'; then
          best_f=$WRK_FOREIGN best_vals=$WRK_VALS best_out=$WRK_OUT best_ticks=$WRK_PROXY_TICKS
        fi
        [[ -z "$WRK_VALS" ]] && break
        awk -v f="$WRK_FOREIGN" -v t="$NOISY_CORES" 'BEGIN {exit !(f > t)}' || break
        ((SECONDS < QUIET_END)) || break
        ((a < NOISY_RETRIES)) && log "wrk: $key: noisy run; repeating it"
      done
      WRK_FOREIGN=$best_f WRK_VALS=$best_vals WRK_OUT=$best_out WRK_PROXY_TICKS=$best_ticks
      foreign[$key]+="$WRK_FOREIGN "
      if [[ -z "$WRK_VALS" ]]; then
        issue "wrk via $key round $r produced no result: $(head -c 300 "$WRK_OUT" | tr '\n' ' ')"
        [[ $key != direct ]] && alive "${tpid[$key]}" "$key-${target[$key]}"
        continue
      fi
      read -r v_rps v_p50 v_p99 v_n v_non2xx v_err <<<"$WRK_VALS"
      rps[$key]+="$v_rps "
      p50[$key]+="$v_p50 "
      p99[$key]+="$v_p99 "
      if [[ $key != direct ]]; then
        cpu[$key]+="$(awk -v t="$WRK_PROXY_TICKS" -v hz="$CLK_TCK" -v n="$v_n" \
          'BEGIN {printf "%.2f", t / hz / (n > 0 ? n : 1) * 1e6}') "
      fi
      if ((v_non2xx > 0 || v_err > 0)); then
        bad[$key]+="round $r: $v_non2xx non-2xx, $v_err socket errors of $v_n; "
        issue "wrk via $key round $r: $v_non2xx non-2xx responses, $v_err socket errors, $v_n requests ($WRK_OUT)"
      fi
    done
  done
  for key in direct $keys; do
    [[ -n "${rps[$key]:-}" ]] || {
      result "HTTP requests/s (wrk -c$WRK_CONNS)" "$key" "$(proxy_label "$key")" n/a "req/s" higher "no successful run"
      continue
    }
    local note="median of ${HTTP_ROUNDS} interleaved runs: ${rps[$key]% }"
    note+="; other load $(echo "${foreign[$key]}" | tr ' ' '\n' | sort -n | tail -1) cores max"
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
    ensure_tern
    # bazel-bin follows the last build's configuration: after someone's --config=asan it
    # is a sanitizer build, several times slower (bazel-out/k8-opt/bin has the opt one).
    if ldd "$TERN_BIN" 2>/dev/null | grep -qE 'lib(asan|tsan|ubsan|msan)'; then
      die "TERN_BIN=$TERN_BIN is a sanitizer build; benchmark an opt build (bazel-out/k8-opt/bin/source/exe/tern)"
    fi
    # Run a private copy: a concurrent `bazel build` replaces bazel-bin mid-run.
    cp -p "$TERN_BIN" "$WORK/tern" || die "cannot copy $TERN_BIN"
    TERN_BIN="$WORK/tern"
    tern_desc=" Tern from commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- source extensions 2>/dev/null)" ]]; then
      tern_desc+=" with uncommitted changes"
    fi
    tern_desc+=", binary built $(date -u -r "$WORK/tern" '+%Y-%m-%d %H:%M UTC')."
  fi

  local env_desc=""
  [[ -n "${BENCH_WRK_TIME:-}" ]] && env_desc+="BENCH_WRK_TIME=$BENCH_WRK_TIME "
  [[ -n "${BENCH_ROUNDS:-}" ]] && env_desc+="BENCH_ROUNDS=$BENCH_ROUNDS "
  [[ -n "${BENCH_IDLE_CONNS:-}" ]] && env_desc+="BENCH_IDLE_CONNS=$BENCH_IDLE_CONNS "
  [[ -n "${BENCH_WRK_CONNS:-}" ]] && env_desc+="BENCH_WRK_CONNS=$BENCH_WRK_CONNS "
  BENCH_ENV_DESC=${env_desc% }
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
  if ((${#HTTP_ISSUES[@]})); then
    log "anomalies seen during the run:"
    for k in "${HTTP_ISSUES[@]}"; do log "  - $k"; done
  fi
  publish http "L7: HTTP/1.1 proxy"
}
