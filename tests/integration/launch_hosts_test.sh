#!/usr/bin/env bash
# scripts/deploy/launch_hosts.sh on two "hosts" that are network namespaces
# of this machine joined by a veth pair (each with its own address and port
# space, so both servers listen on port 5000): a 2-server, 2-worker job runs
# to the end across them with TLS, an auth token and an operator token, as a
# real cluster would (a throwaway CA and certificate for the namespaces'
# addresses, made by scripts/deploy/make_secrets.sh; the health checks find
# the CA in the config); a server that cannot start is named and the launch
# stops, with the reason, also for a job without security beyond loopback;
# a malformed hosts file is refused with file:line; workers that exit 2
# and a worker killed with SIGKILL stop the launch promptly, named; paths
# with spaces survive a remote that goes through a shell, as ssh does.
#
#   tests/integration/launch_hosts_test.sh BUILD_DIR SOURCE_DIR
#
# Needs root, iproute2 and a sandbox that allows namespaces (checked first by
# tests/testing/netns_probe.sh); exits 77 (skipped), saying why, without them.
set -uo pipefail
BUILD="$1"
ROOT="$2"
LAUNCH="$ROOT/scripts/deploy/launch_hosts.sh"
A="pslhA$$"
B="pslhB$$"
NET="10.231.$(($$ % 250))"
TMP="$(mktemp -d)"
cleanup() {
  ip netns del "$A" 2>/dev/null
  ip netns del "$B" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Skip, naming what is missing, where namespaces, veth pairs or `ip netns
# exec` do not work (no root, a container or chroot, no kernel module).
probe="$("$ROOT/tests/testing/netns_probe.sh")" || { echo "$probe"; exit 77; }
ip netns add "$A" || fail "ip netns add $A"
ip netns add "$B" || fail "ip netns add $B"
ip link add "vA$$" type veth peer name "vB$$" || fail "ip link add veth"
ip link set "vA$$" netns "$A" && ip link set "vB$$" netns "$B" || fail "veth to namespaces"
ip -n "$A" addr add "$NET.1/24" dev "vA$$" && ip -n "$B" addr add "$NET.2/24" dev "vB$$" ||
  fail "addresses"
for ns in "$A" "$B"; do
  ip -n "$ns" link set lo up
done
ip -n "$A" link set "vA$$" up && ip -n "$B" link set "vB$$" up || fail "links up"

# The job's security: TLS with a certificate for both addresses (and
# loopback), the workers' token and the operator's.
"$ROOT/scripts/deploy/make_secrets.sh" "$TMP/secrets" "$NET.1" "$NET.2" 127.0.0.1 localhost \
  >"$TMP/secrets.log" 2>&1 || { cat "$TMP/secrets.log"; fail "make_secrets.sh"; }
cat >"$TMP/job.pbtxt" <<EOF
cluster {
  servers: "unused:1"
  security {
    tls_cert_file: "$TMP/secrets/server.pem"
    tls_key_file: "$TMP/secrets/server.key"
    tls_ca_file: "$TMP/secrets/ca.pem"  # the health checks' too
    auth_token_file: "$TMP/secrets/token"
    admin_token_file: "$TMP/secrets/admin-token"
  }
}
sparse_tables { name: "emb" dim: 4 optimizer { type: ADAGRAD learning_rate: 0.05 } }
model { type: DNN sparse_table: "emb" hidden_units: 8
        dense_optimizer { type: ADAGRAD learning_rate: 0.01 } }
data {
  batch_size: 256
  generate { output_dir: "unused" seed: 3 train_rows: 20000 eval_rows: 2000
             vocab_size: 50 num_interactions: 0 }
}
training { log_every_steps: 20 }
EOF
sed '/^  security {/,/^  }/d' "$TMP/job.pbtxt" >"$TMP/plain.pbtxt"  # no security
"$BUILD/tools/ps_datagen" --config "$TMP/job.pbtxt" --data_dir "$TMP/data" \
  >"$TMP/datagen.log" 2>&1 || { cat "$TMP/datagen.log"; fail "ps_datagen"; }

# 1. The job across the two namespaces.
cat >"$TMP/hosts" <<EOF
# role where endpoint
server $A $NET.1:5000
server $B $NET.2:5000
worker $A
worker $B   # the second worker
EOF
timeout 120 "$LAUNCH" --config "$TMP/job.pbtxt" --hosts "$TMP/hosts" \
  --run-dir "$TMP/run" --shared-run-dir --remote "ip netns exec {host}" \
  --bin-dir "$BUILD" --worker-args "--data_dir $TMP/data" >"$TMP/launch.log" 2>&1
rc=$?
cat "$TMP/launch.log"
[ $rc -eq 0 ] || { tail -n 5 "$TMP"/run/*.log; fail "the job exited $rc"; }
grep -q "every server is SERVING" "$TMP/launch.log" || fail "no health wait"
grep -q '^worker 1: {"rank": 1, "examples": ' "$TMP/launch.log" ||
  fail "worker 1's result line (from its log) is not printed"
grep -q "listening on port 5000.*TLS, auth token required, admin token" "$TMP/run/server_1.log" ||
  fail "server 1 did not listen on 5000 with TLS and both tokens"
python3 - "$TMP/run" <<'PY' || fail "worker results"
import json, sys
run = sys.argv[1]
examples = 0
for j in (0, 1):
    r = json.load(open("%s/worker_%d.json" % (run, j)))
    examples += r["examples"]
eval_auc = json.load(open(run + "/worker_0.json"))["eval_auc"]
assert examples == 20000, examples
assert eval_auc > 0.6, eval_auc
print("workers trained %d examples, eval auc %.4f" % (examples, eval_auc))
PY

# 2. Server 1's port is taken by another program: it cannot listen; the
# launch names it, shows why, and stops everything it started.
ip netns exec "$B" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5000)); s.listen(1); time.sleep(60)' &
SQUATTER=$!
sleep 0.5
cat >"$TMP/hosts_clash" <<EOF
server $A $NET.1:5000
server $B $NET.2:5000
worker $A
EOF
PS_HEALTH_TIMEOUT=20 timeout 60 "$LAUNCH" --config "$TMP/job.pbtxt" --hosts "$TMP/hosts_clash" \
  --run-dir "$TMP/run_clash" --remote "ip netns exec {host}" --bin-dir "$BUILD" \
  >"$TMP/clash.log" 2>&1
rc=$?
cat "$TMP/clash.log"
[ $rc -eq 1 ] || fail "a server that cannot start: exit $rc, expected 1"
grep -q "exited; its log" "$TMP/clash.log" || fail "the failed server is not named"
grep -q "cannot listen" "$TMP/clash.log" || fail "its reason is not shown"
kill "$SQUATTER" 2>/dev/null
wait "$SQUATTER" 2>/dev/null
sleep 0.2
ip netns pids "$A" | grep -q . && fail "processes left running in $A"

# 2b. A job without security: beyond loopback, a server refuses to start
# (it does not fall back to plaintext); the launch names it and says why.
PS_HEALTH_TIMEOUT=20 timeout 60 "$LAUNCH" --config "$TMP/plain.pbtxt" --hosts "$TMP/hosts" \
  --run-dir "$TMP/run_plain" --remote "ip netns exec {host}" --bin-dir "$BUILD" \
  >"$TMP/plain.log" 2>&1
rc=$?
cat "$TMP/plain.log"
[ $rc -eq 1 ] || fail "a job without security: exit $rc, expected 1"
grep -q "refusing to listen on 0.0.0.0:5000" "$TMP/plain.log" || fail "the refusal is not shown"
sleep 0.2
ip netns pids "$A" | grep -q . && fail "processes left running in $A"

# 4. The launcher never hangs on a lost process. (a) Every worker exits 2
# (a flag they do not know): the servers would wait for workers forever;
# the launch names the workers and stops the servers after the grace.
printf 'server %s %s.1:5000\nserver %s %s.2:5000\nworker %s\nworker %s\n' \
  "$A" "$NET" "$B" "$NET" "$A" "$B" >"$TMP/hosts_plain"
start=$SECONDS
PS_FAIL_GRACE=5 timeout 90 "$LAUNCH" --config "$TMP/plain.pbtxt" --hosts "$TMP/hosts_plain" \
  --run-dir "$TMP/run_exit2" --remote "ip netns exec {host}" --bin-dir "$BUILD" \
  --server-args "--insecure" --worker-args "--data_dir $TMP/data --no_such_flag" \
  >"$TMP/exit2.log" 2>&1
rc=$?
cat "$TMP/exit2.log"
[ $rc -eq 1 ] || fail "workers that exit 2: launch exit $rc, expected 1"
[ $((SECONDS - start)) -lt 60 ] || fail "workers that exit 2: the launch took $((SECONDS - start)) s"
grep -q "worker 1 ($B) exited with 2; the last lines of its log" "$TMP/exit2.log" ||
  fail "the failed worker is not named"
grep -q "no_such_flag" "$TMP/exit2.log" || fail "the worker's log lines are not shown"
grep -q "server 0 ($NET.1:5000): still running 5s after the failure; stopped" "$TMP/exit2.log" ||
  fail "the servers left running are not named"
sleep 0.2
ip netns pids "$A" | grep -q . && fail "processes left running in $A"
ip netns pids "$B" | grep -q . && fail "processes left running in $B"

# (b) A worker killed with SIGKILL mid-run (no report, no goodbye): named
# at once; the job stops within the config's worker_timeout_ms + 10 s.
sed 's/^cluster {/cluster {\n  heartbeat_ms: 500\n  worker_timeout_ms: 3000/; s/train_rows: 20000/train_rows: 1000000/' \
  "$TMP/plain.pbtxt" >"$TMP/long.pbtxt"
"$BUILD/tools/ps_datagen" --config "$TMP/long.pbtxt" --data_dir "$TMP/data_long" \
  >"$TMP/datagen_long.log" 2>&1 || { cat "$TMP/datagen_long.log"; fail "ps_datagen (long)"; }
timeout 120 "$LAUNCH" --config "$TMP/long.pbtxt" --hosts "$TMP/hosts_plain" \
  --run-dir "$TMP/run_kill" --remote "ip netns exec {host}" --bin-dir "$BUILD" \
  --server-args "--insecure" --worker-args "--data_dir $TMP/data_long" \
  >"$TMP/kill.log" 2>&1 &
LAUNCHER=$!
victim=""
for _ in $(seq 150); do
  if grep -q "step 20 " "$TMP/run_kill/worker_1.log" 2>/dev/null; then
    victim="$(ip netns pids "$B" | xargs -r ps -o pid=,comm= -p | awk '$2 == "ps_worker" {print $1}')"
    [ -n "$victim" ] && break
  fi
  sleep 0.2
done
[ -n "$victim" ] || { cat "$TMP/kill.log"; fail "worker 1 never reached step 20"; }
kill -9 "$victim"
killed_at="$(date +%s.%N)"
wait "$LAUNCHER"
rc=$?
took="$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
cat "$TMP/kill.log"
echo "the launch ended $took s after the kill"
[ $rc -eq 1 ] || fail "a killed worker: launch exit $rc, expected 1"
awk -v t="$took" 'BEGIN { exit !(t <= 13) }' ||
  fail "a killed worker: the launch ended $took s later (limit 3 + 10)"
grep -q "worker 1 ($B) exited with 137" "$TMP/kill.log" || fail "the killed worker is not named"
sleep 0.2
ip netns pids "$A" | grep -q . && fail "processes left running in $A"
ip netns pids "$B" | grep -q . && fail "processes left running in $B"

# 3. Malformed hosts files.
printf 'server %s %s.1:5000\nserver %s %s.1:5000\nworker %s\n' "$A" "$NET" "$A" \
  "$NET" "$A" >"$TMP/hosts_twice"
"$LAUNCH" --config "$TMP/job.pbtxt" --hosts "$TMP/hosts_twice" \
  --remote "ip netns exec {host}" --bin-dir "$BUILD" >"$TMP/twice.log" 2>&1
[ $? -eq 2 ] && grep -q "hosts_twice:2: endpoint '$NET.1:5000' is listed twice" \
  "$TMP/twice.log" || { cat "$TMP/twice.log"; fail "an endpoint listed twice"; }
printf 'server %s %s.1:5000\nclient %s\n' "$A" "$NET" "$A" >"$TMP/hosts_bad"
"$LAUNCH" --config "$TMP/job.pbtxt" --hosts "$TMP/hosts_bad" \
  --remote "ip netns exec {host}" --bin-dir "$BUILD" >"$TMP/bad.log" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "a malformed hosts file: exit $rc, expected 2"
grep -q "hosts_bad:2: unknown role 'client'" "$TMP/bad.log" || { cat "$TMP/bad.log"; fail "no file:line"; }

# 4. Paths with spaces through a remote that hands its arguments to a shell,
# as ssh does (a stand-in that drops the host, joins the rest with spaces
# and runs it with sh -c): the config, the data folder (--worker-arg) and
# the run folder all hold spaces, and the job runs to the end on loopback.
SPACED="$TMP/dir with spaces"
mkdir -p "$SPACED"
cp "$TMP/plain.pbtxt" "$SPACED/job one.pbtxt"
ln -s "$TMP/data" "$SPACED/data two"
printf '#!/bin/sh\nshift\nexec sh -c "$*"\n' >"$TMP/fake-ssh"
chmod +x "$TMP/fake-ssh"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'server here 127.0.0.1:%s\nworker here\nworker here\n' "$PORT" >"$TMP/hosts_spaces"
timeout 120 "$LAUNCH" --config "$SPACED/job one.pbtxt" --hosts "$TMP/hosts_spaces" \
  --run-dir "$SPACED/run three" --shared-run-dir --remote "$TMP/fake-ssh {host}" \
  --remote-shell --bin-dir "$BUILD" --worker-arg "--data_dir=$SPACED/data two" \
  >"$TMP/spaces.log" 2>&1
rc=$?
cat "$TMP/spaces.log"
[ $rc -eq 0 ] || { tail -n 5 "$SPACED"/run\ three/*.log; fail "paths with spaces: exit $rc"; }
for j in 0 1; do
  [ -s "$SPACED/run three/worker_$j.json" ] || fail "paths with spaces: no worker_$j.json"
done
echo "PASS"
