#!/bin/bash
# run.sh - every figure of issue 13 in one sitting, each beside its floor,
# printed as one table (make bench runs it on a throwaway PostgreSQL).
#
# Usage: e2e/benchtable/run.sh          (from anywhere; needs TPF_TEST_DATABASE_URL)
#        e2e/benchtable/run.sh table DIR  (the table again, from an earlier run's DIR)
#
#   ROUNDS=3   rounds; each runs every benchmark once, in turn, so that the
#              machine's load swings hit tpf and its floors alike; each cell
#              is the median over the rounds
#   RELAY=auto the edge relay against direct, haproxy and nginx (one round of
#              e2e/bench's interleaved.sh, the throughput and connection part
#              of its run-all.sh, per round): 1 runs it, 0 leaves it out, auto
#              runs it when haproxy, nginx, iperf3 and jq are installed (make
#              bench-relay installs them)
#   OUT=DIR    where the raw outputs go (default: a fresh directory in /tmp)
#   TPF_BENCH_AGENTS=10000  agents of the fan-out benchmarks
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3} RELAY=${RELAY:-auto}
if [ "${1:-}" = table ]; then
  OUT=$(cd "$2" && pwd) RELAY=0
  [ -s "$OUT/relay.tsv" ] && RELAY=1
  ROUNDS=$(grep -c '^BenchmarkForwards/api-get' "$OUT/api.txt" || true)
else
: "${TPF_TEST_DATABASE_URL:?set TPF_TEST_DATABASE_URL (make bench starts a throwaway PostgreSQL)}"
OUT=${OUT:-$(mktemp -d /tmp/tpf-benchtable.XXXXXX)}
OUT=$(cd "$OUT" && pwd)
if [ "$RELAY" = auto ]; then
  RELAY=0
  command -v haproxy >/dev/null && command -v nginx >/dev/null && command -v iperf3 >/dev/null && command -v jq >/dev/null && RELAY=1
fi
if [ "$RELAY" = 1 ] && [ ! -x bin/tpf-relay ]; then
  echo "bin/tpf-relay is missing: run make build" >&2; exit 1
fi

log() { echo "$(date +%T) $*" >&2; }
log "raw outputs in $OUT"
go test -c -o "$OUT/api.test" ./controller/api
go test -c -o "$OUT/hub.test" ./controller/hub
go test -c -o "$OUT/e2e.test" ./e2e

bench() {  # bench PKGDIR BINARY PATTERN BENCHTIME OUTFILE
  (cd "$1" && "$OUT/$2" -test.run '^$' -test.bench "$3" -test.benchtime "$4" -test.benchmem=false) >>"$OUT/$5" 2>>"$OUT/stderr.log" ||
    { echo "benchmark $3 failed: see $OUT/$5 and $OUT/stderr.log" >&2; exit 1; }
}
for r in $(seq "$ROUNDS"); do
  log "round $r of $ROUNDS: API"
  bench controller/api api.test '^BenchmarkForwards$' 1s api.txt
  log "round $r: resync and create→set with ${TPF_BENCH_AGENTS:-10000} agents"
  bench controller/hub hub.test '^BenchmarkFanout$' 3x hub.txt
  log "round $r: POST→rule with ${TPF_BENCH_AGENTS:-10000} agents"
  bench e2e e2e.test '^BenchmarkTimeToRuleFleet$' 1x e2e.txt
  log "round $r: controller memory per agent"
  bench controller/hub hub.test '^BenchmarkMemoryPerAgent$' 1x mem.txt
  if [ "$RELAY" = 1 ]; then
    log "round $r: relay (direct haproxy nginx edge)"
    OUT="$OUT/relay/r$r" ROUNDS=1 TESTS="tput conn" PARS="1 64" CONN_C="1 16 128" \
      e2e/bench/interleaved.sh direct haproxy nginx edge >>"$OUT/relay.log" 2>&1 ||
      { echo "relay benchmark failed: see $OUT/relay.log" >&2; exit 1; }
    awk -F'\t' -v r="$r" 'BEGIN { OFS = "\t" } { $1 = r; print }' "$OUT/relay/r$r/rounds.tsv" >>"$OUT/relay.tsv"
  fi
done
fi

relay_tsv=/dev/null
[ "$RELAY" = 1 ] && relay_tsv="$OUT/relay.tsv"
echo
echo "One sitting on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); medians of $ROUNDS interleaved rounds (a ratio is the median of the rounds' ratios); raw outputs in $OUT."
echo
awk -v relay="$RELAY" '
function add(k, v) { if (k in vals) vals[k] = vals[k] "," v; else vals[k] = v }
function median(k,   a, n, i, j, t) {
  if (!(k in vals)) return ""
  n = split(vals[k], a, ",")
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return a[int((n + 1) / 2)] + 0
}
# pratio: the median over rounds of kx'"'"'s value over ky'"'"'s in the same round
# (the i-th value of each comes from round i).
function pratio(kx, ky,   a, b, n, i, s) {
  if (!(kx in vals) || !(ky in vals)) return "–"
  n = split(vals[kx], a, ","); if (split(vals[ky], b, ",") < n) n = split(vals[ky], b, ",")
  s = ""
  for (i = 1; i <= n; i++) if (b[i] + 0 > 0) s = s (s == "" ? "" : ",") a[i] / b[i]
  if (s == "") return "–"
  vals["tmp"] = s
  return sprintf("%.2f×", median("tmp"))
}
# The relay: the median over rounds of a peer'"'"'s value over direct'"'"'s in the same round.
function rratio(p, m,   r, s, x, d) {
  s = ""
  for (r in rounds) { x = rv[r "|" p "|" m]; d = rv[r "|direct|" m]; if (x != "" && d + 0 > 0) s = s (s == "" ? "" : ",") x / d }
  if (s == "") return "–"
  vals["tmp"] = s
  return sprintf("%.2f×", median("tmp"))
}
function num(x, f) { return x == "" ? "–" : sprintf(f, x) }
# Go benchmark lines: name, iterations, then value-unit pairs.
FILENAME !~ /relay\.tsv$/ && $1 ~ /^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  for (i = 3; i < NF; i += 2) add(name "|" $(i + 1), $i)
  next
}
# The relay harness (interleaved.sh): round, peer, metric, value.
FILENAME ~ /relay\.tsv$/ { rounds[$1] = 1; rv[$1 "|" $2 "|" $3] = $4; add("relay|" $2 "|" $3, $4) }
END {
  F = "BenchmarkForwards/"
  create = median(F "api-create|ns/op"); insert = median(F "pgx-insert|ns/op"); finsert = median(F "pgx-insert-forward|ns/op")
  get = median(F "api-get|ns/op"); sel = median(F "pgx-select|ns/op")
  c16 = median(F "api-create-c16|ops/s"); i16 = median(F "pgx-insert-c16|ops/s")
  H = "BenchmarkFanout|"
  resync = median(H "resync-ms"); floor = median(H "resync-floor-ms"); old = median(H "resync-old-ms")
  cset = median(H "create-set-p99-ms"); hagents = median(H "agents")
  E = "BenchmarkTimeToRuleFleet|"
  alone = median(E "alone-ms-p99"); fleet = median(E "fleet-ms-p99"); agents = median(E "agents")
  mem = median("BenchmarkMemoryPerAgent|KiB/agent"); memagents = median("BenchmarkMemoryPerAgent|agents")

  print "| measure | tpf | floor (same sitting) | tpf ÷ floor | target |"
  print "|---|---|---|---|---|"
  if (relay == 1) {
    split("1 16 128", cs, " ")
    for (i = 1; i <= 3; i++) {
      m = "conn_c" cs[i] "_rate_per_s"
      printf "| connections/s, c=%s | %s | direct %s; haproxy %s, nginx %s | %s | ≥ %s |\n", cs[i],
        num(median("relay|edge|" m), "%.0f"), num(median("relay|direct|" m), "%.0f"), rratio("haproxy", m), rratio("nginx", m),
        rratio("edge", m), (cs[i] == 1 ? "nginx" : "haproxy")
    }
    m = "conn_c16_p99_us"
    printf "| p99 connect latency, c=16 | %s µs | direct %s µs; haproxy %s, nginx %s | %s | ≤ haproxy |\n",
      num(median("relay|edge|" m), "%.0f"), num(median("relay|direct|" m), "%.0f"), rratio("haproxy", m), rratio("nginx", m), rratio("edge", m)
    split("1 64", ps, " ")
    for (i = 1; i <= 2; i++) {
      m = "tput_p" ps[i] "_gbps"
      printf "| %s stream%s | %s Gbit/s | direct %s Gbit/s; haproxy %s, nginx %s | %s | %s |\n", ps[i], (ps[i] == 1 ? "" : "s"),
        num(median("relay|edge|" m), "%.1f"), num(median("relay|direct|" m), "%.1f"), rratio("haproxy", m), rratio("nginx", m),
        rratio("edge", m), (ps[i] == 1 ? "—" : "≥ 0.90×")
    }
  }
  printf "| API create (POST, loopback HTTP) | %s ms | bare pgx insert %s µs; a forward'"'"'s row alone into forwards %s µs | %s; %s | ≤ 4× |\n",
    num(create / 1e6, "%.2f"), num(insert / 1e3, "%.0f"), num(finsert / 1e3, "%.0f"),
    pratio(F "api-create|ns/op", F "pgx-insert|ns/op"), pratio(F "api-create|ns/op", F "pgx-insert-forward|ns/op")
  printf "| API get | %s ms | bare pgx select by id %s µs | %s | ≤ 3× |\n", num(get / 1e6, "%.2f"), num(sel / 1e3, "%.0f"),
    pratio(F "api-get|ns/op", F "pgx-select|ns/op")
  printf "| their parts: HTTP to a handler answering a constant; the service'"'"'s create and get without HTTP | %s µs; %s µs; %s µs | bare insert, bare select | %s of a select; %s, %s | — |\n",
    num(median(F "http-empty|ns/op") / 1e3, "%.0f"), num(median(F "service-create|ns/op") / 1e3, "%.0f"), num(median(F "service-get|ns/op") / 1e3, "%.0f"),
    pratio(F "http-empty|ns/op", F "pgx-select|ns/op"), pratio(F "service-create|ns/op", F "pgx-insert|ns/op"), pratio(F "service-get|ns/op", F "pgx-select|ns/op")
  printf "| creates/s, 16 clients | %s/s | bare inserts, 16 clients: %s/s | %s | — |\n", num(c16, "%.0f"), num(i16, "%.0f"),
    pratio(F "api-create-c16|ops/s", F "pgx-insert-c16|ops/s")
  printf "| resync push to %s agents | %s ms | the old per-agent path'"'"'s database work alone %s ms; this path'"'"'s queries alone %s ms | %s; %s | ≤ 1 s |\n",
    num(hagents, "%.0f"), num(resync, "%.0f"), num(old, "%.0f"), num(floor, "%.0f"), pratio(H "resync-ms", H "resync-old-ms"), pratio(H "resync-ms", H "resync-floor-ms")
  printf "| controller memory per connected agent (%s websockets) | %s KiB | — | — | ≤ 40 KiB |\n", num(memagents, "%.0f"), num(mem, "%.1f")
  printf "| POST→rule p99 with %s agents connected | %s ms | with its own agent alone %s ms | %s | ≤ 50 ms |\n", num(agents, "%.0f"), num(fleet, "%.1f"), num(alone, "%.1f"),
    pratio(E "fleet-ms-p99", E "alone-ms-p99")
  printf "| created→set p99 with %s agents (hub alone, no HTTP) | %s ms | — | — | — |\n", num(hagents, "%.0f"), num(cset, "%.1f")
  if (relay != 1) print "\n(No relay rows: RELAY=0, or haproxy, nginx, iperf3 or jq is missing; `make bench-relay` installs them.)"
}' "$OUT"/api.txt "$OUT"/hub.txt "$OUT"/e2e.txt "$OUT"/mem.txt $relay_tsv
