#!/usr/bin/env bash
# plot-dashboard.sh [RANGE_DIR] [OUT_DIR]
#
# Draws the Grafana dashboard's main panels as PNG pictures (docs/img) from
# a real run's Prometheus data. Grafana itself cannot be installed here, so
# these are the panel queries' results plotted with gnuplot (make gnuplot),
# not screenshots.
#
# Without RANGE_DIR it runs the end-to-end test with
# E2E_PROMETHEUS_RANGE_DIR (its step 07e writes each panel query's
# query_range result there as <panel>.<refId>.tsv) and E2E_PROMETHEUS_TRAFFIC
# (events published while Prometheus scrapes), then plots.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

range=${1:-}
out=${2:-docs/img}
if [ -z "$range" ]; then
  range=$(mktemp -d)
  make build nats-server helm prometheus envtest build-installer gnuplot
  KUBEBUILDER_ASSETS="$(hack/envtest/build.sh)" E2E_PROMETHEUS_RANGE_DIR="$range" \
    E2E_PROMETHEUS_TRAFFIC="${E2E_PROMETHEUS_TRAFFIC:-90s}" \
    go test -tags e2e ./test/e2e/ -count=1 -timeout 20m \
    || echo "the end-to-end test failed (a later step may not expect the extra traffic); plotting what step 07e wrote" >&2
fi
gnuplot=${GNUPLOT:-bin/gnuplot}
mkdir -p "$out"

# panel slug → title and y-axis label.
panels=(
  "stream-messages|Stream messages|messages"
  "stream-bytes|Stream bytes|bytes"
  "consumer-lag-pending|Consumer lag: pending|messages"
  "consumer-lag-ack-pending|Consumer lag: ack pending|messages"
  "redeliveries|Redeliveries|messages"
  "dlq-inflow|DLQ inflow|dead letters/s"
  "resources-by-ready-reason|Resources by Ready reason|resources"
  "reconcile-errors|Reconcile errors and outcomes|reconciles/s"
  "jetstream-request-latency|JetStream request latency|seconds"
)
for p in "${panels[@]}"; do
  IFS='|' read -r slug title ylabel <<<"$p"
  files=("$range/$slug".*.tsv)
  [ -e "${files[0]}" ] || { echo "no data for panel $slug in $range" >&2; exit 1; }
  plot=""
  for f in "${files[@]}"; do
    # Blocks with data (a query with no series has none).
    n=$(grep -c '^seconds' "$f" || true)
    for ((i = 0; i < n; i++)); do
      plot+="${plot:+, }'$f' index $i using 1:2 with lines lw 2 title columnheader(2)"
    done
  done
  [ -n "$plot" ] || { echo "panel $slug: no series" >&2; exit 1; }
  "$gnuplot" <<GP
set terminal pngcairo size 900,420 font "sans,9"
set output "$out/$slug.png"
set title "$title (panel query results, Prometheus, e2e run)"
set xlabel "seconds"
set ylabel "$ylabel"
set key outside right top
set key noenhanced
set title noenhanced
set grid
set datafile separator "\t"
plot $plot
GP
  echo "wrote $out/$slug.png"
done
