# shellcheck shell=bash disable=SC2034  # variables shared across the sourced files
# HTTP/2 suite for tools/bench: h2load (h2c, prior knowledge) through Tern's
# http_connection_manager (codec_type AUTO) + router, nginx (listen ... http2) and HAProxy
# (bind ... proto h2) to the same nginx origin, over HTTP/1.1 or h2c upstream.
# Sourced by tools/bench after lib.sh.

H2_PROXIES="tern tern-raw nginx haproxy"
H2_UPSTREAMS="http1,http2"
H2_TIME=${BENCH_H2LOAD_TIME:-5}
H2_CONNS=${BENCH_H2LOAD_CONNS:-16}        # h2load -c
H2_STREAMS=${BENCH_H2LOAD_STREAMS:-10}    # h2load -m: concurrent streams per connection
H2_WARMUP=${BENCH_H2LOAD_WARMUP:-1}       # seconds of unrecorded h2load per target first
H2_ROUNDS=${BENCH_ROUNDS:-3}              # interleaved rounds per figure (median)
# Its own port range (unless BENCH_PORT_BASE is set), apart from the tcp (19000+) and
# http (19500+) suites', in case two engineers run suites at once.
[[ -n "${BENCH_PORT_BASE:-}" ]] || NEXT_PORT=19800

suite_usage() {
  cat <<EOF
tools/bench h2 [options]: HTTP/2 (h2c) reverse-proxy benchmarks.

h2load -c$H2_CONNS -m$H2_STREAMS (h2c with prior knowledge, on core 1) through each proxy
(one worker, core 0) to one nginx origin (1 worker, core 1) that answers every request
with a 6-byte 200 (return 200 "hello\n"), in two scenarios (--upstreams):
  http1  h2c to the proxy, HTTP/1.1 with keep-alive to the origin
  http2  h2c on both sides (nginx is left out: it cannot proxy to an HTTP/2 upstream)
Per proxy and scenario: proxy CPU (user+system, from /proc) per request, requests/s,
and h2load's "time for request" mean and max (h2load prints no percentiles); h2load
straight to the origin's h2c listener is the reference.

Proxies (for --only): tern (io_model WORKER_LOOPS), tern-raw (io_model RAW_EPOLL),
nginx (listen ... http2, proxy_pass with upstream keepalive), haproxy (bind ... proto h2,
mode http, http-reuse always; backend server ... proto h2 for the http2 scenario).
Tern: http_connection_manager with codec_type AUTO, cluster HttpProtocolOptions
explicit_http_config (http_protocol_options or http2_protocol_options), --concurrency 1.

Options:
  --only LIST          proxies to run (default: all)
  --upstreams LIST     http1,http2 (default: both)
  --h2load-time S      seconds per h2load run, -D (default 5; env BENCH_H2LOAD_TIME)
  --rounds N           interleaved rounds (default 3; env BENCH_ROUNDS)
  --conns N            h2load -c (default 16; env BENCH_H2LOAD_CONNS)
  --streams N          h2load -m (default 10; env BENCH_H2LOAD_STREAMS)
  --write-docs, --keep as for every suite

Environment: TERN_BIN (prebuilt tern, skips bazel build), BENCH_H2LOAD_WARMUP (1: seconds
of unrecorded h2load per target before the rounds), BENCH_QUIET_WAIT (120: before each
run, wait this long at most for the rest of the machine to go quiet),
BENCH_NOISY_RETRIES (2: repeats of a run during which other processes used over 0.25
core; the least disturbed attempt counts), BENCH_QUIET_BUDGET (900: total seconds
those waits and repeats may add), BENCH_PORT_BASE (19800 for this suite),
BENCH_LIFETIME (1800).
EOF
}

suite_option() {
  case "$1" in
    --upstreams) H2_UPSTREAMS=${2:?}; return 2 ;;
    --h2load-time) H2_TIME=${2:?}; return 2 ;;
    --rounds) H2_ROUNDS=${2:?}; return 2 ;;
    --conns) H2_CONNS=${2:?}; return 2 ;;
    --streams) H2_STREAMS=${2:?}; return 2 ;;
  esac
  return 0
}

# upstream_label UPSTREAM: the scenario's name in the table.
upstream_label() {
  case "$1" in
    http1) echo "h2c → HTTP/1.1 origin" ;;
    http2) echo "h2c → h2c origin" ;;
  esac
}

# ---------------------------------------------------------------------------------------
# Proxies. start_proxy KEY UPSTREAM starts KEY (tern, tern-raw, nginx, haproxy) speaking
# h2c to clients and UPSTREAM (http1 or http2) to the origin; sets PROXY_PORT, PROXY_PID
# (process to measure: nginx master, whose worker counts too), PROXY_TPID, PROXY_LOG.

start_proxy() {
  local key=$1 up=$2 conf nofile origin=$ORIGIN_PORT
  [[ $up == http2 ]] && origin=$ORIGIN_H2_PORT
  alloc_port PROXY_PORT
  nofile=$(ulimit -n)
  PROXY_LOG="$key-$up-$PROXY_PORT"
  local inflight=$((H2_CONNS * H2_STREAMS))
  case "$key" in
    tern|tern-raw)
      local model=WORKER_LOOPS upcfg="http_protocol_options: {}"
      [[ $key == tern-raw ]] && model=RAW_EPOLL
      [[ $up == http2 ]] && upcfg="http2_protocol_options: {}"
      conf="$WORK/$PROXY_LOG.yaml"
      render_template "$BENCH_D/tern-h2.yaml.in" "$conf" \
        PORT="$PROXY_PORT" ORIGIN_PORT="$origin" IO_MODEL="$model" UPSTREAM_HTTP_CONFIG="$upcfg"
      tern_validate "$conf"
      bg_start "$PROXY_LOG" "$PROXY_CORE" "$TERN_BIN" -c "$conf" --concurrency 1
      ;;
    nginx)
      [[ $up == http1 ]] || die "nginx cannot proxy to an HTTP/2 upstream"
      local dir="$WORK/$PROXY_LOG" wc
      mkdir -p "$dir"
      conf="$dir/nginx.conf"
      wc=$((H2_CONNS + 2 * inflight + 100))
      ((wc > nofile - 50)) && wc=$((nofile - 50))
      render_template "$BENCH_D/nginx-h2.conf.in" "$conf" \
        DIR="$dir" NOFILE="$nofile" WORKER_CONNECTIONS="$wc" PORT="$PROXY_PORT" \
        ORIGIN_PORT="$origin" KEEPALIVE="$((inflight > 64 ? inflight : 64))"
      bg_start "$PROXY_LOG" "$PROXY_CORE" nginx -p "$dir" -e "$dir/error.log" -c "$conf"
      ;;
    haproxy)
      local proto="" maxconn=$((H2_CONNS + inflight + 100))
      [[ $up == http2 ]] && proto="proto h2"
      (((2 * maxconn + 100) > nofile)) && maxconn=$(((nofile - 100) / 2))
      conf="$WORK/$PROXY_LOG.cfg"
      render_template "$BENCH_D/haproxy-h2.cfg.in" "$conf" \
        MAXCONN="$maxconn" PORT="$PROXY_PORT" ORIGIN_PORT="$origin" SERVER_PROTO="$proto"
      bg_start "$PROXY_LOG" "$PROXY_CORE" haproxy -db -f "$conf"
      ;;
    *) die "unknown proxy '$key'" ;;
  esac
  PROXY_PID=$BG_PID
  PROXY_TPID=$BG_TPID
  wait_listen "$PROXY_PORT" "$PROXY_PID" "$PROXY_LOG"
}

# ---------------------------------------------------------------------------------------
# h2load: requests/s, request time, proxy CPU per request.

# h2load_once NAME SECS PORT [PROXY_PID]: one `h2load -D SECS` run on the load core
# (load_run). Sets RUN_OUT, RUN_PROXY_TICKS, RUN_FOREIGN and RUN_VALS ("rps succeeded
# done failed errored timeout non2xx mean_us max_us sd_us", empty on failure).
h2load_once() {
  local name=$1 secs=$2 port=$3 ppid=${4:-}
  load_run "h2load-$name" "$ppid" $((secs + 30)) \
    h2load -c"$H2_CONNS" -m"$H2_STREAMS" -D "$secs" "http://127.0.0.1:$port/"
  RUN_VALS=$(python3 "$BENCH_D/http_clients.py" h2load-parse "$RUN_OUT" 2>/dev/null) || RUN_VALS=""
  log "h2load: $name: $(awk '/^finished in/ {print $4}' "$RUN_OUT") req/s; other processes used $RUN_FOREIGN cores"
}

# Like the http suite: every target once per round (direct, then each proxy in each
# scenario), H2_ROUNDS rounds, medians reported. "direct" (h2load to the origin's h2c
# listener) is measured once per round and listed in both scenarios.
test_h2load() {
  local keys=$1 ups=$2 t up key r load="h2load -c$H2_CONNS -m$H2_STREAMS"
  local -a targets=(direct)
  local -A port tpid mpid plog rps cpu mean hi sd bad foreign
  quiet_budget_start
  start_origin
  local otpid=$ORIGIN_TPID
  port[direct]=$ORIGIN_H2_PORT
  for up in $ups; do
    for key in $keys; do
      [[ $key == nginx && $up == http2 ]] && continue
      start_proxy "$key" "$up"
      t="$up/$key"
      targets+=("$t")
      port[$t]=$PROXY_PORT
      tpid[$t]=$PROXY_TPID
      mpid[$t]=$PROXY_PID
      plog[$t]=$PROXY_LOG
    done
  done
  # Warm-up (not recorded): connections, upstream pools, lazy allocations.
  for t in "${targets[@]}"; do
    h2load_once "warmup-${t/\//-}" "$H2_WARMUP" "${port[$t]}" "${mpid[$t]:-}"
    [[ -n "$RUN_VALS" ]] || issue "warm-up via $t failed: $(tail -c 300 "$RUN_OUT" | tr '\n' ' ')"
  done
  for ((r = 1; r <= H2_ROUNDS; r++)); do
    for t in "${targets[@]}"; do
      log "h2load: $t, -c$H2_CONNS -m$H2_STREAMS ${H2_TIME}s, round $r/$H2_ROUNDS"
      local v_rps v_ok v_done v_failed v_errored v_timeout v_non2xx v_mean v_max v_sd
      # Repeated when other processes took more than NOISY_CORES (lib.sh: quiet_run).
      quiet_run "${t/\//-}-r$r" h2load_once "$H2_TIME" "${port[$t]}" "${mpid[$t]:-}"
      foreign[$t]+="$RUN_FOREIGN "
      if [[ -z "$RUN_VALS" ]]; then
        issue "h2load via $t round $r produced no result: $(tail -c 300 "$RUN_OUT" | tr '\n' ' ')"
        [[ $t != direct ]] && { alive "${tpid[$t]}" "${plog[$t]}" || true; }
        continue
      fi
      read -r v_rps v_ok v_done v_failed v_errored v_timeout v_non2xx v_mean v_max v_sd <<<"$RUN_VALS"
      rps[$t]+="$v_rps "
      mean[$t]+="$v_mean "
      hi[$t]+="$v_max "
      sd[$t]+="$v_sd "
      [[ $t != direct ]] && cpu[$t]+="$(us_per_req "$RUN_PROXY_TICKS" "$v_ok") "
      if ((v_failed > 0 || v_errored > 0 || v_timeout > 0 || v_non2xx > 0)); then
        bad[$t]+="round $r: $v_failed failed, $v_errored errored, $v_timeout timeout, $v_non2xx non-2xx of $v_done; "
        issue "h2load via $t round $r: $v_failed failed, $v_errored errored, $v_timeout timed out, $v_non2xx non-2xx, $v_done done ($RUN_OUT)"
      fi
    done
  done

  # Results, per scenario: CPU per request (the figure that separates the proxies: the
  # load core saturates first), requests/s, request time mean and max.
  local label metric note
  for up in $ups; do
    label=$(upstream_label "$up")
    for key in $keys; do
      t="$up/$key"
      [[ -n "${cpu[$t]:-}" ]] || continue
      note="user+system; runs: ${cpu[$t]% }"
      [[ $key == tern* ]] && note+="; issue target ≤ 0.80x HAProxy"
      result "$label: proxy CPU per request ($load)" "$key" "$(proxy_label "$key")" \
        "$(median 2 "${cpu[$t]}")" "µs/req" lower "$note"
    done
    metric="$label: requests/s ($load)"
    for key in direct $keys; do
      t="$up/$key"
      [[ $key == direct ]] && t=direct
      [[ -n "${port[$t]:-}" ]] || continue   # nginx, http2
      if [[ -z "${rps[$t]:-}" ]]; then
        result "$metric" "$key" "$(proxy_label "$key")" n/a "req/s" higher "no successful run"
        continue
      fi
      note="median of $H2_ROUNDS interleaved runs: ${rps[$t]% }"
      note+="; other load $(max_of "${foreign[$t]}") cores max"
      [[ $key == direct ]] && note+="; h2c to the origin, the same runs in both scenarios"
      [[ $key == tern* ]] && note+="; issue target ≥ 1.00x HAProxy"
      [[ -n "${bad[$t]:-}" ]] && note+="; ERRORS ${bad[$t]% ; }"
      result "$metric" "$key" "$(proxy_label "$key")" "$(median 0 "${rps[$t]}")" "req/s" higher "$note"
    done
    for key in direct $keys; do
      t="$up/$key"
      [[ $key == direct ]] && t=direct
      [[ -n "${mean[$t]:-}" ]] || continue
      result "$label: request time, mean ($load)" "$key" "$(proxy_label "$key")" \
        "$(median 1 "${mean[$t]}")" "µs" lower "runs: ${mean[$t]% }; sd per run: ${sd[$t]% }"
    done
    for key in direct $keys; do
      t="$up/$key"
      [[ $key == direct ]] && t=direct
      [[ -n "${hi[$t]:-}" ]] || continue
      result "$label: request time, max ($load)" "$key" "$(proxy_label "$key")" \
        "$(median 1 "${hi[$t]}")" "µs" lower "median of the runs' maxima: ${hi[$t]% }"
    done
  done

  for t in "${targets[@]}"; do
    [[ $t == direct ]] && continue
    alive "${tpid[$t]}" "${plog[$t]}" || true
    bg_stop "${tpid[$t]}"
  done
  bg_stop "$otpid"
}

# ---------------------------------------------------------------------------------------

suite_run() {
  local keys="" ups="" k
  for k in $H2_PROXIES; do in_only "$k" && keys+="$k "; done
  for k in ${ONLY//,/ }; do
    [[ " $H2_PROXIES " == *" $k "* ]] || die "unknown proxy '$k' (have: $H2_PROXIES)"
  done
  [[ -n "$keys" ]] || die "no proxy selected"
  for k in ${H2_UPSTREAMS//,/ }; do
    [[ " http1 http2 " == *" $k "* ]] || die "unknown upstream '$k' (have: http1, http2)"
    ups+="$k "
  done
  [[ -n "$ups" ]] || die "no upstream selected"
  if [[ "$ups" == "http2 " && "$keys" == "nginx " ]]; then
    die "nginx cannot proxy to an HTTP/2 upstream: nothing to run"
  fi
  local n
  for n in "$H2_TIME" "$H2_ROUNDS" "$H2_CONNS" "$H2_STREAMS" "$H2_WARMUP"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n': durations, rounds, connections and streams are positive integers"
  done
  command -v h2load >/dev/null || die "h2load not found (tools/setup --test installs it: nghttp2-client)"
  nginx -V 2>&1 | grep -q -- --with-http_v2_module || die "this nginx is built without the HTTP/2 module"

  local tern_desc=""
  if [[ " $keys" == *" tern"* ]]; then
    prepare_tern
    tern_desc=" $TERN_DESC"
  fi

  bench_env_desc BENCH_H2LOAD_TIME BENCH_ROUNDS BENCH_H2LOAD_CONNS BENCH_H2LOAD_STREAMS
  local load="h2load -c$H2_CONNS -m$H2_STREAMS"
  SUITE_NOTES="- \`$load -D $H2_TIME\` (h2c, prior knowledge; one thread) on core 1 through each proxy, pinned to core 0 with one worker: Tern \`--concurrency 1\` with http_connection_manager (\`codec_type: AUTO\`) + router, nginx \`worker_processes 1\` with \`listen ... http2\` and \`proxy_pass\` to an upstream with \`keepalive $((H2_CONNS * H2_STREAMS > 64 ? H2_CONNS * H2_STREAMS : 64))\`, HAProxy \`nbthread 1\`, \`mode http\`, \`bind ... proto h2\`, \`http-reuse always\`. The origin (nginx, 1 worker, \`return 200 \"hello\\n\"\`, an HTTP/1.1 and an h2c listener) is pinned to core 1 too. Keep-alive everywhere, no access logs.$tern_desc
- Scenarios: \"h2c → HTTP/1.1 origin\" (Tern cluster \`explicit_http_config: {http_protocol_options: {}}\`, HAProxy \`server\` plain, nginx \`proxy_http_version 1.1\`) and \"h2c → h2c origin\" (Tern \`explicit_http_config: {http2_protocol_options: {}}\`, HAProxy \`server ... proto h2\`; nginx cannot proxy to an HTTP/2 upstream). The issue's targets: Tern's proxy CPU per request at most 0.8x HAProxy's and requests/s no lower, in both.
- Median of $H2_ROUNDS interleaved rounds after a ${H2_WARMUP} s warm-up per target; \"direct\" is h2load straight to the origin's h2c listener (measured once per round, listed in both scenarios). h2load and the origin share core 1, which saturates first, so requests/s is bounded by them; proxy CPU per request (user+system time of the proxy process, nginx master + worker, from /proc, over the whole h2load run, divided by the requests h2load completed) is the figure that separates the proxies. Request time is h2load's \"time for request\" (it prints min, max, mean and sd, no percentiles): median over the runs of each run's mean, and of each run's max. Each run waits (up to ${QUIET_WAIT} s; waits and repeats together at most ${QUIET_BUDGET} s) until other processes use under 0.15 core; \"other load\" is the CPU used during the run by anything but h2load, the origin and the proxy (from /proc/stat), in cores; a run with over $NOISY_CORES is repeated (up to $NOISY_RETRIES times) and the least disturbed attempt counts. Well above 0 means the figures are skewed."

  test_h2load "$keys" "$ups"
  report_issues
  publish h2 "L7: HTTP/2 (h2c) proxy"
}
