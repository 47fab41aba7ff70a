#!/usr/bin/env bash
# Runs one job on a list of hosts: the servers first, then (once every
# server answers its health check) the workers; waits for the workers,
# then for the servers (the coordinator stops them when the job is done),
# and prints each worker's result.
#
#   scripts/deploy/launch_hosts.sh --config JOB --hosts FILE [--run-dir DIR]
#       [--shared-run-dir] [--remote 'ssh -tt -o BatchMode=yes {host}']
#       [--remote-shell] [--bin-dir DIR] [--server-args '...']
#       [--worker-args '...'] [--ctl-args '...'] [--server-arg ARG]
#       [--worker-arg ARG] [--ctl-arg ARG]
#
# FILE has one process per line (blank lines and # comments skipped):
#   server WHERE [HOST:PORT]   # HOST:PORT defaults to WHERE:5000
#   worker WHERE
# Servers get ranks 0, 1, ... and workers 0, 1, ... in file order. WHERE is
# what --remote runs a command on: `{host}` in the template is replaced by
# it (default: ssh with a terminal, so that stopping the local ssh hangs up
# the remote process). `ip netns exec {host}` runs on network namespaces of
# this machine (tests/integration/launch_hosts_test.sh), `env` on this one.
# Every process gets the same config path, the endpoint list (PS_SERVERS),
# the worker count (PS_NUM_WORKERS) and its rank (PS_RANK); the binaries
# (--bin-dir, default this checkout's build/) and the config must be at
# those paths on every host. A server listens on 0.0.0.0:PORT unless its
# host is a loopback address. Logs come back to DIR/server_<i>.log and
# DIR/worker_<j>.log through the remote command's output; each worker's
# result is its log's "result:" line, and also DIR/worker_<j>.json with
# --shared-run-dir (DIR is the same folder on every host).
# Arguments travel as they are, spaces included: when the remote command
# hands its arguments to a shell on the other side, as ssh does (a template
# starting with `ssh`, or any template with --remote-shell), each one is
# quoted for that shell (printf %q: the remote login shell must be POSIX,
# and bash for arguments holding newlines); otherwise (`ip netns exec`,
# `env`) they are passed unchanged.
# Extra arguments: --server-args and --worker-args go to every ps_server and
# ps_worker; --ctl-args to the health checks (ps_ctl health, the only ps_ctl
# call made here; it needs no token). Those three are split at spaces;
# --server-arg, --worker-arg and --ctl-arg (repeatable) add one argument
# each, verbatim.
# Security: a server beyond loopback starts only when the job has TLS and a
# token (cluster.security: tls_cert_file, tls_key_file, tls_ca_file,
# auth_token_file, optionally admin_token_file; make the files with
# scripts/deploy/make_secrets.sh, with the servers' hosts as names), or with
# --server-args --insecure on a trusted network; a refused server is named
# with its log's reason. With TLS the health checks use the config's
# tls_ca_file unless --ctl-args has a --tls_ca_file. The files must be at
# their config paths on every host (servers: all; workers: the CA and the
# token). The environment does not travel over ssh: give a remote job its
# tokens with the config's *_token_file fields, not PS_AUTH_TOKEN.
#
# Ctrl-C (or SIGTERM) stops every process it started. It never hangs on a
# lost process: a worker that exits non-zero or vanishes, or a server that
# fails, is named at once with the last lines of its log, and whatever
# still runs PS_FAIL_GRACE seconds later (default: the config's
# cluster.worker_timeout_ms, 10 s if unset, plus 7 s: with the polling and
# the kills, the stop fits in worker_timeout_ms + 10 s) is stopped and
# named. Exit status: 0 when every worker and server finished cleanly; 1
# otherwise (each failed process is named with its exit code and the last
# error line of its log; servers exit 3 when a worker failed); 2 for bad
# usage.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CONFIG=""
HOSTS=""
RUN_DIR=""
REMOTE='ssh -tt -o BatchMode=yes {host}'
BIN_DIR="$ROOT/build"
SERVER_ARGS=()
WORKER_ARGS=()
CTL_ARGS=()
REMOTE_SHELL=""
SHARED=0
HEALTH_TIMEOUT="${PS_HEALTH_TIMEOUT:-60}"
usage() { sed -n '2,60p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --hosts) HOSTS="$2"; shift 2 ;;
    --run-dir) RUN_DIR="$2"; shift 2 ;;
    --shared-run-dir) SHARED=1; shift ;;
    --remote) REMOTE="$2"; shift 2 ;;
    --bin-dir) BIN_DIR="$2"; shift 2 ;;
    --remote-shell) REMOTE_SHELL=1; shift ;;
    --server-args) read -ra words <<<"$2"; SERVER_ARGS+=("${words[@]}"); shift 2 ;;
    --worker-args) read -ra words <<<"$2"; WORKER_ARGS+=("${words[@]}"); shift 2 ;;
    --ctl-args) read -ra words <<<"$2"; CTL_ARGS+=("${words[@]}"); shift 2 ;;
    --server-arg) SERVER_ARGS+=("$2"); shift 2 ;;
    --worker-arg) WORKER_ARGS+=("$2"); shift 2 ;;
    --ctl-arg) CTL_ARGS+=("$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "launch_hosts: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
fail_usage() { echo "launch_hosts: $*" >&2; exit 2; }
[ -n "$CONFIG" ] || fail_usage "--config is required"
[ -n "$HOSTS" ] || fail_usage "--hosts is required"
[ -f "$CONFIG" ] || fail_usage "no config file '$CONFIG'"
[ -f "$HOSTS" ] || fail_usage "no hosts file '$HOSTS'"
CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"
for b in ps_server ps_worker ps_ctl; do
  p="$BIN_DIR/server/$b"
  [ "$b" = ps_worker ] && p="$BIN_DIR/worker/$b"
  [ "$b" = ps_ctl ] && p="$BIN_DIR/tools/$b"
  [ -x "$p" ] || fail_usage "no $p (build first, or pass --bin-dir)"
done
# A job with TLS: the health checks trust the config's CA, unless --ctl-args
# names one.
if [[ " ${CTL_ARGS[*]}" != *" --tls_ca_file"* ]]; then
  CA_FILE="$(sed 's/#.*//' "$CONFIG" |
    grep -o "tls_ca_file[[:space:]]*:[[:space:]]*[\"'][^\"']*" | head -1 |
    sed "s/^[^\"']*[\"']//")"
  if [ -n "$CA_FILE" ]; then
    # A relative path is relative to the config's folder, as for the servers.
    [[ "$CA_FILE" == /* ]] || CA_FILE="$(dirname "$CONFIG")/$CA_FILE"
    CTL_ARGS=(--tls_ca_file "$CA_FILE" "${CTL_ARGS[@]}")
  fi
fi
[ -n "$RUN_DIR" ] || RUN_DIR="$ROOT/runs/hosts-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"

SERVER_WHERE=() ENDPOINTS=() WORKER_WHERE=()
line_no=0
while IFS= read -r line || [ -n "$line" ]; do
  line_no=$((line_no + 1))
  line="${line%%#*}"
  read -r role where endpoint extra <<<"$line"
  [ -n "${role:-}" ] || continue
  [ -z "${extra:-}" ] || fail_usage "$HOSTS:$line_no: too many fields in '$line'"
  [ -n "${where:-}" ] || fail_usage "$HOSTS:$line_no: '$role' needs a host"
  case "$role" in
    server)
      endpoint="${endpoint:-$where:5000}"
      [[ "$endpoint" == *:[0-9]* ]] ||
        fail_usage "$HOSTS:$line_no: endpoint '$endpoint' is not HOST:PORT"
      for e in "${ENDPOINTS[@]}"; do
        [ "$e" != "$endpoint" ] ||
          fail_usage "$HOSTS:$line_no: endpoint '$endpoint' is listed twice"
      done
      SERVER_WHERE+=("$where"); ENDPOINTS+=("$endpoint") ;;
    worker)
      [ -z "${endpoint:-}" ] || fail_usage "$HOSTS:$line_no: a worker takes no endpoint"
      WORKER_WHERE+=("$where") ;;
    *) fail_usage "$HOSTS:$line_no: unknown role '$role' (server or worker)" ;;
  esac
done <"$HOSTS"
[ ${#ENDPOINTS[@]} -gt 0 ] || fail_usage "$HOSTS: no server line"
[ ${#WORKER_WHERE[@]} -gt 0 ] || fail_usage "$HOSTS: no worker line"
SERVERS_LIST="$(IFS=,; echo "${ENDPOINTS[*]}")"
NUM_WORKERS=${#WORKER_WHERE[@]}
echo "launch_hosts: ${#ENDPOINTS[@]} server(s) $SERVERS_LIST, $NUM_WORKERS worker(s); logs in $RUN_DIR"

# Runs `ARGS...` on WHERE: on_host WHERE ARGS... The template is split at
# spaces after {host} is replaced; with a remote shell every argument is
# quoted for it. It execs the remote command, so call it only in a subshell
# (`on_host ... &` or `$(on_host ...)`): then $! is that command's pid, which
# stop_all can kill.
[ -n "$REMOTE_SHELL" ] || { [[ "$REMOTE" == ssh\ * ]] && REMOTE_SHELL=1; }
on_host() {
  local -a r args=()
  read -ra r <<<"${REMOTE//\{host\}/$1}"
  shift
  if [ -n "$REMOTE_SHELL" ]; then
    local a
    for a in "$@"; do args+=("$(printf '%q' "$a")"); done
  else
    args=("$@")
  fi
  exec "${r[@]}" "${args[@]}"
}
PIDS=()
stop_all() {
  trap - INT TERM
  echo "launch_hosts: stopping every process" >&2
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  exit 1
}
trap stop_all INT TERM

SERVER_PIDS=()
for i in "${!ENDPOINTS[@]}"; do
  on_host "${SERVER_WHERE[$i]}" env PS_SERVERS="$SERVERS_LIST" \
    PS_NUM_WORKERS="$NUM_WORKERS" PS_RANK="$i" \
    "$BIN_DIR/server/ps_server" --config "$CONFIG" "${SERVER_ARGS[@]}" \
    >"$RUN_DIR/server_$i.log" 2>&1 &
  PIDS+=($!) SERVER_PIDS+=($!)
done

# Every server healthy before any worker starts (workers would wait too,
# but a server that cannot start should be named now).
deadline=$((SECONDS + HEALTH_TIMEOUT))
for i in "${!ENDPOINTS[@]}"; do
  until health="$(on_host "${SERVER_WHERE[$i]}" "$BIN_DIR/tools/ps_ctl" \
          --servers "${ENDPOINTS[$i]}" "${CTL_ARGS[@]}" health 2>&1)"; do
    if ! kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null; then
      echo "launch_hosts: server $i (${ENDPOINTS[$i]} on ${SERVER_WHERE[$i]}) exited; its log:" >&2
      tail -5 "$RUN_DIR/server_$i.log" >&2
      stop_all
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "launch_hosts: server $i (${ENDPOINTS[$i]}) not SERVING after ${HEALTH_TIMEOUT}s;" \
        "the last health check said:" >&2
      echo "$health" | tail -3 >&2
      stop_all
    fi
    sleep 0.2
  done
done
echo "launch_hosts: every server is SERVING"

WORKER_PIDS=()
for j in "${!WORKER_WHERE[@]}"; do
  RESULT=()
  [ "$SHARED" = 0 ] || RESULT=(--result_file "$RUN_DIR/worker_$j.json")
  on_host "${WORKER_WHERE[$j]}" env PS_SERVERS="$SERVERS_LIST" \
    PS_NUM_WORKERS="$NUM_WORKERS" PS_RANK="$j" \
    "$BIN_DIR/worker/ps_worker" --config "$CONFIG" "${RESULT[@]}" "${WORKER_ARGS[@]}" \
    >"$RUN_DIR/worker_$j.log" 2>&1 &
  PIDS+=($!) WORKER_PIDS+=($!)
done

# The last error line of a log (glog E/F lines; else its last line), without
# glog's prefix.
last_error() {
  local line
  line="$(grep -a -E '^[EF][0-9]{4}' "$1" | tail -1)"
  [ -n "$line" ] || line="$(tail -1 "$1")"
  line="${line%$'\r'}"  # ssh -tt ends lines with CR LF
  echo "${line#*] }"
}
# Watches every process until all have exited, never waiting on one alone:
# a worker that exits non-zero or vanishes (OOM, kill -9, a dropped ssh),
# or a server that exits while workers still run, is named at once with the
# last lines of its log. The others then have GRACE seconds to end on their
# own (the coordinator fails the job for everyone once the worker's
# heartbeats stop: cluster.worker_timeout_ms), and are stopped after that.
# Once every worker finished cleanly, the servers stop on their own (the
# coordinator stops them).
timeout_ms="$(grep -oE '^[^#]*worker_timeout_ms: *[0-9]+' "$CONFIG" | grep -oE '[0-9]+$' | tail -1)"
GRACE="${PS_FAIL_GRACE:-$(( ${timeout_ms:-10000} / 1000 + 7 ))}"
declare -A EXITED=()  # pid -> exit code
FAILED=()
fail_at=""
workers_left=${#WORKER_PIDS[@]}
report() {  # NAME LOG RC
  echo "launch_hosts: $1 exited with $3; the last lines of its log:" >&2
  tail -5 "$2" | sed 's/\r$//; s/^/    /' >&2
}
while [ ${#EXITED[@]} -lt ${#PIDS[@]} ]; do
  for j in "${!WORKER_PIDS[@]}"; do
    pid="${WORKER_PIDS[$j]}"
    [ -n "${EXITED[$pid]:-}" ] && continue
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid"
    rc=$?
    EXITED[$pid]=$rc
    workers_left=$((workers_left - 1))
    if [ "$rc" -ne 0 ]; then
      FAILED+=("worker $j (${WORKER_WHERE[$j]}, exit $rc): $(last_error "$RUN_DIR/worker_$j.log")")
      report "worker $j (${WORKER_WHERE[$j]})" "$RUN_DIR/worker_$j.log" "$rc"
      [ -n "$fail_at" ] || fail_at=$SECONDS
    fi
  done
  for i in "${!SERVER_PIDS[@]}"; do
    pid="${SERVER_PIDS[$i]}"
    [ -n "${EXITED[$pid]:-}" ] && continue
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid"
    rc=$?
    EXITED[$pid]=$rc
    if [ "$rc" -ne 0 ]; then
      FAILED+=("server $i (${ENDPOINTS[$i]}, exit $rc): $(last_error "$RUN_DIR/server_$i.log")")
      report "server $i (${ENDPOINTS[$i]} on ${SERVER_WHERE[$i]})" "$RUN_DIR/server_$i.log" "$rc"
    fi
    # A server stops cleanly (0) only once the job is done, which can be
    # a moment before the last worker process has exited: that is no
    # failure, but the workers still running then have GRACE to end too.
    [ -n "$fail_at" ] || [ "$workers_left" -eq 0 ] || fail_at=$SECONDS
  done
  [ ${#EXITED[@]} -lt ${#PIDS[@]} ] || break
  # After a clean end of every worker the servers stop on their own (a
  # final checkpoint may take minutes: ps_server --stop_grace_sec).
  if [ -n "$fail_at" ] && [ $((SECONDS - fail_at)) -ge "$GRACE" ] &&
    { [ ${#FAILED[@]} -gt 0 ] || [ "$workers_left" -gt 0 ]; }; then
    after="the failure"
    [ ${#FAILED[@]} -gt 0 ] || after="the job's end"
    for j in "${!WORKER_PIDS[@]}"; do
      [ -n "${EXITED[${WORKER_PIDS[$j]}]:-}" ] ||
        FAILED+=("worker $j (${WORKER_WHERE[$j]}): still running ${GRACE}s after $after; stopped")
    done
    for i in "${!SERVER_PIDS[@]}"; do
      [ -n "${EXITED[${SERVER_PIDS[$i]}]:-}" ] ||
        FAILED+=("server $i (${ENDPOINTS[$i]}): still running ${GRACE}s after $after; stopped")
    done
    echo "launch_hosts: stopping what still runs after ${GRACE}s" >&2
    for p in "${PIDS[@]}"; do [ -n "${EXITED[$p]:-}" ] || kill "$p" 2>/dev/null; done
    sleep 1
    for p in "${PIDS[@]}"; do [ -n "${EXITED[$p]:-}" ] || kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    break
  fi
  sleep 0.5
done
for j in "${!WORKER_WHERE[@]}"; do
  result="$(grep -a -m1 -o 'result: {.*}' "$RUN_DIR/worker_$j.log" | cut -c9-)"
  [ -z "$result" ] || echo "worker $j: $result"
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "launch_hosts: FAILED (logs in $RUN_DIR):" >&2
  for f in "${FAILED[@]}"; do echo "  $f" >&2; done
  exit 1
fi
echo "launch_hosts: job done; logs in $RUN_DIR"
