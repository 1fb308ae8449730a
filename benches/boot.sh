#!/usr/bin/env bash
# A leaner boot, measured (issue 17 item 3): what each thing vnode controls does to a TCG boot of
# the test image, in a namespace lab of its own. Variants (each a config fragment):
#  base     today's defaults
#  needed   [cloud_init] modules = "needed" (vnode names each stage's modules)
#  devices  virt_install_args: no USB controller, no memory balloon
#  noagent  virt_install_args: as devices, and no guest-agent channel either
#  cpumax   virt_install_args: --cpu mode=maximum (TCG's full feature set; default: qemu64)
#  tb1g     virt_install_args: a 1 GiB TCG translation cache (vnode asks for 128 MiB)
# Every boot is one node (512 MiB, 1 vCPU) spawned with `--wait cloud-init --json`, and two
# boots run at once, of two different variants (two vnode processes, each with its own config
# and state directory, in the same lab): the machine has 2 CPUs and `--parallel auto` would also
# boot 2 at once. Each round runs every variant once (plus `base` a second time when their count
# is odd), in an order rotated per round so that pairings change; `base devices` alone pairs the
# two head to head in every round. Per boot: vnode's ssh and
# cloud-init seconds (from its start), the guest's kernel and userspace startup
# (`systemd-analyze`), the TCG translation-cache flushes qemu counted (`info jit`), and how many
# cloud-init modules ran (`cloud-init analyze blame`).
#
#   benches/boot.sh                 3 rounds (18 boots, about 30 minutes on 2 cores)
#   BOOT_ROUNDS=5 benches/boot.sh   more rounds
#   benches/boot.sh base tb1g       only these variants (still paired, base padded in)
#   benches/boot.sh --smoke         one pair (base, needed) in one round (checks the script)
#   BOOT_VNODE=target/debug/vnode benches/boot.sh   (a given binary; default: a release build,
#                                   made here; VNODE_BIN works too)
#
# Prints a line per boot and a table of medians per variant with the difference to base
# (reported, not judged). Exit status 0 only when every boot was ready. Needs root, the lab's
# programs (bash .ci/install-deps), jq. Its lab `boot-PID` (all networking in the lab's
# namespaces) and site directory /var/lib/vnode/boot-PID are removed on exit, also on failure.
set -euo pipefail
ROUNDS=${BOOT_ROUNDS:-3}
ALL=(base needed devices noagent cpumax tb1g)
VARIANTS=()
while (($#)); do
  case $1 in
    --smoke) VARIANTS=(base needed) ROUNDS=1 ;;
    base | needed | devices | noagent | cpumax | tb1g) VARIANTS+=("$1") ;;
    *) echo "usage: $0 [--smoke] [${ALL[*]} ...]   (BOOT_ROUNDS=R rounds, default 3)" >&2; exit 2 ;;
  esac
  shift
done
((${#VARIANTS[@]})) || VARIANTS=("${ALL[@]}")
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "boot.sh: BOOT_ROUNDS must be 1..99" >&2; exit 2; }
cd "$(dirname "$0")/.."
. benches/lib.sh
bench_lab_needs boot.sh jq
bench_binary boot.sh "${BOOT_VNODE:-}"
IMAGE=debian-12-test

bench_site boot 512 3
cleanup() {
  local rc=$?
  set +e
  local c
  for c in "$W"/cfg-*.toml; do
    [[ -f $c ]] || continue
    HOME=$W/home "$VNODE" --lab="$LAB" --config "$c" -q destroy 3 4 >/dev/null 2>&1
  done
  v lab down || echo "boot.sh: lab down failed; run: vnode --lab=$LAB lab down" >&2
  rm -rf "$W"
  exit "$rc"
}
trap cleanup EXIT

# The config of one variant: the site's, with its own state directory and the variant's keys.
variant_config() {
  local name=$1 out=$W/cfg-$1.toml
  mkdir -p "$W/nodes-$name"
  chmod 755 "$W/nodes-$name"
  {
    echo 'virt_type = "qemu"'
    echo "cache_dir = \"$W/images\""
    echo "state_dir = \"$W/nodes-$name\""
    echo "ssh_keys = [\"$KEY\"]"
    case $name in
      devices) echo 'virt_install_args = ["--controller", "usb,model=none", "--memballoon", "none"]' ;;
      noagent) echo 'virt_install_args = ["--controller", "usb,model=none", "--memballoon", "none", "--channel", "none"]' ;;
      cpumax) echo 'virt_install_args = ["--cpu", "mode=maximum"]' ;;
      tb1g) echo 'virt_install_args = ["--xml", "./features/tcg/tb-cache=1024"]' ;;
    esac
    printf '[resources]\nmemory_mib = 512\nvcpus = 1\ndisk_gib = 3\n'
    [[ $name != needed ]] || printf '[cloud_init]\nmodules = "needed"\n'
  } > "$out"
}
for name in "${VARIANTS[@]}" base; do variant_config "$name"; done
vv() { local name=$1; shift; HOME=$W/home "$VNODE" --lab="$LAB" --config "$W/cfg-$name.toml" "$@"; }

echo "boot: variants ${VARIANTS[*]}, $ROUNDS round(s), 2 boots at once, in lab $LAB"
v lab up >/dev/null
image=$(tests/image/build.sh | tail -n 1)
v images import "$image" --name "$IMAGE" --osinfo debian11 >/dev/null

# One boot of variant $1 as node $2; appends "variant ssh ci kernel user flushes" to $W/results.
boot() {
  local name=$1 n=$2 json=$W/run-$1-$2.json err=$W/run-$1-$2.err
  if ! vv "$name" --json -q -d "$IMAGE" "$n" --wait cloud-init --timeout 900 > "$json" 2> "$err"; then
    echo "boot.sh: variant $name, node $n: vnode failed:" >&2
    cat "$err" >&2
    jq -r '.nodes[]? | "  \(.name): \(.outcome) at \(.stage): \(.error)"' "$json" >&2 || cat "$json" >&2
    return 1
  fi
  local node=vnode0$n ssh ci analyze kernel user flushes
  ssh=$(jq -r '.nodes[0].ssh_seconds * 10 | round / 10' "$json")
  ci=$(jq -r '.nodes[0].cloud_init_seconds * 10 | round / 10' "$json")
  # The guest's own account, once its boot is over (cloud-final can end after cloud-init's result).
  analyze=$(vv "$name" ssh "$n" -- 'systemd-analyze 2>/dev/null || true' 2> "$err" | head -n 1)
  kernel=$(sed -n 's/^Startup finished in \([0-9.]*\)s (kernel).*/\1/p' <<< "$analyze")
  user=$(sed -n 's/.* + \(\([0-9]*\)min \)\{0,1\}\([0-9.]*\)s (userspace).*/\2 \3/p' <<< "$analyze" | awk '{ if (NF == 2) print $1 * 60 + $2; else if (NF == 1) print $1 }')
  flushes=$(v lab exec -- virsh qemu-monitor-command --hmp "$node" 'info jit' 2>/dev/null | sed -n 's/^TB flush count *\([0-9]*\).*/\1/p')
  # How many cloud-init modules ran (what `needed` trims).
  modules=$(vv "$name" ssh "$n" -- 'cloud-init analyze blame 2>/dev/null | grep -c "/config-" || true' 2> "$err")
  echo "$name $ssh $ci ${kernel:--} ${user:--} ${flushes:--} ${modules:--}" >> "$W/results"
  printf '  %-8s %-8s ssh %6s s  cloud-init %6s s  kernel %5s s  userspace %6s s  tb flushes %s  modules %s\n' \
    "$name" "$node" "$ssh" "$ci" "${kernel:--}" "${user:--}" "${flushes:--}" "${modules:--}"
  vv "$name" -q destroy "$n" > /dev/null 2> "$err" || { echo "boot.sh: destroy of $node ($name) failed:" >&2; cat "$err" >&2; return 1; }
}

: > "$W/results"
# Each round: every variant once, base padded in to an even count; rotated by the round number.
SLOTS=("${VARIANTS[@]}")
((${#SLOTS[@]} % 2 == 0)) || SLOTS+=(base)
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r"
  order=()
  for ((i = 0; i < ${#SLOTS[@]}; i++)); do order+=("${SLOTS[(i + r - 1) % ${#SLOTS[@]}]}"); done
  for ((i = 0; i < ${#order[@]}; i += 2)); do
    a=${order[i]} b=${order[i + 1]}
    boot "$a" 3 & pa=$!
    boot "$b" 4 & pb=$!
    ok=0
    wait "$pa" || ok=1
    wait "$pb" || ok=1
    ((ok == 0)) || { echo "boot.sh: a boot failed (above); stopping" >&2; exit 1; }
  done
done

echo
echo "medians per variant (n boots), and the difference to base:"
printf '%-8s %3s %10s %12s %10s %13s %11s %9s\n' variant n ssh cloud-init kernel userspace 'tb flushes' modules
awk '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (n == 0) return "-"
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    n[$1]++; order[$1] = order[$1] ? order[$1] : ++seen
    for (k = 2; k <= 7; k++) if ($k != "-") v[$1, k] = v[$1, k] " " $k
  }
  END {
    for (name in n) names[order[name]] = name
    for (k = 2; k <= 7; k++) base[k] = median(v["base", k])
    for (i = 1; i <= seen; i++) {
      name = names[i]
      printf "%-8s %3d", name, n[name]
      for (k = 2; k <= 7; k++) {
        m = median(v[name, k])
        w = (k == 2 ? 10 : k == 3 ? 12 : k == 4 ? 10 : k == 5 ? 13 : k == 6 ? 11 : 9)
        if (name == "base" || m == "-" || base[k] == "-") cell = sprintf("%s", m)
        else cell = sprintf("%s (%+.1f)", m, m - base[k])
        printf " %" w "s", cell
      }
      printf "\n"
    }
  }' "$W/results"
echo "(seconds; ssh and cloud-init from vnode's start, kernel and userspace from systemd-analyze)"
