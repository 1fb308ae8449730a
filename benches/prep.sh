#!/usr/bin/env bash
# Per-node preparation time: `vnode spawn --prepare-only` (qcow2 overlay + NoCloud seed ISO +
# ed25519 host key + known_hosts, all in Rust) against the two tools it replaces,
# `qemu-img create -b ... -F qcow2` + `cloud-localds`, for the same N nodes, in one run.
#
#   benches/prep.sh [N] [ROUNDS]        (defaults: 20 nodes, 3 rounds; prints the median round)
#   benches/prep.sh --smoke              (2 nodes, 1 round: checks the benchmark still works; CI)
#   VNODE_BIN=target/debug/vnode benches/prep.sh ...   (a given binary; default: a release build)
#
# The tools get the very documents vnode wrote (extracted from vnode's seeds), so both sides
# produce the same files. vnode's time is the whole command (process start, config, specs, all
# N nodes) divided by N; its one-time osinfo query is warmed up first, as on any used host.
# Needs: a release build (built here if missing), qemu-img, cloud-localds (cloud-image-utils),
# isoinfo. Touches nothing outside a temporary directory.
set -euo pipefail
if [[ ${1:-} == --smoke ]]; then N=2 ROUNDS=1; else N=${1:-20} ROUNDS=${2:-3}; fi
cd "$(dirname "$0")/.."
if [[ -n ${VNODE_BIN:-} ]]; then
  VNODE=$(realpath "$VNODE_BIN")
else
  cargo build --release --quiet
  VNODE=$PWD/target/release/vnode
fi
for tool in qemu-img cloud-localds isoinfo; do
  command -v "$tool" >/dev/null || { echo "prep.sh: $tool is needed" >&2; exit 1; }
done

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# The qemu user must reach the base image (vnode checks that before preparing anything).
chmod 755 "$W"
mkdir -p "$W/cache" "$W/home"
qemu-img create -q -f qcow2 "$W/base.qcow2" 2G
ssh-keygen -q -t ed25519 -N '' -C bench@host -f "$W/home/id_ed25519"
cat > "$W/config.toml" <<EOF
state_dir = "$W/state"
cache_dir = "$W/cache"
ssh_keys = ["$(cat "$W/home/id_ed25519.pub")"]
[resources]
memory_mib = 512
vcpus = 1
disk_gib = 2
[[pool]]
stem = "bench"
width = 3
EOF

now_ns() { date +%s%N; }
vnode() { HOME=$W/home "$VNODE" spawn --config "$W/config.toml" --virt-type qemu --prepare-only "$@"; }
# Output is not needed, errors are: a failing step prints what it said and stops the benchmark.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf 'prep.sh: %s failed:\n%s\n' "$*" "$out" >&2
    exit 1
  fi
}
quiet env HOME="$W/home" "$VNODE" --config "$W/config.toml" images import "$W/base.qcow2" --name debian-12

quiet vnode bench999:debian-12 # warm-up: caches the host's osinfo ids

declare -a V T
for ((r = 0; r < ROUNDS; r++)); do
  rm -rf "$W/state"/bench0* "$W/tools"
  t0=$(now_ns)
  quiet vnode "0-$((N - 1)):debian-12"
  t1=$(now_ns)
  V[r]=$(((t1 - t0) / N))

  # The same documents for the tools.
  for ((i = 0; i < N; i++)); do
    d=$W/tools/$i
    mkdir -p "$d"
    seed=$(printf '%s/state/bench%03d/seed.iso' "$W" "$i")
    for f in meta-data user-data network-config; do
      isoinfo -R -x "/$f" -i "$seed" > "$d/$f"
    done
  done
  t0=$(now_ns)
  for ((i = 0; i < N; i++)); do
    d=$W/tools/$i
    qemu-img create -q -f qcow2 -F qcow2 -b "$W/base.qcow2" "$d/disk.qcow2" 2G
    cloud-localds --network-config="$d/network-config" "$d/seed.iso" "$d/user-data" "$d/meta-data"
  done
  t1=$(now_ns)
  T[r]=$(((t1 - t0) / N))
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
v=$(median "${V[@]}")
t=$(median "${T[@]}")
awk -v n="$N" -v r="$ROUNDS" -v v="$v" -v t="$t" 'BEGIN {
  printf "nodes per round: %d, rounds: %d (median shown)\n", n, r
  printf "vnode --prepare-only (overlay + seed + host key): %7.2f ms per node\n", v / 1e6
  printf "qemu-img create + cloud-localds:                   %7.2f ms per node\n", t / 1e6
  printf "ratio: %.1fx faster\n", t / v
}'
