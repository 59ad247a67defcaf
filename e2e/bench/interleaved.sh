#!/bin/bash
# interleaved.sh - throughput and connection setup of several forwarders, interleaved.
#
# Usage: interleaved.sh PEER...   (names from peers.sh; "direct" is the path without a
#        forwarder and should be among them: every ratio is to direct in the same round)
#
# All the forwarders run at once, each on its own port (idle while another is measured).
# A round measures one figure (say, conns/s at c=16) for every peer back to back, in a
# rotating order (reversed every other round), and the next figure after that. So a
# change in the machine's load hits all of them alike, within seconds, instead of
# whichever peer happened to run during it; on a shared 2-core machine that is what
# makes the ratios repeatable. Each round's ratio is to direct in the same round.
#
# Env knobs: ROUNDS=7 PARS="1 64" DUR=3 CONN_C="1 16 128" CONN_N=2000 TESTS="tput conn"
# OUT=results; IPERF_PORT=25201 ECHO_PORT=25007 BASE_PORT=25100 (forwarders on the ports
# above it; another sitting on the same machine needs other ports). Appends "round peer metric value" rows to $OUT/rounds.tsv; ratios.sh
# prints the table (medians over rounds of each round's ratio to direct).
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-7} PARS=${PARS:-"1 64"} DUR=${DUR:-3} CONN_C=${CONN_C:-"1 16 128"}
CONN_N=${CONN_N:-2000} TESTS=${TESTS:-"tput conn"} OUT=${OUT:-results}
IPERF_PORT=${IPERF_PORT:-25201} ECHO_PORT=${ECHO_PORT:-25007} BASE_PORT=${BASE_PORT:-25100}
SPECS=("$@") PEERS=()
[ ${#SPECS[@]} -gt 0 ] || { echo "usage: interleaved.sh PEER..." >&2; exit 2; }
RUNDIR=$(mktemp -d /tmp/fwdbench.XXXXXX)
mkdir -p "$OUT"
[ -x bin/connrate ] && [ -x bin/echo ] || go build -o bin/ ./...
source ./peers.sh
declare -A SPEC
for s in "${SPECS[@]}"; do n=$(peer_name "$s"); PEERS+=("$n"); SPEC[$n]=$s; peer_cmd "$s" >/dev/null; done

SESSIONS=()
launch() {    # launch LOG CMD... : start in a new session, sets LAUNCHED
  setsid "${@:2}" >>"$1" 2>&1 </dev/null &
  LAUNCHED=$!
  SESSIONS+=("$LAUNCHED")
}
stop() {      # stop SID: TERM the session, KILL what is left after 5 s
  local sid=$1 i
  kill -TERM -- "-$sid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 -- "-$sid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$sid" 2>/dev/null || true
  wait "$sid" 2>/dev/null || true
}
cleanup() { local s; for s in "${SESSIONS[@]}"; do stop "$s"; done; rm -rf "$RUNDIR"; }
trap cleanup EXIT
wait_listen() {
  local i
  for i in $(seq 100); do
    [ -n "$(ss -Hltn "( sport = :$1 )")" ] && return 0
    sleep 0.1
  done
  echo "nothing listening on $1" >&2; return 1
}
cpu_ticks() {    # user+sys ticks of session $1, including reaped children
  local f=() p
  for p in $(ps -o pid= --sid "$1" 2>/dev/null); do f+=("/proc/$p/stat"); done
  [ ${#f[@]} -gt 0 ] || { echo 0; return; }
  cat "${f[@]}" 2>/dev/null | sed 's/.*) //' | awk '{t+=$12+$13+$14+$15} END{print t+0}'
}

declare -A PORT SID
free() {        # free PORT...: fail if something listens there already
  local p
  for p in "$@"; do
    if [ -n "$(ss -Hltn "( sport = :$p )")" ]; then
      echo "port $p is in use (another sitting? set IPERF_PORT, ECHO_PORT, BASE_PORT)" >&2; exit 1
    fi
  done
}
free $IPERF_PORT $ECHO_PORT $(seq $((BASE_PORT + 1)) $((BASE_PORT + ${#PEERS[@]})))
start_all() {   # start_all TARGET_PORT: every forwarder in front of it
  local i=0 p
  for p in "${PEERS[@]}"; do
    if [ "$p" = direct ]; then PORT[$p]=$1; SID[$p]=""; continue; fi
    i=$((i + 1))
    PORT[$p]=$((BASE_PORT + i))
    launch "$OUT/$p.log" env LPORT="${PORT[$p]}" THOST=127.0.0.1 TPORT="$1" RUNDIR="$RUNDIR" bash -c "$(peer_cmd "${SPEC[$p]}")"
    SID[$p]=$LAUNCHED
  done
  for p in "${PEERS[@]}"; do wait_listen "${PORT[$p]}"; done
}
stop_all() {
  local p
  for p in "${PEERS[@]}"; do [ -n "${SID[$p]}" ] && stop "${SID[$p]}"; SID[$p]=""; done
}
order() {       # order ROUND: the peers rotated by ROUND, reversed in even rounds
  local r=$1 n=${#PEERS[@]} i o=()
  for i in $(seq 0 $((n - 1))); do o+=("${PEERS[$(((i + r) % n))]}"); done
  if [ $((r % 2)) -eq 0 ]; then for ((i = n - 1; i >= 0; i--)); do echo "${o[i]}"; done
  else printf '%s\n' "${o[@]}"; fi
}
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$OUT/rounds.tsv"; }
ticks() { if [ -n "${SID[$1]}" ]; then cpu_ticks "${SID[$1]}"; else echo 0; fi; }

# --- throughput ---------------------------------------------------------------
if [[ " $TESTS " == *" tput "* ]]; then
  launch "$OUT/iperf3.log" iperf3 -s -B 127.0.0.1 -p $IPERF_PORT
  wait_listen $IPERF_PORT
  start_all $IPERF_PORT
  for r in $(seq "$ROUNDS"); do
    for par in $PARS; do
      for p in $(order "$r"); do
        t0=$(ticks "$p")
        j=$(timeout $((DUR + 30)) iperf3 -c 127.0.0.1 -p "${PORT[$p]}" -t "$DUR" -P "$par" -J || true)
        g=$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e9 | .*100 | round / 100' <<<"$j" 2>/dev/null || echo 0)
        b=$(jq -r '.end.sum_received.bytes // 0' <<<"$j" 2>/dev/null || echo 0)
        rec "$r" "$p" "tput_p${par}_gbps" "$g"
        [ -n "${SID[$p]}" ] && rec "$r" "$p" "tput_p${par}_cpu_s_per_GB" \
          "$(awk -v t=$(($(ticks "$p") - t0)) -v b="$b" 'BEGIN{printf "%.3f", b ? t / 100 / (b / 1e9) : 0}')"
        printf 'r%s %-10s %3s streams %6s Gbit/s\n' "$r" "$p" "$par" "$g"
        sleep 0.5
      done
    done
  done
  stop_all
fi

# --- connection setup -----------------------------------------------------------
if [[ " $TESTS " == *" conn "* ]]; then
  launch "$OUT/echo.log" bin/echo -addr 127.0.0.1:$ECHO_PORT
  wait_listen $ECHO_PORT
  start_all $ECHO_PORT
  for p in "${PEERS[@]}"; do bin/connrate -addr 127.0.0.1:"${PORT[$p]}" -n 500 -c 8 >/dev/null; done  # warm-up
  for r in $(seq "$ROUNDS"); do
    for c in $CONN_C; do
      for p in $(order "$r"); do
        t0=$(ticks "$p")
        line=$(timeout 120 bin/connrate -addr 127.0.0.1:"${PORT[$p]}" -n "$CONN_N" -c "$c" -timeout 60s)
        ok=0 err=0 rate=0 p50_us=0 p99_us=0
        eval "$(tr ' ' '\n' <<<"$line" | grep -E '^(ok|err|rate|p50_us|p99_us)=')"
        rec "$r" "$p" "conn_c${c}_rate_per_s" "$rate"
        rec "$r" "$p" "conn_c${c}_p50_us" "$p50_us"
        rec "$r" "$p" "conn_c${c}_p99_us" "$p99_us"
        rec "$r" "$p" "conn_c${c}_errors" "$err"
        [ -n "${SID[$p]}" ] && rec "$r" "$p" "conn_c${c}_cpu_ms_per_kconn" \
          "$(awk -v t=$(($(ticks "$p") - t0)) -v n="$ok" 'BEGIN{printf "%.1f", n ? t * 10 / (n / 1000) : 0}')"
        printf 'r%s %-10s c=%-3s %s\n' "$r" "$p" "$c" "$line"
        sleep 0.2
      done
    done
  done
  stop_all
fi
