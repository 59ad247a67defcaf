#!/bin/bash
# run-all.sh - the forwarder comparison in one sitting, then its tables.
# Usage: run-all.sh [PEER...]   (default: direct haproxy nginx socat gofwd gofwd-buf edge;
# names as in peers.sh, NAME=PATH for another tpf-relay build). "edge" is tpf's edge relay
# (bin/tpf-relay of the repository, built by make build).
#
# 1. interleaved.sh: throughput (1 and 64 streams) and connection setup (c=1, 16, 128),
#    all peers running at once and measured in turn, ROUNDS rounds (default 7);
# 2. forwarders.sh with TESTS=idle: memory and descriptors per idle connection, a fresh
#    forwarder for each of 3 repetitions;
# 3. ratios.sh: the tables, every figure as a ratio to direct from the same sitting.
# OUT=results/DATE by default; other knobs as in interleaved.sh and forwarders.sh.
set -euo pipefail
cd "$(dirname "$0")"
export OUT=${OUT:-results/$(date +%Y%m%d-%H%M%S)}
go build -o bin/ ./...
source ./peers.sh
peers=(${@:-direct haproxy nginx socat gofwd gofwd-buf edge})
echo "== interleaved: ${peers[*]} $(date +%T)"
./interleaved.sh "${peers[@]}"
for p in "${peers[@]}"; do
  echo "== idle connections: $p $(date +%T)"
  TESTS=idle ./forwarders.sh "$(peer_name "$p")" "$(peer_cmd "$p")"
done
echo
./ratios.sh "$OUT/rounds.tsv" "$OUT/results.tsv" | tee "$OUT/table.md"
