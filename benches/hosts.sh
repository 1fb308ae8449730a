#!/usr/bin/env bash
# Several hosts (issue 14's benchmark), in a namespace lab with 3 hypervisor hosts of its own:
# 1. the base image up to a host through libvirt's volume upload (`vnode images push`, over
#    qemu+ssh) vs `scp` of the same file to the same host: seconds, MB/s, the ratio (goal >= 0.8);
#    and `virsh vol-upload` of the same file alone: libvirt's stream without vnode's pipe and hash;
# 2. `vnode 3-8` spread over the 3 hosts vs all 6 on one host (`--host h1`): wall time, ratio.
#    Both with the same boot concurrency (`--parallel all` unless HOSTS_PARALLEL says otherwise):
#    the lab's hosts are namespaces of one machine and share its CPUs, so the default cap (one boot
#    per host CPU under TCG) would let the spread run boot 3 times as many guests at once on the
#    same cores. At equal concurrency the ratio is what spreading costs or saves in vnode's own
#    work (remote polling, uploads, logins through each host's sshd); on real hosts each has its
#    own CPUs as well.
#
#   benches/hosts.sh              3 upload rounds, then both spawns (about 10 min on 2 cores, TCG)
#   benches/hosts.sh --smoke      1 upload round, no spawn (checks the script)
#   HOSTS_VNODE=target/debug/vnode benches/hosts.sh   (a given binary; default: a release build;
#                                 VNODE_BIN works too)
#   HOSTS_SPECS=3-5 HOSTS_ROUNDS=1 benches/hosts.sh   (fewer nodes for the spawn part, fewer
#                                 upload rounds)
#
# Exit status 0 only when every step worked (the ratios are reported, not judged). Needs root,
# the lab's programs (bash .ci/install-deps), jq. Its lab `hosts-PID` and site directory
# /var/lib/vnode/hosts-PID are removed on exit.
set -euo pipefail
ROUNDS=${HOSTS_ROUNDS:-3} SPAWN=1 SPECS=${HOSTS_SPECS:-3-8} PARALLEL=${HOSTS_PARALLEL:-all}
case "${1:-}" in
  --smoke) ROUNDS=1 SPAWN=0 ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
. benches/lib.sh
bench_lab_needs hosts.sh jq
bench_binary hosts.sh "${HOSTS_VNODE:-}"

bench_site hosts 512 4
cleanup() {
  local rc=$?
  set +e
  v destroy "$SPECS" >/dev/null 2>&1
  v lab down || echo "hosts.sh: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

v lab up --hosts 3
image=$(tests/image/build.sh | tail -n 1)
v images import "$image" --name debian-12-test --osinfo debian11 >/dev/null
bytes=$(stat -c %s "$image")
digest=$(sha256sum "$image" | cut -d' ' -f1)
addr=$(jq -r '.hosts[] | select(.name == "h1") | .address' "/var/lib/vnode/lab/$LAB/state.json")
echo "hosts: image $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB, host h1 at $addr"

declare -a LINES
for ((r = 1; r <= ROUNDS; r++)); do
  # A fresh host each round: the base volume and its marker go first.
  v lab exec --host h1 -- virsh -q vol-delete --pool vnode "base-$digest.qcow2" >/dev/null 2>&1 || true
  v lab exec --host h1 -- virsh -q vol-delete --pool vnode "base-$digest.qcow2.ready" >/dev/null 2>&1 || true
  out=$(v --json images push debian-12-test --host h1)
  up=$(jq -r '.pushed[0].uploaded_bytes' <<<"$out")
  push_s=$(jq -r '.pushed[0].seconds' <<<"$out")
  [[ $up == "$bytes" ]] || { echo "hosts.sh: push uploaded $up bytes, not $bytes: $out" >&2; exit 1; }
  again=$(v --json images push debian-12-test --host h1 | jq -r '.pushed[0].uploaded_bytes')
  [[ $again == 0 ]] || { echo "hosts.sh: a second push uploaded $again bytes" >&2; exit 1; }
  t0=$(now)
  v lab exec -- scp -q -o BatchMode=yes "$image" "root@$addr:/var/lib/libvirt/vnode/scp-bench.qcow2"
  t1=$(now)
  v lab exec --host h1 -- rm -f /var/lib/libvirt/vnode/scp-bench.qcow2
  scp_s=$(secs "$t0" "$t1")
  # libvirt's own stream, without vnode: `virsh vol-upload` of the file into a scratch volume.
  lv() { v lab exec -- virsh -q -c "qemu+ssh://root@$addr/system" "$@"; }
  lv vol-create-as vnode virsh-bench.raw 0 --format raw >/dev/null
  t0=$(now)
  lv vol-upload --pool vnode virsh-bench.raw "$image"
  t1=$(now)
  lv vol-delete --pool vnode virsh-bench.raw >/dev/null
  virsh_s=$(secs "$t0" "$t1")
  line=$(awk -v p="$push_s" -v s="$scp_s" -v x="$virsh_s" -v b="$bytes" -v r="$r" 'BEGIN {
    printf "upload round %d: vnode (libvirt volume upload, hashed) %.2f s (%.0f MB/s), virsh vol-upload alone %.2f s (%.0f MB/s), scp %.2f s (%.0f MB/s); ratio vnode/scp speed %.2f, vnode/virsh %.2f",
      r, p, b / p / 1e6, x, b / x / 1e6, s, b / s / 1e6, s / p, x / p }')
  echo "$line"
  LINES+=("$line")
done

if ((SPAWN)); then
  for mode in spread one; do
    extra=(); [[ $mode == one ]] && extra=(--host h1)
    t0=$(now)
    v --json -d debian-12-test "$SPECS" --timeout 1800 --parallel "$PARALLEL" "${extra[@]}" > "$W/$mode.json" || {
      echo "hosts.sh: spawn ($mode) failed:" >&2
      jq -r '.nodes[] | select(.outcome != "ready") | "  \(.name)@\(.host): \(.outcome) at \(.stage): \(.error)"' "$W/$mode.json" >&2
      exit 1
    }
    t1=$(now)
    wall=$(secs "$t0" "$t1")
    placement=$(jq -r '[.nodes[] | .host] | group_by(.) | map("\(.[0]):\(length)") | join(" ")' "$W/$mode.json")
    slowest=$(jq -r '[.nodes[] | .seconds] | max' "$W/$mode.json")
    line="spawn $SPECS $mode ($placement, --parallel $PARALLEL): wall $wall s, slowest node ready at $slowest s"
    echo "$line"
    LINES+=("$line")
    eval "wall_$mode=$wall"
    v destroy "$SPECS" >/dev/null
  done
  line=$(awk -v a="$wall_one" -v b="$wall_spread" 'BEGIN { printf "spread over 3 hosts vs 1 host: %.2fx the speed (one host %.1f s / three %.1f s)", a / b, a, b }')
  echo "$line"
  LINES+=("$line")
fi
echo "---- hosts summary"
printf '%s\n' "${LINES[@]}"
