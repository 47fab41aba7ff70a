#!/usr/bin/env bash
# Makes the files of a job's cluster.security with openssl: a throwaway CA,
# a server certificate it signs for the names given, an auth token and an
# operator token.
#
#   scripts/deploy/make_secrets.sh OUT_DIR NAME...
#
# NAME is a host name or an IP address by which a client reaches a server:
# every host of cluster.servers (PS_SERVERS), plus 127.0.0.1 and localhost
# for health probes run on a server's own host. Each becomes a subject
# alternative name (IP:... for an address, DNS:... otherwise). gRPC does not
# match a wildcard over a one-label domain (`*.ps-server` does not cover
# `ps-server-0.ps-server`): name such hosts one by one; `*.ps.svc` works.
# Writes, into OUT_DIR (created; refused when it already holds them):
#   ca.pem       the CA certificate: tls_ca_file, for every process and ps_ctl
#   server.pem   the servers' certificate: tls_cert_file, servers only
#   server.key   its private key: tls_key_file, servers only
#   token        the auth token: auth_token_file, servers, workers, ps_ctl
#   admin-token  the operator token: admin_token_file, servers and ps_ctl,
#                never workers
# Files are readable by their owner only. The CA's key is deleted once it
# has signed: to add a name, make them all again. Certificates are valid for
# $PS_CERT_DAYS days (default 365). scripts/deploy/README.md shows the same
# openssl commands, and how to make a Kubernetes Secret of the files.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,24p' "$0" >&2; exit 2; }
OUT="$1"
shift
DAYS="${PS_CERT_DAYS:-365}"
SAN=""
for name in "$@"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
    SAN="$SAN${SAN:+,}IP:$name"
  else
    SAN="$SAN${SAN:+,}DNS:$name"
  fi
done
umask 077
mkdir -p "$OUT"
for f in ca.pem server.pem server.key token admin-token; do
  [ ! -e "$OUT/$f" ] || { echo "make_secrets: $OUT/$f exists; not overwriting" >&2; exit 1; }
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$OUT/ca.pem" \
  -days "$DAYS" -subj "/CN=ps job CA" 2>"$WORK/log" || { cat "$WORK/log" >&2; exit 1; }
openssl req -newkey rsa:2048 -nodes -keyout "$OUT/server.key" -out "$WORK/server.csr" \
  -subj "/CN=ps server" 2>"$WORK/log" || { cat "$WORK/log" >&2; exit 1; }
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
  "$SAN" >"$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$OUT/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -CAserial "$WORK/ca.srl" -out "$OUT/server.pem" -days "$DAYS" \
  -extfile "$WORK/ext" 2>"$WORK/log" || { cat "$WORK/log" >&2; exit 1; }
openssl rand -hex 32 >"$OUT/token"
openssl rand -hex 32 >"$OUT/admin-token"
echo "make_secrets: $OUT/{ca.pem,server.pem,server.key,token,admin-token} for $SAN"
