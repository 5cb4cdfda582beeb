# shellcheck shell=bash disable=SC2034  # variables shared across the sourced files
# Shared helpers for tools/bench suites (sourced, not run).
#
# Process model: every long-running process is started by bg_start under
# `timeout BENCH_LIFETIME taskset -c CORE ...`, so it dies on its own even if the harness
# is killed with SIGKILL. bg_start records the PID of `timeout` (for stopping) and of
# the real process (for RSS); the EXIT trap stops them all, by PID only.

BENCH_LIFETIME=${BENCH_LIFETIME:-1800}
PROXY_CORE=0   # the proxy under test gets core 0 to itself
LOAD_CORE=1    # load generators and origin servers share core 1
WORK=""
RESULTS=""
NEXT_PORT=${BENCH_PORT_BASE:-19000}   # below the ephemeral range (32768+)
BG_TIMEOUT_PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

bench_init() {
  # Both holders of the idle test need one fd per connection, the proxy two: take all
  # the fds the hard limit allows (it cannot be raised here).
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  [[ $(nproc) -ge 2 ]] || log "warning: fewer than 2 cores; pinning to cores 0 and 1 will fail"
  WORK=$(mktemp -d /tmp/tern-bench.XXXXXX)
  RESULTS="$WORK/results.tsv"
  : >"$RESULTS"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "work dir $WORK, fd limit $(ulimit -n)"
  # Two cores leave no slack: anything else running (a build!) skews every number.
  BENCH_LOAD=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$BENCH_LOAD" 'BEGIN {exit !(l > 0.5)}'; then
    log "warning: load average $BENCH_LOAD before starting; results will be noisy"
  fi
}

bench_cleanup() {
  local rc=$?
  local p
  for p in "${BG_TIMEOUT_PIDS[@]}"; do bg_stop "$p"; done
  if [[ $KEEP -eq 1 || $rc -ne 0 ]]; then
    [[ -n "$WORK" ]] && log "kept work dir $WORK"
  else
    [[ -n "$WORK" ]] && rm -rf "$WORK"
  fi
  exit "$rc"
}

# alloc_port VAR: sets VAR to a free port at or above NEXT_PORT; never hands out the
# same port twice in a run (not a $(...) function: NEXT_PORT must persist).
alloc_port() {
  local p
  p=$(python3 "$BENCH_D/util.py" free-ports "$NEXT_PORT" 1) || die "no free port"
  NEXT_PORT=$((p + 1))
  printf -v "$1" '%s' "$p"
}

# bg_start NAME CORE CMD...: starts CMD pinned to CORE with output in $WORK/NAME.log.
# Sets BG_PID (the process itself) and BG_TPID (its `timeout` parent, used to stop it).
bg_start() {
  local name=$1 core=$2; shift 2
  timeout -k 5 "$BENCH_LIFETIME" taskset -c "$core" "$@" >"$WORK/$name.log" 2>&1 &
  BG_TPID=$!
  BG_TIMEOUT_PIDS+=("$BG_TPID")
  BG_PID=""
  local i
  # timeout forks its child right away; taskset then execs CMD in that same PID.
  for i in $(seq 1 50); do
    BG_PID=$(cat "/proc/$BG_TPID/task/$BG_TPID/children" 2>/dev/null | awk '{print $1}')
    [[ -n "$BG_PID" ]] && break
    kill -0 "$BG_TPID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$BG_PID" ]] || { tail -n 20 "$WORK/$name.log" >&2; die "$name did not start"; }
}

# bg_stop TPID: TERM the process (through timeout, which forwards it), KILL after 5 s.
bg_stop() {
  local tpid=$1 child i
  kill -0 "$tpid" 2>/dev/null || return 0
  child=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}')
  kill -TERM "$tpid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$tpid" 2>/dev/null; then
    if [[ -n "$child" ]]; then kill -KILL "$child" 2>/dev/null || true; fi
    kill -KILL "$tpid" 2>/dev/null || true
  fi
  wait "$tpid" 2>/dev/null || true
}

# is_listening PORT: a socket in LISTEN state on 127.0.0.1:PORT or *:PORT. Reads
# /proc/net/tcp rather than connecting, so servers (iperf3!) never see probe connections.
is_listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == h {f = 1} END {exit !f}' \
    /proc/net/tcp
}

# wait_listen PORT PID NAME [SECONDS]: until PORT listens; fails if PID exits first.
wait_listen() {
  local port=$1 pid=$2 name=$3 secs=${4:-10} i
  for i in $(seq 1 $((secs * 20))); do
    is_listening "$port" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$WORK/$name.log" >&2
      die "$name exited before listening on port $port"
    fi
    sleep 0.05
  done
  tail -n 20 "$WORK/$name.log" >&2
  die "$name not listening on port $port after ${secs}s"
}

# proc_tree PID: PID and all its descendants.
proc_tree() {
  local p=$1 c
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do proc_tree "$c"; done
}

# rss_kb PID: VmRSS summed over PID and its descendants (nginx: master + workers).
rss_kb() {
  local total=0 p v
  for p in $(proc_tree "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# fd_count PID: open fds of PID and its descendants.
fd_count() {
  local total=0 p
  for p in $(proc_tree "$1"); do
    total=$((total + $(ls "/proc/$p/fd" 2>/dev/null | wc -l)))
  done
  echo "$total"
}

# status_get FILE KEY: a value from an idle_conns.py status file (0 if absent).
status_get() {
  local v
  [[ -f "$1" ]] || { echo 0; return; }
  v=$(tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k {print $2}')
  echo "${v:-0}"
}

# result METRIC PROXY-KEY PROXY-LABEL VALUE UNIT BETTER NOTE
result() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
  log "result: $1 | $3 | $4 $5 ${7:+($7)}"
}

# Builds Tern unless TERN_BIN names a binary; sets TERN_BIN.
ensure_tern() {
  if [[ -n "${TERN_BIN:-}" ]]; then
    [[ -x "$TERN_BIN" ]] || die "TERN_BIN=$TERN_BIN is not an executable"
    return
  fi
  log "building //source/exe:tern (set TERN_BIN to use a prebuilt binary)"
  (cd "$ROOT" && timeout "${BENCH_BUILD_TIMEOUT:-3600}" bazel build //source/exe:tern) \
    || die "bazel build failed"
  TERN_BIN="$ROOT/bazel-bin/source/exe/tern"
  [[ -x "$TERN_BIN" ]] || die "no binary at $TERN_BIN"
}

# render_template SRC DST KEY=VALUE...: replaces each @KEY@ in SRC.
render_template() {
  local src=$1 dst=$2 kv args=()
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$src" >"$dst"
  if grep -q '@[A-Z_]*@' "$dst"; then die "unfilled placeholder in $dst"; fi
}

# machine_desc: one line naming the machine, for the docs.
machine_desc() {
  local cpu
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  echo "$(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr)"
}

# publish SUITE TITLE: prints the results table; with --write-docs also puts it, with
# the date, machine and command line, into docs/benchmarks.md.
publish() {
  local suite=$1 title=$2 table section="$WORK/section.md"
  table=$(python3 "$BENCH_D/util.py" table "$RESULTS")
  echo
  echo "$table"
  [[ $WRITE_DOCS -eq 1 ]] || return 0
  {
    echo "## $title"
    echo
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(machine_desc); load average at start $BENCH_LOAD"
    echo "- Command: \`${BENCH_ENV_DESC:+$BENCH_ENV_DESC }$BENCH_CMDLINE\`"
    [[ -n "${SUITE_NOTES:-}" ]] && printf '%s\n' "$SUITE_NOTES"
    echo
    echo "$table"
  } >"$section"
  python3 "$BENCH_D/util.py" write-docs "$ROOT/docs/benchmarks.md" "$suite" "$section"
  log "wrote section '$suite' of docs/benchmarks.md"
}

# in_only NAME: true when NAME is selected by --only (or --only is not given).
in_only() {
  [[ -z "$ONLY" ]] && return 0
  [[ ",$ONLY," == *",$1,"* ]]
}

# Shared by the suites: measuring proxies.

# proxy_desc PID: which processes were measured, for the notes column.
proxy_desc() {
  local pids n threads=0 p
  pids=$(proc_tree "$1")
  n=$(echo "$pids" | wc -l)
  for p in $pids; do threads=$((threads + $(awk '/^Threads:/ {print $2}' "/proc/$p/status"))); done
  if [[ $n -gt 1 ]]; then
    echo "RSS of master + $((n - 1)) worker(s)"
  else
    echo "RSS of 1 process, $threads thread(s)"
  fi
}

# proc_cpu_ticks PID: user+system clock ticks of PID and its children (nginx workers).
proc_cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    [[ -r /proc/$p/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# ---------------------------------------------------------------------------------------
# Shared by the HTTP suites (http, h2): origin, anomalies, Tern binary, quiet measurement.

CLK_TCK=$(getconf CLK_TCK)
BENCH_ISSUES=()                           # anomalies seen (non-2xx, errors, crashes)
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}       # max seconds to wait for other load to stop
NOISY_CORES=0.25                          # other load (cores) that makes a run noisy
NOISY_RETRIES=${BENCH_NOISY_RETRIES:-2}   # extra attempts at a noisy run
QUIET_BUDGET=${BENCH_QUIET_BUDGET:-900}   # total seconds the two above may add to a run
QUIET_END=0                               # SECONDS value when that budget runs out; a
                                          # suite sets it (quiet_budget_start) before measuring

# issue TEXT: records an anomaly; report_issues lists them all at the end of the run.
issue() { BENCH_ISSUES+=("$*"); log "warning: $*"; }
report_issues() {
  ((${#BENCH_ISSUES[@]})) || return 0
  local k
  log "anomalies seen during the run:"
  for k in "${BENCH_ISSUES[@]}"; do log "  - $k"; done
}

# proxy_label KEY: the proxy's name (with version) for the table. The tcp suite has its own.
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

# max_of "V1 V2 ...": the largest value.
max_of() { echo "$1" | tr ' ' '\n' | sed '/^$/d' | sort -g | tail -1; }

# us_per_req TICKS N: CPU microseconds per request, from clock ticks over N requests.
us_per_req() {
  awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {printf "%.2f", t / hz / (n > 0 ? n : 1) * 1e6}'
}

# alive TPID NAME: records an issue when a process the harness started has died.
alive() {
  kill -0 "$1" 2>/dev/null && return 0
  issue "$2 exited unexpectedly; log tail: $(tail -n 5 "$WORK/$2.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# start_origin: the origin, nginx with 1 worker on the load core answering a 6-byte 200
# on an HTTP/1.1 listener (ORIGIN_PORT) and an h2c one (ORIGIN_H2_PORT). Sets those and
# ORIGIN_PID, ORIGIN_TPID.
start_origin() {
  local nofile dir conf
  nofile=$(ulimit -n)
  alloc_port ORIGIN_PORT
  alloc_port ORIGIN_H2_PORT
  dir="$WORK/origin-$ORIGIN_PORT"
  mkdir -p "$dir"
  conf="$dir/nginx.conf"
  render_template "$BENCH_D/nginx-http-origin.conf.in" "$conf" \
    DIR="$dir" NOFILE="$nofile" WORKER_CONNECTIONS="$((nofile - 50))" PORT="$ORIGIN_PORT" \
    H2_PORT="$ORIGIN_H2_PORT"
  bg_start "origin-$ORIGIN_PORT" "$LOAD_CORE" nginx -p "$dir" -e "$dir/error.log" -c "$conf"
  ORIGIN_PID=$BG_PID
  ORIGIN_TPID=$BG_TPID
  wait_listen "$ORIGIN_PORT" "$ORIGIN_PID" "origin-$ORIGIN_PORT"
  wait_listen "$ORIGIN_H2_PORT" "$ORIGIN_PID" "origin-$ORIGIN_PORT"
}

# prepare_tern: ensure_tern, refuse a sanitizer build, switch TERN_BIN to a private copy
# in WORK, and set TERN_DESC (commit and build time, for the docs).
prepare_tern() {
  ensure_tern
  # bazel-bin follows the last build's configuration: after someone's --config=asan it
  # is a sanitizer build, several times slower (bazel-out/k8-opt/bin has the opt one).
  if ldd "$TERN_BIN" 2>/dev/null | grep -qE 'lib(asan|tsan|ubsan|msan)'; then
    die "TERN_BIN=$TERN_BIN is a sanitizer build; benchmark an opt build (bazel-out/k8-opt/bin/source/exe/tern)"
  fi
  # Run a private copy: a concurrent `bazel build` replaces bazel-bin mid-run.
  cp -p "$TERN_BIN" "$WORK/tern" || die "cannot copy $TERN_BIN"
  TERN_BIN="$WORK/tern"
  TERN_DESC="Tern from commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- source extensions 2>/dev/null)" ]]; then
    TERN_DESC+=" with uncommitted changes"
  fi
  TERN_DESC+=", binary built $(date -u -r "$WORK/tern" '+%Y-%m-%d %H:%M UTC')."
}

# tern_validate CONF: `tern --mode validate`; dies with Tern's message on a bad config.
tern_validate() {
  local out
  out=$("$TERN_BIN" --mode validate -c "$1" 2>&1) || die "Tern rejects $1: $out"
}

# bench_env_desc VAR...: sets BENCH_ENV_DESC to the VAR=value words of those that are
# set, for the command line shown in the docs.
bench_env_desc() {
  local v d=""
  for v in "$@"; do [[ -n "${!v:-}" ]] && d+="$v=${!v} "; done
  BENCH_ENV_DESC=${d% }
}

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

quiet_budget_start() { QUIET_END=$((SECONDS + QUIET_BUDGET)); }

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

# load_run NAME PROXY_PID SECS CMD...: runs the load generator CMD (in the foreground,
# on the load core, killed after SECS), output in $WORK/NAME.txt. Sets RUN_OUT (that
# file), RUN_PROXY_TICKS (CPU ticks of PROXY_PID and its children during the run; 0 when
# PROXY_PID is empty) and RUN_FOREIGN (cores used during the run by processes other than
# CMD, the origin and the proxy: noise).
load_run() {
  local name=$1 ppid=$2 secs=$3 p0=0 p1=0 o0 o1 w0 w1 b0 b1 t0 t1
  shift 3
  RUN_OUT="$WORK/$name.txt"
  [[ -n "$ppid" ]] && p0=$(proc_cpu_ticks "$ppid")
  o0=$(proc_cpu_ticks "$ORIGIN_PID")
  times >"$WORK/times0.txt"
  b0=$(busy_ticks)
  t0=$(date +%s.%N)
  timeout -k 5 "$secs" taskset -c "$LOAD_CORE" "$@" >"$RUN_OUT" 2>&1 || true
  t1=$(date +%s.%N)
  b1=$(busy_ticks)
  times >"$WORK/times1.txt"
  w0=$(children_ticks "$WORK/times0.txt")
  w1=$(children_ticks "$WORK/times1.txt")
  o1=$(proc_cpu_ticks "$ORIGIN_PID")
  [[ -n "$ppid" ]] && p1=$(proc_cpu_ticks "$ppid")
  RUN_PROXY_TICKS=$((p1 - p0))
  RUN_FOREIGN=$(awk -v o=$((b1 - b0 - (p1 - p0) - (o1 - o0) - (w1 - w0))) -v hz="$CLK_TCK" \
    -v t0="$t0" -v t1="$t1" 'BEGIN {f = o / hz / (t1 - t0); printf "%.2f", f < 0 ? 0 : f}')
}

# quiet_run NAME FN ARGS...: one measured run, `FN NAME-aN ARGS...` after wait_quiet. FN
# calls load_run and sets RUN_VALS (its parsed figures; empty when the run failed). A run
# during which other processes used over NOISY_CORES is repeated (at most NOISY_RETRIES
# times, while the quiet budget lasts); the least disturbed attempt's RUN_VALS, RUN_OUT,
# RUN_PROXY_TICKS and RUN_FOREIGN are kept.
quiet_run() {
  local name=$1 fn=$2 a best_f="" best_vals="" best_out="" best_ticks=0
  shift 2
  for ((a = 0; a <= NOISY_RETRIES; a++)); do
    wait_quiet
    "$fn" "$name-a$a" "$@"
    if [[ -z "$best_f" ]] || awk -v f="$RUN_FOREIGN" -v b="$best_f" 'BEGIN {exit !(f < b)}'; then
      best_f=$RUN_FOREIGN best_vals=$RUN_VALS best_out=$RUN_OUT best_ticks=$RUN_PROXY_TICKS
    fi
    [[ -z "$RUN_VALS" ]] && break
    awk -v f="$RUN_FOREIGN" -v t="$NOISY_CORES" 'BEGIN {exit !(f > t)}' || break
    ((SECONDS < QUIET_END)) || break
    ((a < NOISY_RETRIES)) && log "$name: noisy run; repeating it"
  done
  RUN_FOREIGN=$best_f RUN_VALS=$best_vals RUN_OUT=$best_out RUN_PROXY_TICKS=$best_ticks
}
