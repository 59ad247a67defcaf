#!/bin/bash
# run-all.sh - run forwarders.sh for every peer, then print the markdown tables.
# Usage: run-all.sh [PEER...]   (default: all; OUT=results by default; other knobs
# as in forwarders.sh). frp is not part of this copy. "edge" is tpf's edge relay
# (bin/tpf-relay of the repository, built by make build).
set -euo pipefail
cd "$(dirname "$0")"
export OUT=${OUT:-results}
go build -o bin/ ./...
declare -A CMD=(
  [direct]='-'
  [haproxy]='exec fwd/haproxy.sh'
  [nginx]='exec fwd/nginx.sh'
  [socat]='exec socat TCP-LISTEN:$LPORT,bind=127.0.0.1,fork,reuseaddr,backlog=1024 TCP:$THOST:$TPORT'
  [gofwd]='exec bin/gofwd -listen 127.0.0.1:$LPORT -target $THOST:$TPORT'
  [gofwd-buf]='exec bin/gofwd -buf 32768 -listen 127.0.0.1:$LPORT -target $THOST:$TPORT'
  [edge]='exec ../../bin/tpf-relay -listen 127.0.0.1:$LPORT -target $THOST:$TPORT'

)
peers=("${@:-direct haproxy nginx socat gofwd gofwd-buf edge}")
for p in ${peers[*]}; do
  echo "== $p $(date +%T)"
  ./forwarders.sh "$p" "${CMD[$p]}"
done
./table.sh "$OUT/results.tsv"
