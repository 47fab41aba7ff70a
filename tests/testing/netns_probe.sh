#!/usr/bin/env bash
# Can this machine run the namespace tests? Tries, on throw-away names, all
# that they do: two network namespaces, a veth pair between them, an address
# on each end, links up, `ip netns exec` (which remounts / and /sys, refused
# in many containers and chroots: "mount --make-rslave / failed"), and with
# --bridge a bridge inside a namespace. Cleans up after itself.
#
#   tests/testing/netns_probe.sh [--bridge]
#
# Exit 0 when everything worked; 77 (ctest's skip code here) with one line
# "SKIP: <what failed>: <what ip said>" when something did not.
set -u
BRIDGE=0
[ "${1:-}" = "--bridge" ] && BRIDGE=1
A="psprA$$"
B="psprB$$"
LINK="ppr$(($$ % 100000))"
ERR="$(mktemp)"
cleanup() {
  ip netns del "$A" 2>/dev/null
  ip netns del "$B" 2>/dev/null
  ip link del "${LINK}a" 2>/dev/null
  rm -f "$ERR"
}
trap cleanup EXIT
skip() {
  echo "SKIP: $1: $(tr '\n' ' ' <"$ERR" | cut -c1-200)"
  exit 77
}
try() {  # try WHAT COMMAND...
  local what="$1"
  shift
  "$@" >/dev/null 2>"$ERR" || skip "$what"
}
command -v ip >/dev/null || { echo "SKIP: no 'ip' command (iproute2)"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
try "cannot create network namespaces" ip netns add "$A"
try "cannot create network namespaces" ip netns add "$B"
try "cannot create veth pairs" ip link add "${LINK}a" type veth peer name "${LINK}b"
try "cannot move a veth end into a namespace" ip link set "${LINK}a" netns "$A"
try "cannot move a veth end into a namespace" ip link set "${LINK}b" netns "$B"
try "cannot set addresses in a namespace" ip -n "$A" addr add 10.233.0.1/24 dev "${LINK}a"
try "cannot set addresses in a namespace" ip -n "$B" addr add 10.233.0.2/24 dev "${LINK}b"
try "cannot bring links up in a namespace" ip -n "$A" link set "${LINK}a" up
try "cannot bring links up in a namespace" ip -n "$A" link set lo up
try "'ip netns exec' cannot enter a namespace" ip netns exec "$A" true
if [ $BRIDGE -eq 1 ]; then
  try "cannot create bridges" ip -n "$B" link add br0 type bridge
fi
exit 0
