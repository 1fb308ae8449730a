# What the benchmarks that run vnode share (sourced, not run): which binary they measure, and the
# site of a lab of their own. Every function exits the script with a message on failure.

# bench_lab_needs TOOL [COMMAND ...]: what every benchmark with a lab of its own needs: root (the
# lab's namespaces and libvirtd) and the given commands on PATH.
bench_lab_needs() {
  local tool=$1 c
  shift
  [[ $(id -u) == 0 ]] || { echo "$tool: run as root (the lab needs namespaces and libvirtd)" >&2; exit 1; }
  for c in "$@"; do
    command -v "$c" >/dev/null || { echo "$tool: $c is needed (bash .ci/install-deps installs it)" >&2; exit 1; }
  done
}

# bench_binary TOOL [BINARY]: sets VNODE to BINARY (the script's own override variable), else
# $VNODE_BIN, else a release build made here.
bench_binary() {
  local tool=$1
  VNODE=${2:-${VNODE_BIN:-}}
  if [[ -n $VNODE ]]; then
    VNODE=$(realpath -- "$VNODE")
  else
    cargo build --release --quiet
    VNODE=$PWD/target/release/vnode
  fi
  [[ -x $VNODE ]] || { echo "$tool: $VNODE is not an executable" >&2; exit 1; }
}

# bench_site TAG MEMORY_MIB DISK_GIB [DIR ...]: LAB=TAG-PID and its site W=/var/lib/vnode/TAG-PID
# with images/, nodes/, any extra DIRs (all readable by the qemu user), home/ with an ssh key (KEY:
# its public half) and config.toml (TCG, the site's cache and state, 1 vCPU, the given memory and
# disk; no fresh state saved unless a command asks: the benchmarks measure cold boots, fresh.sh
# asks per command). `v ARGS` runs vnode in the lab with that config; the caller removes W and takes the lab
# down (its cleanup trap).
bench_site() {
  local tag=$1 memory=$2 disk=$3 d
  shift 3
  LAB=$tag-$$
  W=/var/lib/vnode/$tag-$$
  mkdir -p "$W/images" "$W/nodes" "$W/home"
  chmod 755 /var/lib/vnode "$W" "$W/images" "$W/nodes"
  for d in "$@"; do
    mkdir -p "$W/$d"
    chmod 755 "$W/$d"
  done
  ssh-keygen -q -t ed25519 -N '' -C "$tag-bench" -f "$W/home/id_ed25519"
  KEY=$(cat "$W/home/id_ed25519.pub")
  cat > "$W/config.toml" <<CONFIG
virt_type = "qemu"
fresh_states = false
cache_dir = "$W/images"
state_dir = "$W/nodes"
ssh_keys = ["$KEY"]
[resources]
memory_mib = $memory
vcpus = 1
disk_gib = $disk
CONFIG
}

v() { HOME=$W/home "$VNODE" --lab="$LAB" --config "$W/config.toml" "$@"; }
