# shellcheck shell=bash disable=SC2034  # variables shared across the sourced files
# RPC suite for tools/bench: SOFARPC (Bolt v1) and Dubbo through Tern's rpc_proxy, against
# the direct path, with rpc_bench (tools/bench.d/rpc_bench.cc) as both the load generator
# and the upstream. Sourced by tools/bench after lib.sh.

RPC_PROXIES="tern tern-raw"
RPC_PROTOS="bolt,dubbo"
RPC_TESTS="load,insns"
RPC_TIME=${BENCH_RPC_TIME:-5}
RPC_CONNS=${BENCH_RPC_CONNS:-64}
RPC_INFLIGHT=${BENCH_RPC_INFLIGHT:-16}
RPC_WARMUP=${BENCH_RPC_WARMUP:-1}
RPC_ROUNDS=${BENCH_ROUNDS:-3}
CG_WARMUP=${BENCH_CG_WARMUP:-2000}        # requests in the baseline callgrind session
CG_REQUESTS=${BENCH_CG_REQUESTS:-20000}   # more requests in the measured session
[[ -n "${BENCH_PORT_BASE:-}" ]] || NEXT_PORT=20100

suite_usage() {
  cat <<EOF
tools/bench rpc [options]: SOFARPC (Bolt) and Dubbo proxy benchmarks.

rpc_bench load (one thread, $RPC_CONNS connections with $RPC_INFLIGHT requests in flight on each,
core 1) to rpc_bench server (one thread, core 1, answers every request at once), directly
and through Tern's tern.filters.network.rpc_proxy (--concurrency 1, core 0; one
multiplexed upstream connection). Bolt requests are SofaRequests with SOFARPC's headers,
Dubbo requests hessian2 calls with attachments; only the request id differs.

Tests (--tests):
  load   requests/s, proxy CPU (user+system, /proc) per request, p50/p99 latency
  insns  user-space instructions per proxied request: Tern under callgrind, two sessions
         of $CG_WARMUP and $((CG_WARMUP + CG_REQUESTS)) requests, (Ir2 - Ir1) / $CG_REQUESTS

Proxies (for --only): tern (io_model WORKER_LOOPS), tern-raw (io_model RAW_EPOLL).

Options:
  --only LIST          proxies to run (default: both)
  --protos LIST        bolt,dubbo (default: both)
  --tests LIST         load,insns (default: both)
  --time S             seconds per load run (default 5; env BENCH_RPC_TIME)
  --rounds N           interleaved rounds (default 3; env BENCH_ROUNDS)
  --conns N            connections (default 64; env BENCH_RPC_CONNS)
  --inflight N         requests in flight per connection (default 16; env BENCH_RPC_INFLIGHT)
  --write-docs, --keep as for every suite
EOF
}

suite_option() {
  case "$1" in
    --protos) RPC_PROTOS=${2:?}; return 2 ;;
    --tests) RPC_TESTS=${2:?}; return 2 ;;
    --time) RPC_TIME=${2:?}; return 2 ;;
    --rounds) RPC_ROUNDS=${2:?}; return 2 ;;
    --conns) RPC_CONNS=${2:?}; return 2 ;;
    --inflight) RPC_INFLIGHT=${2:?}; return 2 ;;
  esac
  return 0
}

build_rpc_bench() {
  RPC_BENCH="$WORK/rpc_bench"
  g++ -O2 -std=c++17 -o "$RPC_BENCH" "$BENCH_D/rpc_bench.cc" || die "cannot build rpc_bench (g++)"
}

# start_upstream PROTO: rpc_bench server on the load core. Sets ORIGIN_PORT, ORIGIN_PID
# (load_run subtracts its CPU from the "other load"), ORIGIN_TPID.
start_upstream() {
  alloc_port ORIGIN_PORT
  bg_start "upstream-$1-$ORIGIN_PORT" "$LOAD_CORE" "$RPC_BENCH" server --proto "$1" --port "$ORIGIN_PORT"
  ORIGIN_PID=$BG_PID
  ORIGIN_TPID=$BG_TPID
  wait_listen "$ORIGIN_PORT" "$ORIGIN_PID" "upstream-$1-$ORIGIN_PORT"
}

# start_proxy KEY PROTO [CALLGRIND_OUT]: Tern for PROTO in front of ORIGIN_PORT. Sets
# PROXY_PORT, PROXY_PID, PROXY_TPID, PROXY_LOG.
start_proxy() {
  local key=$1 proto=$2 cgout=${3:-} conf model=WORKER_LOOPS downstream=BOLT
  [[ $key == tern-raw ]] && model=RAW_EPOLL
  [[ $proto == dubbo ]] && downstream=DUBBO
  alloc_port PROXY_PORT
  PROXY_LOG="$key-$proto-$PROXY_PORT"
  conf="$WORK/$PROXY_LOG.yaml"
  render_template "$BENCH_D/tern-rpc.yaml.in" "$conf" \
    PORT="$PROXY_PORT" UPSTREAM_PORT="$ORIGIN_PORT" IO_MODEL="$model" PROTOCOL="$downstream"
  tern_validate "$conf"
  local pre=()
  [[ -n "$cgout" ]] && pre=(valgrind --tool=callgrind --callgrind-out-file="$cgout" --dump-instr=no)
  bg_start "$PROXY_LOG" "$PROXY_CORE" "${pre[@]}" "$TERN_BIN" -c "$conf" --concurrency 1
  PROXY_PID=$BG_PID
  PROXY_TPID=$BG_TPID
  wait_listen "$PROXY_PORT" "$PROXY_PID" "$PROXY_LOG" 60
}

# rpc_once NAME PROTO PORT [PROXY_PID]: one measured rpc_bench load run. Sets RUN_VALS
# ("rps requests errors p50 p99", empty on failure) and load_run's RUN_* figures.
rpc_once() {
  local name=$1 proto=$2 port=$3 ppid=${4:-}
  load_run "load-$name" "$ppid" $((RPC_TIME + RPC_WARMUP + 30)) \
    "$RPC_BENCH" load --proto "$proto" --port "$port" --connections "$RPC_CONNS" \
    --inflight "$RPC_INFLIGHT" --duration "$RPC_TIME" --warmup "$RPC_WARMUP"
  RUN_VALS=$(python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(d["rps"], d["requests"], d["errors"], d["p50_us"], d["p99_us"])' "$RUN_OUT" 2>/dev/null) || RUN_VALS=""
  log "rpc_bench: $name: $(tail -n 1 "$RUN_OUT"); other processes used $RUN_FOREIGN cores"
}

test_load() {
  local keys=$1 protos=$2 proto key t r load="rpc_bench -c$RPC_CONNS x$RPC_INFLIGHT"
  local -A port tpid mpid plog rps cpu p50 p99 bad foreign
  local -a targets=()
  local -A up_tpid
  quiet_budget_start
  for proto in $protos; do
    start_upstream "$proto"
    up_tpid[$proto]=$ORIGIN_TPID
    local up_pid=$ORIGIN_PID
    targets+=("$proto/direct")
    port[$proto/direct]=$ORIGIN_PORT
    for key in $keys; do
      start_proxy "$key" "$proto"
      t="$proto/$key"
      targets+=("$t")
      port[$t]=$PROXY_PORT
      tpid[$t]=$PROXY_TPID
      mpid[$t]=$PROXY_PID
      plog[$t]=$PROXY_LOG
    done
    mpid[$proto/upstream]=$up_pid
  done
  for ((r = 1; r <= RPC_ROUNDS; r++)); do
    for t in "${targets[@]}"; do
      proto=${t%%/*}
      ORIGIN_PID=${mpid[$proto/upstream]}
      log "rpc_bench: $t, $load, ${RPC_TIME}s, round $r/$RPC_ROUNDS"
      quiet_run "${t/\//-}-r$r" rpc_once "$proto" "${port[$t]}" "${mpid[$t]:-}"
      foreign[$t]+="$RUN_FOREIGN "
      if [[ -z "$RUN_VALS" ]]; then
        issue "rpc_bench via $t round $r produced no result: $(tail -c 300 "$RUN_OUT" | tr '\n' ' ')"
        continue
      fi
      local v_rps v_n v_err v_p50 v_p99
      read -r v_rps v_n v_err v_p50 v_p99 <<<"$RUN_VALS"
      rps[$t]+="$v_rps "
      p50[$t]+="$v_p50 "
      p99[$t]+="$v_p99 "
      # The proxy's CPU over the whole run (warm-up included) over every request it
      # carried in that time: requests/s times the run's length.
      [[ ${t#*/} != direct ]] && cpu[$t]+="$(us_per_req "$RUN_PROXY_TICKS" "$(awk -v r="$v_rps" -v s=$((RPC_TIME + RPC_WARMUP)) 'BEGIN {printf "%d", r * s}')") "
      ((v_err > 0)) && { bad[$t]+="round $r: $v_err errors of $v_n; "; issue "rpc_bench via $t round $r: $v_err errors"; }
    done
  done
  local label note
  for proto in $protos; do
    label=$([[ $proto == bolt ]] && echo "Bolt" || echo "Dubbo")
    for key in $keys; do
      t="$proto/$key"
      [[ -n "${cpu[$t]:-}" ]] || continue
      note="user+system over warm-up and run; runs: ${cpu[$t]% }"
      [[ $proto == bolt ]] && note+="; issue target ≤ 10 µs"
      result "$label: proxy CPU per request ($load)" "$key" "$(proxy_label "$key")" \
        "$(median 2 "${cpu[$t]}")" "µs/req" lower "$note"
    done
    for key in direct $keys; do
      t="$proto/$key"
      [[ -n "${rps[$t]:-}" ]] || continue
      note="median of $RPC_ROUNDS interleaved runs: ${rps[$t]% }; other load $(max_of "${foreign[$t]}") cores max"
      [[ -n "${bad[$t]:-}" ]] && note+="; ERRORS ${bad[$t]% ; }"
      result "$label: requests/s ($load)" "$key" "$(rpc_label "$key")" "$(median 0 "${rps[$t]}")" "req/s" higher "$note"
    done
    for key in direct $keys; do
      t="$proto/$key"
      [[ -n "${p99[$t]:-}" ]] || continue
      result "$label: latency p50 ($load)" "$key" "$(rpc_label "$key")" \
        "$(median 0 "${p50[$t]}")" "µs" lower "runs: ${p50[$t]% }"
    done
    for key in direct $keys; do
      t="$proto/$key"
      [[ -n "${p99[$t]:-}" ]] || continue
      result "$label: latency p99 ($load)" "$key" "$(rpc_label "$key")" \
        "$(median 0 "${p99[$t]}")" "µs" lower "runs: ${p99[$t]% }"
    done
  done
  for t in "${targets[@]}"; do
    [[ -n "${tpid[$t]:-}" ]] || continue
    alive "${tpid[$t]}" "${plog[$t]}" || true
    bg_stop "${tpid[$t]}"
  done
  for proto in $protos; do bg_stop "${up_tpid[$proto]}"; done
}

rpc_label() {
  [[ $1 == direct ]] && { echo "direct (no proxy)"; return; }
  proxy_label "$1"
}

# cg_session KEY PROTO N: Tern under callgrind, N requests through it; sets CG_IR.
cg_session() {
  local key=$1 proto=$2 n=$3 out="$WORK/callgrind-$1-$2-$3.out"
  CG_IR=""
  start_proxy "$key" "$proto" "$out"
  "$RPC_BENCH" load --proto "$proto" --port "$PROXY_PORT" --connections "$RPC_CONNS" \
    --inflight "$RPC_INFLIGHT" --requests "$n" >"$WORK/cg-$key-$proto-$n.txt" 2>&1 ||
    issue "callgrind: $key $proto $n: load failed: $(tail -c 200 "$WORK/cg-$key-$proto-$n.txt")"
  # SIGTERM: Tern drains and exits; callgrind writes its profile at exit.
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 300); do kill -0 "$PROXY_TPID" 2>/dev/null || break; sleep 0.1; done
  bg_stop "$PROXY_TPID"
  [[ -f "$out" ]] && CG_IR=$(callgrind_annotate "$out" 2>/dev/null | awk '!d && /PROGRAM TOTALS/ {gsub(",", "", $1); print $1; d = 1}')
  [[ -n "$CG_IR" ]] || issue "callgrind: no profile from $key $proto ($out)"
}

test_insns() {
  local keys=$1 protos=$2 key proto a b n1=$CG_WARMUP n2=$((CG_WARMUP + CG_REQUESTS))
  command -v valgrind >/dev/null || { issue "valgrind not found: insns skipped"; return; }
  for proto in $protos; do
    start_upstream "$proto"
    for key in $keys; do
      cg_session "$key" "$proto" "$n1"; a=$CG_IR
      cg_session "$key" "$proto" "$n2"; b=$CG_IR
      local label
      label=$([[ $proto == bolt ]] && echo "Bolt" || echo "Dubbo")
      if [[ -n "$a" && -n "$b" ]]; then
        result "$label: user-space instructions per request (callgrind)" "$key" "$(proxy_label "$key")" \
          "$(( (b - a) / CG_REQUESTS ))" "instr/req" lower \
          "($b - $a) / $CG_REQUESTS$([[ $proto == bolt ]] && echo "; issue target ≤ 10,000")"
      fi
    done
    bg_stop "$ORIGIN_TPID"
  done
}

suite_run() {
  local keys="" protos="" k
  for k in $RPC_PROXIES; do in_only "$k" && keys+="$k "; done
  for k in ${ONLY//,/ }; do
    [[ " $RPC_PROXIES " == *" $k "* ]] || die "unknown proxy '$k' (have: $RPC_PROXIES)"
  done
  [[ -n "$keys" ]] || die "no proxy selected"
  for k in ${RPC_PROTOS//,/ }; do
    [[ " bolt dubbo " == *" $k "* ]] || die "unknown protocol '$k' (have: bolt, dubbo)"
    protos+="$k "
  done
  for k in ${RPC_TESTS//,/ }; do
    [[ ",load,insns," == *",$k,"* ]] || die "unknown test '$k' (have: load, insns)"
  done
  local n
  for n in "$RPC_TIME" "$RPC_ROUNDS" "$RPC_CONNS" "$RPC_INFLIGHT" "$RPC_WARMUP"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n': durations, rounds, connections and in-flight counts are positive integers"
  done
  build_rpc_bench
  prepare_tern
  bench_env_desc BENCH_RPC_TIME BENCH_ROUNDS BENCH_RPC_CONNS BENCH_RPC_INFLIGHT
  SUITE_NOTES="- \`rpc_bench load\` (tools/bench.d/rpc_bench.cc, one thread: $RPC_CONNS connections, $RPC_INFLIGHT requests in flight on each, ids from 1 on every connection) and \`rpc_bench server\` (one thread, answers at once) share core 1; Tern (\`--concurrency 1\`, \`tern.filters.network.rpc_proxy\` with one route to one cluster, one multiplexed upstream connection) has core 0. \"direct\" is the load generator straight to the server. $TERN_DESC
- Bolt: v1 SofaRequests (class name, five SOFARPC headers, about 100 bytes of hessian content) answered by SofaResponses. Dubbo: hessian2 \`echo(String)\` calls with path/interface/version attachments, answered with a value.
- Load: median of $RPC_ROUNDS interleaved rounds of ${RPC_TIME} s after ${RPC_WARMUP} s of warm-up each; proxy CPU per request is the proxy's user+system time from /proc over warm-up and run, divided by requests/s times their length. Latency is rpc_bench's, request written to response read, through a loaded proxy (many requests queue behind each other: 1024 in flight).
- Instructions: Tern under \`valgrind --tool=callgrind\`, two sessions of $CG_WARMUP and $((CG_WARMUP + CG_REQUESTS)) requests with the same load shape, (Ir₂ − Ir₁) / $CG_REQUESTS: user-space instructions of the proxy process (libc included), not the kernel."
  for k in ${RPC_TESTS//,/ }; do
    case "$k" in
      load) test_load "$keys" "$protos" ;;
      insns) test_insns "$keys" "$protos" ;;
    esac
  done
  report_issues
  publish rpc "RPC: SOFARPC (Bolt) and Dubbo proxy"
}
