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
