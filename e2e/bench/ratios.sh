#!/bin/bash
# ratios.sh ROUNDS.TSV [RESULTS.TSV] - the tables of interleaved.sh (and of forwarders.sh's
# idle-connection test, if RESULTS.TSV is given).
#
# Throughput and connection cells: the median over rounds of the peer's value divided by
# direct's value in the same round, and in brackets the median of the peer's own values.
# Latency ratios are to direct's latency, so below 1 would be faster than no forwarder.
# CPU figures are the forwarder's own (its session's user + system time).
awk -F'\t' '
FNR == 1 { file++ }
file == 1 { v[$1 "|" $2 "|" $3] = $4; k = $2 "|" $3; if (k in vals) vals[k] = vals[k] "," $4; else vals[k] = $4
  rounds[$1] = 1; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } next }
file == 2 { k = $1 "|" $2; if (k in idle) idle[k] = idle[k] "," $6; else idle[k] = $6; next }
function median(s,   a, k, i, j, t) {
  k = split(s, a, ",")
  for (i = 2; i <= k; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
function ratio(p, m,   r, s, x, d) {
  s = ""
  for (r in rounds) {
    x = v[r "|" p "|" m]; d = v[r "|direct|" m]
    if (x != "" && d + 0 > 0) s = s (s == "" ? "" : ",") x / d
  }
  return s == "" ? "" : median(s)
}
function cell(p, m,   x, r) {
  if (!((p "|" m) in vals)) return "–"
  x = median(vals[p "|" m])
  if (p == "direct") return sprintf("%g", x)
  r = ratio(p, m)
  return r == "" ? sprintf("%g", x) : sprintf("%.2f× (%g)", r, x)
}
function plain(p, m) { return ((p "|" m) in vals) ? sprintf("%g", median(vals[p "|" m])) : "–" }
function idl(p, m, unit) { return ((p "|" m) in idle) ? sprintf("%g%s", median(idle[p "|" m]), unit) : "–" }
END {
  nr = 0; for (r in rounds) nr++
  printf "%d interleaved rounds; × = median of the per-round ratios to direct (median value in brackets)\n\n", nr
  print "| peer | 1 stream, Gbit/s | 64 streams, Gbit/s | conns/s, c=1 | conns/s, c=16 | conns/s, c=128 | p99 connect, c=16, µs |"
  print "|---|---|---|---|---|---|---|"
  for (i = 1; i <= n; i++) { p = order[i]
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", p, cell(p, "tput_p1_gbps"), cell(p, "tput_p64_gbps"),
      cell(p, "conn_c1_rate_per_s"), cell(p, "conn_c16_rate_per_s"), cell(p, "conn_c128_rate_per_s"), cell(p, "conn_c16_p99_us") }
  print ""
  print "| peer | CPU s/GB, 1 / 64 streams | CPU ms per 1k conns, c=1 / 16 / 128 | p50 µs, c=1 / 16 / 128 | p99 µs, c=1 / 128 | failed conns |"
  print "|---|---|---|---|---|---|"
  for (i = 1; i <= n; i++) { p = order[i]
    e = 0; for (r in rounds) e += v[r "|" p "|conn_c1_errors"] + v[r "|" p "|conn_c16_errors"] + v[r "|" p "|conn_c128_errors"]
    printf "| %s | %s / %s | %s / %s / %s | %s / %s / %s | %s / %s | %d |\n", p,
      plain(p, "tput_p1_cpu_s_per_GB"), plain(p, "tput_p64_cpu_s_per_GB"),
      plain(p, "conn_c1_cpu_ms_per_kconn"), plain(p, "conn_c16_cpu_ms_per_kconn"), plain(p, "conn_c128_cpu_ms_per_kconn"),
      plain(p, "conn_c1_p50_us"), plain(p, "conn_c16_p50_us"), plain(p, "conn_c128_p50_us"),
      plain(p, "conn_c1_p99_us"), plain(p, "conn_c128_p99_us"), e }
  if (file < 2) exit
  print ""
  print "Idle connections (forwarders.sh, a fresh forwarder per repetition; growth per connection held):"
  print ""
  print "| peer | RSS | fds | system slab (direct: the endpoints alone) | connections held |"
  print "|---|---|---|---|---|"
  for (i = 1; i <= n; i++) { p = order[i]
    printf "| %s | %s | %s | %s | %s |\n", p, idl(p, "idle_rss_B_per_conn", " B"), idl(p, "idle_fds_per_conn", ""),
      idl(p, "idle_slab_B_per_conn", " B"), idl(p, "idle_conns_ok", "") }
}' "$@"
