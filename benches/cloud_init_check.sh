#!/usr/bin/env bash
# The cost of one "has cloud-init finished?" check in a booted TCG guest: `cloud-init status
# --wait` (a Python interpreter start per check) against vnode's check (a shell loop on
# /run/cloud-init/result.json, see src/spawn/guest_facts.rs), 3 tries each, timed inside the guest.
#
#   benches/cloud_init_check.sh [TRIES]      (default 3; one node in a lab of its own)
#   benches/cloud_init_check.sh --smoke      (1 try)
#   VNODE_BIN=target/debug/vnode benches/cloud_init_check.sh ...  (a given binary; default: release)
#
# Needs root and the lab's packages (bash .ci/install-deps). Makes the lab `cicheck-PID` and a site
# directory below /var/lib/vnode, and removes both on exit. Errors are printed, never swallowed.
set -euo pipefail
TRIES=${1:-3}
[[ $TRIES == --smoke ]] && TRIES=1
cd "$(dirname "$0")/.."
if [[ -n ${VNODE_BIN:-} ]]; then
  V=$(realpath "$VNODE_BIN")
else
  cargo build --release --quiet
  V=$PWD/target/release/vnode
fi
LAB=cicheck-$$
site=/var/lib/vnode/$LAB
mkdir -p "$site/images" "$site/nodes"
chmod 755 "$site" "$site/images" "$site/nodes"
ssh-keygen -q -t ed25519 -N '' -f "$site/key"
cat > "$site/config.toml" <<C
virt_type = "qemu"
fresh_states = false
cache_dir = "$site/images"
state_dir = "$site/nodes"
ssh_keys = ["$(cat "$site/key.pub")"]
[resources]
memory_mib = 512
vcpus = 1
disk_gib = 4
C
export VNODE_CONFIG=$site/config.toml HOME=$site
cleanup() {
  "$V" --lab="$LAB" destroy 3 || true
  "$V" --lab="$LAB" lab down || true
  rm -rf "$site"
}
trap cleanup EXIT
"$V" --lab="$LAB" lab up
"$V" --lab="$LAB" images import "$(tests/image/build.sh | tail -n 1)" --name debian-12-test --osinfo debian11
"$V" --lab="$LAB" -d debian-12-test --wait cloud-init --timeout 900 3
for _ in $(seq "$TRIES"); do
  "$V" --lab="$LAB" ssh 3 -- 'a=$(date +%s%N); cloud-init status --wait >/dev/null; b=$(date +%s%N);
    f=/run/cloud-init/result.json; while [ ! -s $f ]; do sleep 0.1; done; cat $f >/dev/null; c=$(date +%s%N);
    echo "cloud-init status --wait: $(( (b - a) / 1000000 )) ms   result.json check: $(( (c - b) / 1000000 )) ms"'
done
