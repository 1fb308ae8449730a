#!/usr/bin/env bash
# Soak: ROUNDS rounds of "spawn NODES nodes, check each by ssh, destroy them" in a namespace lab of
# its own, printing per round: nodes ready / total, nodes that answered `vnode ssh N -- true`,
# the round's wall time, and what was left after the destroy (domains, node directories,
# known_hosts lines), which must all be 0.
#
#   benches/soak.sh              5 rounds of 6 nodes (issue 12's benchmark; about 5 min a round
#                                on 2 cores under TCG)
#   benches/soak.sh --smoke      1 round of 1 node (SOAK_ROUNDS=1 SOAK_NODES=1), to check the script
#   SOAK_ROUNDS=N SOAK_NODES=M benches/soak.sh
#   SOAK_VNODE=target/debug/vnode benches/soak.sh --smoke    (a given binary; default: a release
#                                build, made here)
#
# Exit status: 0 only when every node of every round was ready, answered ssh, and no round left
# anything behind. Every step's errors are printed; nothing is silenced.
# Needs: root, a release build (built here), the lab's programs (bash .ci/install-deps), jq. It
# makes its lab `soak-PID` (all networking in the lab's namespaces), a site directory below
# /var/lib/vnode/soak-PID (the qemu user must reach it), and removes both on exit.
set -euo pipefail
ROUNDS=${SOAK_ROUNDS:-5}
NODES=${SOAK_NODES:-6}
case "${1:-}" in
  --smoke) ROUNDS=1 NODES=1 ;;
  "") ;;
  *) echo "usage: $0 [--smoke]   (or SOAK_ROUNDS=N SOAK_NODES=M $0)" >&2; exit 2 ;;
esac
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $NODES =~ ^[1-9][0-9]?$ ]] || {
  echo "soak.sh: SOAK_ROUNDS must be a positive number and SOAK_NODES 1..99" >&2
  exit 2
}
cd "$(dirname "$0")/.."
. benches/lib.sh
bench_lab_needs soak.sh jq
bench_binary soak.sh "${SOAK_VNODE:-}"

FIRST=10 # node numbers FIRST .. FIRST+NODES-1 of the default pool
LAST=$((FIRST + NODES - 1))
bench_site soak 512 4

cleanup() {
  local rc=$?
  set +e
  # Whatever a failed round left; the lab's teardown stops its libvirtd and guests in any case.
  if [[ -n $(v lab exec -- virsh list --all --name 2>/dev/null | grep .) ]]; then
    v destroy "$FIRST-$LAST" || echo "soak.sh: destroy during cleanup failed (see above)" >&2
  fi
  v lab down || echo "soak.sh: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT

echo "soak: $ROUNDS round(s) of $NODES node(s) in lab $LAB"
v lab up
image=$(tests/image/build.sh | tail -n 1)
v images import "$image" --name debian-12-test --osinfo debian11

leftovers() {
  local domains dirs keys
  domains=$(v lab exec -- virsh list --all --name | grep -c . || true)
  dirs=$(find "$W/nodes" -mindepth 1 -maxdepth 1 -type d \( -name 'vnode*' -o -name '.vnode*' \) | wc -l)
  keys=0
  if [[ -f $W/nodes/known_hosts ]]; then keys=$(grep -c . "$W/nodes/known_hosts" || true); fi
  echo "$domains $dirs $keys"
}

failed=0
declare -a SUMMARY
for ((r = 1; r <= ROUNDS; r++)); do
  t0=$(date +%s.%N)
  rc=0
  v --json -d debian-12-test "$FIRST-$LAST" --timeout 1200 > "$W/round.json" || rc=$?
  ready=$(jq '[.nodes[] | select(.outcome == "ready")] | length' "$W/round.json")
  if ((rc != 0)); then
    echo "round $r: spawn exited $rc; the nodes that were not ready:" >&2
    jq -r '.nodes[] | select(.outcome != "ready") | "  \(.name): \(.outcome) at \(.stage): \(.error)"' "$W/round.json" >&2
  fi
  answered=0
  for ((n = FIRST; n <= LAST; n++)); do
    if v ssh "$n" -- true; then
      answered=$((answered + 1))
    else
      echo "round $r: vnode ssh $n -- true failed (see above)" >&2
    fi
  done
  v destroy "$FIRST-$LAST"
  t1=$(date +%s.%N)
  read -r domains dirs keys < <(leftovers)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  line="round $r/$ROUNDS: ready $ready/$NODES, ssh $answered/$NODES, wall ${wall} s, leftovers after destroy: $domains domains, $dirs node dirs, $keys known_hosts lines"
  echo "$line"
  SUMMARY+=("$line")
  if ((ready != NODES || answered != NODES || domains + dirs + keys != 0)); then failed=1; fi
done

echo "---- soak summary ($ROUNDS x $NODES)"
printf '%s\n' "${SUMMARY[@]}"
exit "$failed"
