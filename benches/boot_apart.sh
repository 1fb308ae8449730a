#!/usr/bin/env bash
# One boot of the test image taken apart (issue 17 item 3): what stands between the domain's start
# and sshd, in a namespace lab of its own. One node (512 MiB, 1 vCPU, TCG) with `--wait
# cloud-init`, then, over `vnode ssh`, from the guest: `systemd-analyze` (kernel, userspace),
# `systemd-analyze critical-chain ssh.service` (the units sshd waited for, one after another),
# `systemd-analyze blame`, `cloud-init analyze show` (each cloud-init module's time). Prints vnode's
# two moments, the guest's own figures, and one line per unit on sshd's critical chain with its
# start and its duration, then a summary: how much of the time to sshd's start was cloud-init
# (its stages on the chain) and how much a module vnode's seed asks for (growpart, resizefs,
# users-groups, ssh, write_files) in the network stage.
#
#   benches/boot_apart.sh                one boot of the networkd variant
#   benches/boot_apart.sh nm             another variant of tests/image (networkd, nm, netplan)
#   benches/boot_apart.sh --smoke        the same one boot (it is its own smoke)
#   APART_VNODE=target/debug/vnode benches/boot_apart.sh   (a given binary; default: a release
#                                        build, made here; VNODE_BIN works too)
#
# Boots a guest: run it under the machine's VM lock (`flock /run/vnode-vm.lock ...`); a machine
# busy with anything else stretches every figure. Exit status 0 only when the node was ready and
# every guest command answered. Needs root, the lab's programs (bash .ci/install-deps), jq. Its lab
# `apart-PID` and site directory /var/lib/vnode/apart-PID are removed on exit, also on failure.
set -euo pipefail
VARIANT=networkd
while (($#)); do
  case $1 in
    --smoke) ;;
    networkd | nm | netplan) VARIANT=$1 ;;
    *) echo "usage: $0 [--smoke] [networkd|nm|netplan]" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
. benches/lib.sh
bench_lab_needs boot_apart.sh jq
bench_binary boot_apart.sh "${APART_VNODE:-}"
bench_site apart 512 3
cleanup() {
  local rc=$?
  set +e
  v -q destroy 10 >/dev/null 2>&1
  v lab down || echo "boot_apart.sh: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

image=$(tests/image/build.sh "$VARIANT" | tail -n 1)
v lab up >/dev/null
v images import "$image" --name apart --sha256 "$(sha256sum "$image" | cut -d' ' -f1)" >/dev/null
t0=$(date +%s.%N)
if ! v --json -d apart 10 --wait cloud-init > "$W/spawn.json" 2> "$W/spawn.err"; then
  cat "$W/spawn.err" "$W/spawn.json" >&2
  echo "boot_apart.sh: the node did not get ready (above)" >&2
  exit 1
fi
wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
read -r ssh_s ci_s < <(jq -r '.nodes[0] | "\(.ssh_seconds) \(.cloud_init_seconds)"' "$W/spawn.json")

# A guest command's output; a failing command fails the script with its error.
guest() {
  local out
  if ! out=$(v ssh 10 -- "$1" 2> "$W/ssh.err"); then
    cat "$W/ssh.err" >&2
    echo "boot_apart.sh: in the guest, '$1' failed (above)" >&2
    exit 1
  fi
  printf '%s\n' "$out"
}
# systemd's durations ("1min 3.337s", "812ms", "5.4s") in seconds.
to_s() {
  awk '{ t = 0; for (i = 1; i <= NF; i++) { v = $i
    if (v ~ /min$/) t += substr(v, 1, length(v) - 3) * 60
    else if (v ~ /ms$/) t += substr(v, 1, length(v) - 2) / 1000
    else if (v ~ /s$/) t += substr(v, 1, length(v) - 1) }
    printf "%.1f", t }' <<< "$1"
}

analyze=$(guest 'systemd-analyze | head -n 1')
chain=$(guest 'systemd-analyze critical-chain --no-pager ssh.service')
blame=$(guest 'systemd-analyze blame --no-pager | head -n 15')
ci=$(guest 'cloud-init analyze show')

echo "boot_apart: variant $VARIANT, vnode $VNODE"
echo "vnode: wall ${wall} s; ssh at $(printf '%.1f' "$ssh_s") s, cloud-init done at $(printf '%.1f' "$ci_s") s (from vnode's start)"
echo "guest: $analyze"
echo
echo "sshd's critical chain (userspace seconds: start, duration), first unit first:"
# Lines: "unit @START +DURATION" or "unit +DURATION" (the last, ssh itself) or "unit @START".
while IFS= read -r line; do
  [[ $line =~ ([a-zA-Z0-9@._-]+\.(service|target|socket|slice|mount))(\ @([0-9a-z. ]+))?(\ \+([0-9a-z. ]+))?$ ]] || continue
  unit=${BASH_REMATCH[1]} at=${BASH_REMATCH[4]:-} dur=${BASH_REMATCH[6]:-}
  at_s=$([[ -n $at ]] && to_s "$at" || echo -)
  dur_s=$([[ -n $dur ]] && to_s "$dur" || echo 0.0)
  printf '%s\t%s\t%s\n' "$at_s" "$dur_s" "$unit"
done <<< "$chain" | tac | awk -F'\t' '{ printf "  %-42s @ %7s  + %6s\n", $3, $1, $2 }'
echo
echo "slowest units (systemd-analyze blame):"
sed 's/^/  /' <<< "$blame"
echo
echo "cloud-init's stages and modules (cloud-init analyze show):"
grep -E 'Finished stage|ran successfully|failed' <<< "$ci" | sed 's/^/  /'

# The summary: the chain's cloud-init stages, and the network stage's modules of vnode's seed.
dur_of() { sed -n "s/.*$1 @[0-9a-z. ]* +\([0-9a-z. ]*\)$/\1/p" <<< "$chain" | sed -n 1p; }
local_s=$(to_s "$(dur_of 'cloud-init-local\.service')")
net_s=$(to_s "$(dur_of 'cloud-init\.service')")
ssh_start=$(sed -n 's/.*basic\.target @\([0-9a-z. ]*\)$/\1/p' <<< "$chain" | sed -n 1p)
module_s() {
  sed -n "s/.*config-$1 ran successfully @[0-9.]*s +\([0-9.]*\)s.*/\1/p" <<< "$ci" | sed -n 1p |
    awk '{ printf "%.1f", $1 }'
}
mods=0
for m in growpart resizefs users-groups ssh write_files; do
  t=$(module_s "$m")
  [[ -n $t ]] && mods=$(awk -v a="$mods" -v b="$t" 'BEGIN { print a + b }')
done
[[ -n $ssh_start ]] || { echo "boot_apart.sh: no basic.target on sshd's chain:" >&2; echo "$chain" >&2; exit 1; }
echo
printf 'summary: ssh.service started %s s into userspace; on its chain cloud-init-local %s s and cloud-init (network stage) %s s; ' \
  "$(to_s "$ssh_start")" "$local_s" "$net_s"
printf 'growpart %s s, resizefs %s s, users-groups %s s, ssh %s s (the network stage'"'"'s modules vnode asks for: %.1f s)\n' \
  "$(module_s growpart)" "$(module_s resizefs)" "$(module_s users-groups)" "$(module_s ssh)" "$mods"
