#!/usr/bin/env bash
# Scale (issue 17 items 5 and 6): `vnode 0-30`, the whole pool of 31 small guests (384 MiB, 1 vCPU,
# 2 GiB disk, TCG) at once in a namespace lab of its own, once per mode: `all` (every node boots at
# once) and `--parallel N` (at most N boot at once), alternating. Per mode: wall time, nodes ready
# and failed (from --json), retries vnode reports (virt-install define attempts beyond the first,
# "libvirt not answering" notes), vnode's own peak RSS (VmHWM) and CPU seconds (its utime + stime
# from /proc, sampled every 0.2 s; with /usr/bin/time also the CPU of its children, virt-install
# and virsh), CPU per node, and qemu's RSS per guest (`ps` of the qemu-system-x86_64 processes
# whose disks are this run's, every 2 s: their peak and the value once all are ready).
#
#   benches/scale.sh                  modes `all` and `4`, 31 nodes (about an hour on 2 cores)
#   benches/scale.sh all              one mode; a number N means `--parallel N`
#   benches/scale.sh 4 all 4 all      alternating rounds, in that order
#   benches/scale.sh --smoke          3 nodes, `--parallel 2`, one round (checks the script)
#   SCALE_NODES=12 benches/scale.sh   nodes 0..11 instead of 0..30
#   SCALE_VNODE=target/debug/vnode benches/scale.sh   (a given binary; default: a release build,
#                                     made here; VNODE_BIN works too)
#
# Boots guests: run it under the machine's VM lock (`flock /run/vnode-vm.lock benches/scale.sh`).
# Exit status 0 only when every node of every round was ready and nothing was left after its
# destroy (the figures against the goals are reported, not judged). Needs root, the lab's programs
# (bash .ci/install-deps), jq, procps. Its lab `scale-PID` (all networking in the lab's
# namespaces) and site directory /var/lib/vnode/scale-PID are removed on exit, also on failure.
set -euo pipefail
NODES=${SCALE_NODES:-31}
MODES=()
while (($#)); do
  case "$1" in
    --smoke) NODES=3 MODES=(2) ;;
    all | [1-9] | [1-9][0-9]) MODES+=("$1") ;;
    *) echo "usage: $0 [--smoke] [all|N ...]   (SCALE_NODES=M for nodes 0..M-1, default 31)" >&2; exit 2 ;;
  esac
  shift
done
((${#MODES[@]})) || MODES=(all 4)
[[ $NODES =~ ^[1-9][0-9]?$ ]] || { echo "scale.sh: SCALE_NODES must be 1..99 (the default pool)" >&2; exit 2; }
cd "$(dirname "$0")/.."
. benches/lib.sh
bench_lab_needs scale.sh jq ps
bench_binary scale.sh "${SCALE_VNODE:-}"
TIME=/usr/bin/time
[[ -x $TIME ]] || { TIME=; echo "scale.sh: no /usr/bin/time (Debian package time): the CPU of vnode's children is not reported" >&2; }

LAST=$((NODES - 1))
TICK=$(getconf CLK_TCK)
bench_site scale 384 2
SAMPLER=
cleanup() {
  local rc=$?
  set +e
  [[ -z $SAMPLER ]] || { touch "$W/stop"; wait "$SAMPLER"; }
  if v lab exec -- virsh list --all --name | grep -q .; then
    v destroy "0-$LAST" >/dev/null || echo "scale.sh: destroy during cleanup failed (see above)" >&2
  fi
  v lab down || echo "scale.sh: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
now() { date +%s.%N; }

echo "scale: $NODES node(s), modes: ${MODES[*]}, in lab $LAB"
v lab up
image=$(tests/image/build.sh | tail -n 1)
v images import "$image" --name debian-12-test --osinfo debian11 >/dev/null

# "PID RSS_KIB" of every qemu of this run (its disks are below $W), one line per sample round,
# each round preceded by "# TIME". Only reads ps; never signals anything.
sample_qemus() {
  while [[ ! -e $W/stop ]]; do
    echo "# $(now)"
    ps -ww -eo pid=,rss=,args= | awk -v w="$W/" '$3 ~ /qemu-system-x86_64$/ && index($0, w) { print $1, $2 }'
    sleep 2
  done
}

# vnode's own VmHWM (KiB) and utime + stime (ticks), read from /proc while PID lives; the last
# reading is printed when it is gone (/proc vanishing mid-read is that moment, not an error).
watch_vnode() {
  local pid=$1 hwm=0 ticks=0 line f
  while [[ -d /proc/$pid ]]; do
    { while read -r line; do if [[ $line == VmHWM:* ]]; then read -r _ hwm _ <<<"$line"; fi; done </proc/"$pid"/status; } 2>/dev/null || break
    { read -r -a f </proc/"$pid"/stat; } 2>/dev/null || break
    [[ ${f[2]} == Z ]] && break
    ticks=$((f[13] + f[14]))
    sleep 0.2
  done
  echo "$hwm $ticks"
}

failed=0
declare -a SUMMARY
round=0
for mode in "${MODES[@]}"; do
  round=$((round + 1))
  # Always explicit: the default (`auto`) is itself a cap under TCG.
  if [[ $mode == all ]]; then cap=(--parallel all); what="all at once"; else cap=(--parallel "$mode"); what="--parallel $mode"; fi
  tag=$round-$mode
  rm -f "$W/stop"
  sample_qemus >"$W/qemu.$tag" &
  SAMPLER=$!
  t0=$(now)
  rc=0
  cmd=("$VNODE" --lab="$LAB" --config "$W/config.toml" --json -d debian-12-test "0-$LAST" --timeout 3600 "${cap[@]}")
  if [[ -n $TIME ]]; then
    HOME=$W/home "$TIME" -f '%e %U %S %M' -o "$W/time.$tag" "${cmd[@]}" >"$W/spawn.$tag.json" 2>"$W/spawn.$tag.log" &
  else
    HOME=$W/home "${cmd[@]}" >"$W/spawn.$tag.json" 2>"$W/spawn.$tag.log" &
  fi
  runner=$!
  vpid=$runner
  if [[ -n $TIME ]]; then
    # vnode is time's only child.
    for _ in $(seq 100); do
      vpid=$(ps -o pid= --ppid "$runner" | tr -d ' ' || true)
      [[ -n $vpid ]] && break
      sleep 0.05
    done
    [[ -n $vpid ]] || { echo "scale.sh: vnode did not start under $TIME" >&2; exit 1; }
  fi
  read -r hwm ticks < <(watch_vnode "$vpid")
  wait "$runner" || rc=$?
  t1=$(now)
  touch "$W/stop"
  wait "$SAMPLER"
  SAMPLER=
  json=$W/spawn.$tag.json
  if ! jq -e .nodes "$json" >/dev/null; then
    echo "scale.sh: round $round ($what): vnode exited $rc without a report; its stderr:" >&2
    cat "$W/spawn.$tag.log" >&2
    exit 1
  fi
  if ((rc != 0)); then
    failed=1
    echo "scale.sh: round $round ($what): vnode exited $rc; the nodes that were not ready:" >&2
    jq -r '.nodes[] | select(.outcome != "ready") | "  \(.name): \(.outcome) at \(.stage): \(.error)"' "$json" >&2
  fi
  ready=$(jq '[.nodes[] | select(.outcome == "ready")] | length' "$json")
  notready=$(jq '[.nodes[] | select(.outcome != "ready")] | length' "$json")
  retries=$(jq '[.nodes[] | (.define_attempts // 1) - 1] | add' "$json")
  libvirt_notes=$(grep -c "libvirt not answering" "$W/spawn.$tag.log" || true)
  # Ready times: first, median, last; a node's boot: from its define to ready.
  times=$(jq -r '[.nodes[] | select(.outcome == "ready") | .seconds] | sort
    | if length == 0 then "-" else "\(.[0]) \(.[length / 2 | floor]) \(.[-1])" end' "$json")
  boot=$(jq -r '[.nodes[] | select(.outcome == "ready") | .seconds - (.stages[] | select(.[0] == "defining") | .[1])]
    | if length == 0 then "-" else "\(add / length) \(max)" end' "$json")
  queued=$(jq '[.nodes[] | select(any(.stages[]; .[0] == "queued"))] | length' "$json")
  children="-"
  if [[ -n $TIME ]]; then
    # The last line: time writes "Command exited with non-zero status N" before it on failure.
    read -r _ tu ts _ < <(tail -n 1 "$W/time.$tag")
    children=$(awk -v u="$tu" -v s="$ts" -v own="$ticks" -v hz="$TICK" 'BEGIN { printf "%.1f", u + s - own / hz }')
  fi
  # Per guest: the peak of its samples, and its last sample (all nodes ready by then).
  qemu=$(awk '/^#/ { next } { if ($2 > peak[$1]) peak[$1] = $2; last[$1] = $2 }
    END { n = 0; for (p in peak) { n++; s += peak[p]; l += last[p]; if (peak[p] > m) m = peak[p] }
      if (n == 0) print "no qemu seen"
      else printf "%d guests, peak mean %.2f / max %.2f GiB, at the end mean %.2f GiB", n, s / n / 1048576, m / 1048576, l / n / 1048576 }' "$W/qemu.$tag")
  line=$(awk -v r="$round" -v what="$what" -v n="$NODES" -v t0="$t0" -v t1="$t1" -v ready="$ready" -v bad="$notready" \
    -v retries="$retries" -v notes="$libvirt_notes" -v hwm="$hwm" -v ticks="$ticks" -v hz="$TICK" \
    -v children="$children" -v times="$times" -v boot="$boot" -v queued="$queued" -v qemu="$qemu" 'BEGIN {
    split(times, t, " "); split(boot, b, " "); cpu = ticks / hz
    printf "round %d, %d nodes, %s: wall %.1f s, ready %d/%d, failed %d, define retries %d, \"libvirt not answering\" %d;", r, n, what, t1 - t0, ready, n, bad, retries, notes
    printf " ready at first %.1f / median %.1f / last %.1f s, boot (define to ready) mean %.1f / max %.1f s, %d queued;", t[1], t[2], t[3], b[1], b[2], queued
    printf " vnode peak RSS %.1f MiB, CPU %.2f s (%.0f ms/node), its children %s CPU s;", hwm / 1024, cpu, cpu / n * 1000, children
    printf " qemu RSS: %s", qemu }')
  echo "$line"
  SUMMARY+=("$line")
  v destroy "0-$LAST" >/dev/null
  left=$(v lab exec -- virsh list --all --name | grep -c . || true)
  dirs=$(find "$W/nodes" -mindepth 1 -maxdepth 1 -type d -name 'vnode*' | wc -l)
  if ((left + dirs != 0)); then
    echo "scale.sh: round $round: after destroy $left domains and $dirs node directories are left" >&2
    failed=1
  fi
done

echo "---- scale summary (vnode: $VNODE)"
printf '%s\n' "${SUMMARY[@]}"
exit "$failed"
