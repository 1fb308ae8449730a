#!/usr/bin/env bash
# Boot smoke test for the vnode test image, without any network device.
#
# Usage: tests/image/smoke.sh IMAGE.qcow2
#   VNODE_SMOKE_TIMEOUT  seconds to wait for cloud-init to finish (default 600; TCG is slow)
#   VNODE_SMOKE_KEEP=1   keep the work dir (serial log, overlay, seed) even on success
# Boots IMAGE (through a 4 GiB qcow2 overlay, so growpart/resizefs have work to do) under qemu
# TCG (q35, 512 MiB, 1 vCPU, -nic none) with a NoCloud seed ISO on a virtio-scsi cdrom, and
# checks the serial console: datasource NoCloud, hostname "smoketest", sshd running, root fs
# grown, cloud-init finished. Exits 0 if all checks pass, 1 otherwise.
set -euo pipefail

log() { printf 'smoke.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 IMAGE.qcow2"
image=$(realpath -e -- "$1") || die "no such image: $1"
timeout=${VNODE_SMOKE_TIMEOUT:-600}
for t in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils cloud-localds:cloud-image-utils; do
	command -v "${t%%:*}" >/dev/null 2>&1 || die "missing ${t%%:*} (Debian package ${t#*:})"
done

work=$(mktemp -d /tmp/vnode-smoke.XXXXXX)
qpid=""
ok=0
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
		kill -TERM "$qpid"
		wait "$qpid" 2>/dev/null
	fi
	if ((ok)) && [[ ${VNODE_SMOKE_KEEP:-0} != 1 ]]; then
		rm -rf -- "$work"
	else
		log "work dir kept: $work (serial log: $work/serial.log)"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$work/meta-data" <<EOF
instance-id: smoketest-$(date +%s)
local-hostname: smoketest
EOF
# No key, no password: nothing can log in; the checks are printed by runcmd (cloud-final's
# output goes to the console).
cat >"$work/user-data" <<'EOF'
#cloud-config
hostname: smoketest
runcmd:
  - echo "VNODE-SMOKE hostname=$(hostname) ssh=$(systemctl is-active ssh.service) sshd-listening=$(ss -Hltn 'sport = :22' | wc -l) rootfs-blocks=$(df -P -k / | awk 'NR==2 {print $2}') modules=$(lsmod | awk '$1 ~ /^(isofs|sr_mod|cdrom|virtio_scsi)$/ {printf "%s,", $1}') uptime=$(cut -d' ' -f1 /proc/uptime)"
EOF
cloud-localds "$work/seed.iso" "$work/user-data" "$work/meta-data"
qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$work/disk.qcow2" 4G

serial=$work/serial.log
: >"$serial"
t0=$(date +%s.%N)
qemu-system-x86_64 -accel tcg -machine q35 -m 512 -smp 1 \
	-display none -monitor none -serial "file:$serial" -nic none \
	-drive "file=$work/disk.qcow2,format=qcow2,if=virtio" \
	-device virtio-scsi-pci \
	-drive "if=none,id=cd,file=$work/seed.iso,format=raw,media=cdrom,readonly=on" \
	-device scsi-cd,drive=cd \
	</dev/null >"$work/qemu.log" 2>&1 &
qpid=$!
log "qemu pid $qpid, image $image, serial log $serial"

finished=""
while :; do
	if grep -qa 'Cloud-init v\. .* finished at' "$serial"; then
		finished=$(date +%s.%N)
		break
	fi
	kill -0 "$qpid" 2>/dev/null || { log "qemu exited early:"; cat "$work/qemu.log" >&2; break; }
	if (($(date +%s) - ${t0%.*} > timeout)); then log "timeout after ${timeout} s"; break; fi
	sleep 0.5
done
sleep 2 # let the login prompt reach the log

fails=0
check() { # check DESCRIPTION REGEX
	if grep -qaE -- "$2" "$serial"; then
		log "PASS $1"
	else
		log "FAIL $1 (no match for /$2/)"
		fails=$((fails + 1))
	fi
}
check "grub + kernel booted" 'Linux version|Debian GNU/Linux 12'
check "cloud-init finished" 'Cloud-init v\. .* finished at'
check "datasource NoCloud from the cdrom" 'Datasource DataSourceNoCloud'
check "hostname is smoketest" 'VNODE-SMOKE hostname=smoketest '
check "sshd active and listening on :22" 'VNODE-SMOKE .* ssh=active sshd-listening=[1-9]'
check "root fs grown to the 4 GiB overlay" 'VNODE-SMOKE .* rootfs-blocks=(3[0-9]|4[0-9])[0-9]{5} '
check "login prompt shows smoketest" 'smoketest login:'
grep -a -E 'VNODE-SMOKE|Cloud-init v\. .* finished at' "$serial" | tr -d '\r' | sed 's/^/smoke.sh:   | /' >&2 || true
if [[ -n $finished ]]; then
	log "boot to cloud-init finished: $(awk -v a="$t0" -v b="$finished" 'BEGIN { printf "%.1f", b - a }') s (wall clock from qemu start)"
fi

kill -TERM "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
qpid=""
if ((fails)); then
	log "$fails check(s) failed"
	exit 1
fi
ok=1
log "all checks passed"
