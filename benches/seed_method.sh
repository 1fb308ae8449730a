# The seed's method (issue 17 item 4), shared by benches/seed.sh and benches/fresh.sh (sourced,
# not run): per node a `qemu-img create` overlay, a `cloud-localds` seed (hostname, root's key,
# both NICs on DHCP; no host keys) and `virt-install --import`, all nodes at once, then `sleep 30`,
# then every 5 s one ssh try at each node's public address that has not answered yet.
#
# The sourcing script sets SEED_TOOL (its name, for messages; default seed.sh) and, before it
# calls these, has W, KEY, `v` (benches/lib.sh's bench_site), FIRST (the first node number), BASE
# (the base image) and the directory $W/seed; seed_plan fills the MACs and addresses from the
# lab's plan.
SEED_TOOL=${SEED_TOOL:-seed.sh}
# The lab's own libvirtd, as everything run in the lab's site reaches it (a lab without hosts:
# src/lab/mod.rs); vnode's virt-install gets the same --connect.
URI=qemu:///system
SEED_TIMEOUT=1800 # seconds a seed batch may take before it counts as failed
lx() { v lab exec -- "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# seed_lab_cleanup: the EXIT trap of a script with a lab of its own: whatever a failed run left
# (the seed's domains and vnode's alike; lab down also stops the guests), the lab, and $W (with
# vnode's node files and fresh states).
seed_lab_cleanup() {
  local rc=$? d
  set +e
  if [[ -f /var/lib/vnode/lab/$LAB/state.json ]]; then
    for d in $(lx virsh -q -c "$URI" list --all --name); do
      lx virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1
      lx virsh -q -c "$URI" undefine "$d" >/dev/null || echo "$SEED_TOOL: cannot undefine $d (see above)" >&2
    done
  fi
  v lab down || echo "$SEED_TOOL: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}

# seed_lab_up IMAGE: the cleanup traps first, then the test image as catalog entry IMAGE (renderer
# networkd, so `--wait auto` decides as for Debian's and Ubuntu's catalog images), the lab up and
# the image imported; sets BASE (the imported file) and SEED_IMAGE_FILE (the test image's path).
seed_lab_up() {
  local digest
  trap seed_lab_cleanup EXIT
  # A signal ends the script through the same cleanup (bash runs the EXIT trap after these).
  trap 'exit 130' INT
  trap 'exit 143' TERM
  SEED_IMAGE_FILE=$(tests/image/build.sh | tail -n 1)
  digest=$(sha256sum "$SEED_IMAGE_FILE" | cut -d' ' -f1)
  cat > "$W/catalog.toml" <<EOF
# The test image (tests/image, variant networkd) as a catalog entry; never downloaded.
[[image]]
name = "$1"
family = "debian-test"
version = "12"
osinfo = "debian11"
renderer = "networkd"
url = "https://example.invalid/$1.qcow2"
sha256 = "$digest"
EOF
  # The entry above as the config's catalog (a top-level key: before [resources]).
  sed -i "1i catalog = \"$W/catalog.toml\"" "$W/config.toml"
  v lab up
  v images import "$SEED_IMAGE_FILE" --name "$1" --sha256 "$digest" >/dev/null
  BASE=$W/images/$1.qcow2
  [[ -f $BASE ]] || { echo "$SEED_TOOL: the imported image is not at $BASE" >&2; exit 1; }
}

# seed_plan MAX: PUB_MAC, PRIV_MAC and PUB_IP of nodes FIRST .. FIRST+MAX-1 from the lab's plan
# (the site DHCP's), the same for the seed's nodes as for vnode's.
seed_plan() {
  local max=$1 i
  v --json plan "$FIRST-$((FIRST + max - 1))" > "$W/plan.json"
  declare -gA PUB_MAC PRIV_MAC PUB_IP
  for ((i = FIRST; i < FIRST + max; i++)); do
    PUB_MAC[$i]=$(jq -r --argjson n "$i" '.entries[] | select(.number == $n) | .public_mac' "$W/plan.json")
    PRIV_MAC[$i]=$(jq -r --argjson n "$i" '.entries[] | select(.number == $n) | .private_mac' "$W/plan.json")
    PUB_IP[$i]=$(jq -r --argjson n "$i" '.entries[] | select(.number == $n) | .public_ip' "$W/plan.json")
    [[ ${PUB_IP[$i]} =~ ^[0-9.]+$ ]] || { echo "$SEED_TOOL: the lab's plan has no public address for node $i: $(cat "$W/plan.json")" >&2; exit 1; }
  done
}

# One node's files and domain (run in the background, one per node).
seed_start() {
  local i=$1 run=$2 name d
  name=$(printf 'vnode%02d' "$i")
  d=$W/seed/$name
  mkdir -p "$d"
  chmod 755 "$d"
  qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$d/disk.qcow2" 4G
  cat > "$d/user-data" <<EOF
#cloud-config
hostname: $name
disable_root: false
ssh_pwauth: false
ssh_authorized_keys:
  - $KEY
EOF
  printf 'instance-id: %s-%s\nlocal-hostname: %s\n' "$name" "$run" "$name" > "$d/meta-data"
  # Both NICs on DHCP, found by MAC (quoted: YAML 1.1 reads a bare 52:54:... as a number).
  cat > "$d/network-config" <<EOF
version: 2
ethernets:
  private:
    match: {macaddress: "${PRIV_MAC[$i]}"}
    dhcp4: true
  public:
    match: {macaddress: "${PUB_MAC[$i]}"}
    dhcp4: true
EOF
  cloud-localds --network-config="$d/network-config" "$d/seed.iso" "$d/user-data" "$d/meta-data"
  # The seed ISO goes on virtio-scsi: q35's default SATA cdrom is invisible to Debian's cloud
  # kernel (no AHCI), and cloud-init would then boot with no datasource (no key, no public NIC).
  lx virt-install --connect "$URI" --import --name "$name" --memory 512 --vcpus 1 \
    --os-variant debian11 --virt-type qemu \
    --disk "path=$d/disk.qcow2,format=qcow2" \
    --disk "path=$d/seed.iso,device=cdrom,bus=scsi" \
    --network network=default,mac="${PRIV_MAC[$i]}" \
    --network bridge=br0,mac="${PUB_MAC[$i]}" \
    --serial "pty,log.file=$d/console.log" \
    --noautoconsole --graphics none > "$d/virt-install.log" 2>&1 || {
    echo "$SEED_TOOL: virt-install of $name failed:" >&2
    cat "$d/virt-install.log" >&2
    return 1
  }
}

# One ssh try at node i's public address, from the lab's site; writes "i seconds" on success.
seed_try() {
  local i=$1 t0=$2
  if lx ssh -i "$W/home/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 \
    -o LogLevel=ERROR "root@${PUB_IP[$i]}" true 2> "$W/seed/try-$i.err"; then
    echo "$i $(secs "$t0" "$(now)")" >> "$W/seed/answers"
  fi
}

seed_cleanup() {
  local n=$1 i name
  for ((i = FIRST; i < FIRST + n; i++)); do
    name=$(printf 'vnode%02d' "$i")
    lx virsh -q -c "$URI" destroy "$name" >/dev/null
    lx virsh -q -c "$URI" undefine "$name" >/dev/null
    rm -rf "$W/seed/$name"
  done
  rm -f "$W/seed/answers" "$W/seed"/try-*.err
}

# Sets R_ALL (all answered), R_NODES (per node), R_STARTED (virt-installs returned).
seed_run() {
  local n=$1 run=$2 t0 i pid failed=0 tick elapsed next
  local -a pids pending left
  local -A at
  t0=$(now)
  for ((i = FIRST; i < FIRST + n; i++)); do
    seed_start "$i" "$run" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || { echo "$SEED_TOOL: the seed's way could not start its nodes (see above)" >&2; return 1; }
  R_STARTED=$(secs "$t0" "$(now)")
  sleep 30
  pending=()
  for ((i = FIRST; i < FIRST + n; i++)); do pending+=("$i"); done
  : > "$W/seed/answers"
  while ((${#pending[@]})); do
    tick=$(now)
    elapsed=$(secs "$t0" "$tick")
    if awk -v e="$elapsed" -v m="$SEED_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
      echo "$SEED_TOOL: the seed's way: no ssh after ${elapsed} s from: ${pending[*]}; last tries said:" >&2
      for i in "${pending[@]}"; do
        echo "  node $i (${PUB_IP[$i]}): $(cat "$W/seed/try-$i.err")" >&2
        echo "  its console's last lines:" >&2
        tail -n 15 "$W/seed/$(printf 'vnode%02d' "$i")/console.log" >&2
      done
      return 1
    fi
    pids=()
    for i in "${pending[@]}"; do
      seed_try "$i" "$t0" &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    while read -r i elapsed; do
      [[ -n ${at[$i]:-} ]] || at[$i]=$elapsed
    done < "$W/seed/answers"
    left=()
    for i in "${pending[@]}"; do [[ -n ${at[$i]:-} ]] || left+=("$i"); done
    pending=("${left[@]+"${left[@]}"}")
    # The next try 5 s after this one started.
    next=$(awk -v t="$tick" -v n="$(now)" 'BEGIN { d = t + 5 - n; printf "%.3f", (d > 0 ? d : 0) }')
    ((${#pending[@]} == 0)) || sleep "$next"
  done
  R_NODES=""
  R_ALL=0
  for ((i = FIRST; i < FIRST + n; i++)); do
    R_NODES+="$(printf 'vnode%02d' "$i") ${at[$i]} s, "
    R_ALL=$(awk -v a="$R_ALL" -v b="${at[$i]}" 'BEGIN { print (b > a ? b : a) }')
  done
  R_NODES=${R_NODES%, }
  seed_cleanup "$n"
}
