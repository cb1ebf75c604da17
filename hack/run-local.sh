#!/usr/bin/env bash
# make run-local: the whole stack on this machine, loopback only, no Docker.
#
#   etcd + kube-apiserver   envtest's control plane (hack/envtest/build.sh builds it),
#                           run by hack/localcluster; data in .local/run/etcd
#   nats-server -js         bin/nats-server (make nats-server); data in .local/run/nats
#   bin/manager             the operator (make build), against both
#   config/samples          the seven default EventStreams, three EventConsumers and
#                           the seed's four EventSchemas, a KeyValue bucket and an
#                           ObjectStore, waited for until Ready
#
# Then it prints the streams, the kubeconfig and commands to try, and runs until
# Ctrl-C (SIGINT) or SIGTERM, which stop everything. The data directories are
# kept: the next run starts from them (rm -rf .local/run to start afresh).
#
# Environment: READY_TIMEOUT (default 180s) for the EventStreams to become Ready;
# NATS_PORT, NATS_MONITOR_PORT, PROBE_PORT, METRICS_PORT (preferred ports,
# defaults 4222, 8222, 8081, 8080; the next free port is used when one is taken).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

run_dir=$root/.local/run
logs=$run_dir/logs
kubeconfig=$run_dir/kubeconfig
pids_file=$run_dir/pids
ready_timeout=${READY_TIMEOUT:-180s}
export KUBECONFIG=$kubeconfig

start_time=$SECONDS
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf '    WARNING: %s\n' "$*" >&2; }
elapsed() { printf '%ss' "$((SECONDS - start_time))"; }
die() {
  printf '\nrun-local: %s\n' "$*" >&2
  exit 1
}

mkdir -p "$logs" "$run_dir/etcd" "$run_dir/nats" "$run_dir/bin"

# --- one run at a time; processes a killed run left behind ---------------------

if [ -f "$run_dir/run-local.pid" ]; then
  other=$(cat "$run_dir/run-local.pid")
  if [ "$other" != "$$" ] && kill -0 "$other" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null | grep -q 'run-local.sh'; then
    die "another run-local is running (pid $other); stop it first"
  fi
fi
echo "$$" >"$run_dir/run-local.pid"

# --- processes ------------------------------------------------------------------

declare -A pid_of=()
order=() # start order; stopped in reverse

# Each component runs in its own session (setsid), whose id is its pid;
# kube-apiserver and etcd run in process groups of their own inside
# control-plane's session.

# session_pids SID: the live processes of session SID.
session_pids() {
  ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'
}

# stop_session NAME SID: SIGTERM to the session leader; once it has exited (or
# after 30s), SIGTERM and then SIGKILL to whatever is left in its session.
stop_session() {
  local name=$1 sid=$2 i left
  kill -TERM "$sid" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$sid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$sid" 2>/dev/null && warn "$name did not stop within 30s; terminating its processes"
  left=$(session_pids "$sid")
  if [ -n "$left" ]; then
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    for i in $(seq 1 100); do
      [ -n "$(session_pids "$sid")" ] || break
      sleep 0.1
    done
    left=$(session_pids "$sid")
    # shellcheck disable=SC2086
    [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  fi
}

# pids_file lists "name session" of what the last run started. A run stopped
# with SIGKILL leaves them running, holding the data directories; stop those
# sessions that still run our binaries or use our data.
if [ -f "$pids_file" ]; then
  tac "$pids_file" | while read -r name sid; do
    ours=0
    for p in $(session_pids "$sid"); do
      if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$root/"; then ours=1; fi
    done
    if [ "$ours" = 1 ]; then
      info "stopping $name (session $sid) left over from an earlier run"
      stop_session "$name" "$sid"
    fi
  done
  rm -f "$pids_file"
fi

# start NAME CMD...: runs CMD in its own session (so a terminal's Ctrl-C reaches
# only this script, which stops everything in order), output to logs/NAME.log.
start() {
  local name=$1
  shift
  [ ! -f "$logs/$name.log" ] || mv -f "$logs/$name.log" "$logs/$name.previous.log"
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  pid_of[$name]=$!
  order+=("$name")
  echo "$name $!" >>"$pids_file"
}

# stop NAME: stops NAME's session and reaps it.
stop() {
  local name=$1 pid=${pid_of[$1]:-}
  [ -n "$pid" ] || return 0
  unset "pid_of[$name]"
  stop_session "$name" "$pid"
  wait "$pid" 2>/dev/null || true
  info "$name stopped"
}

cleaning=0
cleanup() {
  local rc=$?
  [ "$cleaning" = 0 ] || return
  cleaning=1
  trap '' INT TERM
  if [ "${#order[@]}" -gt 0 ]; then
    step "stopping ($(elapsed))"
    local i
    for ((i = ${#order[@]} - 1; i >= 0; i--)); do stop "${order[$i]}"; done
    info "data kept in ${run_dir#"$root"/}/etcd and ${run_dir#"$root"/}/nats (rm -rf .local/run to start afresh)"
  fi
  rm -f "$pids_file" "$run_dir/run-local.pid"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# alive NAME: fails, with the end of NAME's log, when it has exited.
alive() {
  local pid=${pid_of[$1]}
  if ! kill -0 "$pid" 2>/dev/null; then
    printf '\n%s exited; the end of %s:\n' "$1" "${logs#"$root"/}/$1.log" >&2
    tail -n 30 "$logs/$1.log" >&2 || true
    return 1
  fi
}

# wait_for NAME SECONDS WHAT CMD...: polls CMD until it succeeds.
wait_for() {
  local name=$1 timeout=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || die "$name failed while waiting for $what"
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${timeout}s (see ${logs#"$root"/}/$name.log)"
    sleep 0.2
  done
}

# port PREFERRED: sets picked to PREFERRED when nothing listens on
# 127.0.0.1:PREFERRED and no earlier call took it, else to the next such port.
taken=" "
picked=
port() {
  local p=$1
  while [[ "$taken" == *" $p "* ]] || (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
    p=$((p + 1))
  done
  taken+="$p "
  picked=$p
}

# --- build what is missing -------------------------------------------------------

step "envtest control plane (kube-apiserver, etcd)"
assets=$(hack/envtest/build.sh) || die "hack/envtest/build.sh failed" # progress on stderr
info "assets: $assets"

step "bin/nats-server"
make --no-print-directory nats-server 2>&1 | sed 's/^/    /' || die "make nats-server failed"
info "$(bin/nats-server --version)"

step "bin/manager (go build; cached when nothing changed)"
make --no-print-directory build 2>&1 | sed 's/^/    /' || die "make build failed: fix the build, then run again"
go build -o "$run_dir/bin/localcluster" ./hack/localcluster || die "building hack/localcluster failed"
info "built in $(elapsed)"

# --- start -----------------------------------------------------------------------

port "${NATS_PORT:-4222}" && nats_port=$picked
port "${NATS_MONITOR_PORT:-8222}" && monitor_port=$picked
port "${PROBE_PORT:-8081}" && probe_port=$picked
port "${METRICS_PORT:-8080}" && metrics_port=$picked
nats_url=nats://127.0.0.1:$nats_port

step "starting etcd + kube-apiserver and nats-server"
if [ -d "$run_dir/etcd/member" ]; then
  info "reusing etcd data in ${run_dir#"$root"/}/etcd"
fi
if [ -d "$run_dir/nats/jetstream" ]; then
  info "reusing JetStream data in ${run_dir#"$root"/}/nats"
fi
rm -f "$kubeconfig"
start control-plane "$run_dir/bin/localcluster" -assets "$assets" \
  -etcd-data-dir "$run_dir/etcd" -kubeconfig "$kubeconfig"

cat >"$run_dir/nats.conf" <<EOF
# Generated by hack/run-local.sh on each run.
server_name: run-local
listen: 127.0.0.1:$nats_port
http: 127.0.0.1:$monitor_port
# 8 MiB
max_payload: 8388608
jetstream {
  store_dir: "$run_dir/nats"
  max_memory_store: 268435456
  # 16 GiB: a stream's maxBytes is reserved up front, and the seven default
  # streams take 1 GiB each.
  max_file_store: 17179869184
}
EOF
start nats-server "$root/bin/nats-server" -js -c "$run_dir/nats.conf"

wait_for nats-server 60 "nats-server with JetStream" \
  curl -sf "http://127.0.0.1:$monitor_port/healthz?js-enabled-only=true"
info "nats-server ready on $nats_url, monitoring http://127.0.0.1:$monitor_port ($(elapsed))"
wait_for control-plane 180 "the API server" test -s "$kubeconfig"
wait_for control-plane 60 "the API server's /readyz" kubectl get --raw /readyz
info "API server ready: $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}') ($(elapsed))"

step "installing the CRDs (config/crd/bases) and the finalizer admission policy (config/admission)"
kubectl apply -f config/crd/bases | sed 's/^/    /'
kubectl apply -k config/admission | sed 's/^/    /'
kubectl wait --for=condition=Established --timeout=60s -f config/crd/bases | sed 's/^/    /'

step "starting the manager"
start manager "$root/bin/manager" --nats-url "$nats_url" \
  --health-probe-bind-address "127.0.0.1:$probe_port" \
  --metrics-bind-address "127.0.0.1:$metrics_port" --metrics-secure=false
wait_for manager 120 "the manager's /readyz" curl -sf "http://127.0.0.1:$probe_port/readyz"
info "manager ready: probes http://127.0.0.1:$probe_port, metrics http://127.0.0.1:$metrics_port/metrics ($(elapsed))"

step "applying config/samples and waiting for Ready"
# The API server can refuse the new kinds for a short while after their CRDs
# report Established ("Resource kind ... not found ... There can be a delay"),
# the admission policy's type checks too: retry for up to a minute.
for attempt in $(seq 1 30); do
  if out=$(kubectl apply -k config/samples 2>&1); then
    printf '%s\n' "$out" | sed 's/^/    /'
    break
  fi
  [ "$attempt" = 30 ] && { printf '%s\n' "$out" >&2; die "applying config/samples failed"; }
  sleep 2
done
# EventConsumers, EventSchemas, EventKeyValues and EventObjectStores too, when
# their CRDs are there and there are some.
kinds=evs
for k in evc:eventconsumers evsc:eventschemas evkv:eventkeyvalues evos:eventobjectstores; do
  if kubectl get crd "${k#*:}.events.giia.io" >/dev/null 2>&1 && [ -n "$(kubectl get "${k%%:*}" -A -o name)" ]; then
    kinds=$kinds,${k%%:*}
  fi
done
ready=1
for kind in ${kinds//,/ }; do
  kubectl wait --for=condition=Ready "$kind" --all -A --timeout="$ready_timeout" | sed 's/^/    /' || ready=0
done
alive manager || die "the manager exited"

step "the stack is up ($(elapsed))"
kubectl get "$kinds" -A | sed 's/^/    /'
if [ "$ready" = 0 ]; then
  warn "not everything became Ready within $ready_timeout; the conditions say why:"
  kubectl get "$kinds" -A -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[?(@.type=="Ready")]}{.status} {.reason}: {.message}{end}{"\n"}{end}' |
    sed 's/^/    /' >&2
fi

cat <<EOF

    kubeconfig: $kubeconfig
    NATS:       $nats_url (monitoring http://127.0.0.1:$monitor_port)
    logs:       ${logs#"$root"/}/{control-plane,nats-server,manager}.log

Try, in another terminal:

    export KUBECONFIG=$kubeconfig
    kubectl get evs -o wide
    kubectl describe evs auth-events
    tail -f ${logs#"$root"/}/manager.log
EOF
if [ -f examples/authservice/main.go ]; then
  cat <<EOF
    go run ./examples/authservice -nats-url $nats_url -create-streams=false   # publish auth events, validated against the EventSchemas
    go run ./examples/authservice -nats-url $nats_url -create-streams=false -publish-invalid-raw   # and one invalid event, bypassing the library
EOF
fi
if [ -f examples/subscriber/main.go ]; then
  cat <<EOF
    go run ./examples/subscriber -nats-url $nats_url                          # consume them; invalid data goes to DLQ_EVENTS
    kubectl get evsc                                                          # the seed's event schemas
EOF
fi
cat <<EOF
    kubectl get evs auth-events -o jsonpath='{.status.state}'                 # messages, bytes, sequences
    curl -s 'http://127.0.0.1:$monitor_port/jsz?streams=true' | jq '.account_details[].stream_detail[] | {name: .name, messages: .state.messages}'
    curl -s http://127.0.0.1:$metrics_port/metrics | grep ^eventstream_operator_
    kubectl delete evs ddmrp-events    # Retain: the JetStream stream stays; re-apply to adopt it

Ctrl-C stops everything; the next run reuses the data in ${run_dir#"$root"/}.
EOF

# Run until a signal, or until a component exits on its own.
while :; do
  wait -n "${pid_of[@]}" 2>/dev/null || true
  for name in "${order[@]}"; do
    alive "$name" || die "$name exited unexpectedly; stopping the rest"
  done
done
