#!/usr/bin/env bash
# Checks a built test image the way its boot will read it, without booting it and without mounting
# it: e2fsprogs' debugfs reads the filesystem as GRUB does, without replaying the journal, so what
# a crash or an unfinished unmount left only in the journal counts as missing.
#   - qemu-img check passes on the qcow2;
#   - the MBR holds GRUB's boot code, and the disk one bootable Linux partition;
#   - the partition's ext4 was unmounted cleanly (no needs_recovery) and e2fsck -fn finds no error;
#   - /boot/grub/grub.cfg is there, grub-script-check accepts it, and the kernel and initrd it
#     names are regular, non-empty files;
#   - the root UUID in grub.cfg (`search --fs-uuid`, `root=UUID=`) and in /etc/fstab is the
#     filesystem's own;
#   - GRUB's i386-pc modules are in /boot/grub/i386-pc.
# Usage: tests/image/check.sh IMAGE.qcow2   (needs qemu-utils, fdisk, e2fsprogs, grub2-common)
# Exit 0 when every check passes; 1 naming each failed check on stderr; 2 on bad usage.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

image=${1:?usage: check.sh IMAGE.qcow2}
log() { printf 'check.sh: %s\n' "$*" >&2; }
failed=0
fail() {
	log "FAILED: $image: $*"
	failed=1
}
[[ -f $image ]] || { log "error: no such file: $image"; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vnode-image-check.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

qemu-img check -q "$image" || fail "qemu-img check reports errors"
raw=$tmp/disk.raw
qemu-img convert -O raw "$image" "$raw"

# GRUB's boot.img carries this string; without it SeaBIOS says "not a bootable disk".
head -c 512 "$raw" | grep -aq 'GRUB' || fail "no GRUB boot code in the MBR"
table=$(sfdisk -d "$raw" 2>/dev/null) || table=""
parts=$(grep '^/' <<<"$table" || true)
if [[ $(grep -c . <<<"$parts") -ne 1 || $parts != *bootable* || $parts != *type=83* ]]; then
	fail "expected one bootable Linux partition, found: ${parts:-none}"
	exit 1
fi
start=$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$parts")
fs="$raw?offset=$((start * 512))"

# debugfs prints its banner on stderr; -R runs one request.
dbg() { debugfs -R "$1" "$fs" 2>/dev/null; }
# "regular" when PATH is a regular file with content, else what it is.
file_kind() {
	local stat
	stat=$(dbg "stat $1") || true
	if [[ $stat != *Type:* ]]; then
		echo missing
	elif [[ $stat != *"Type: regular"* ]]; then
		echo "not a regular file"
	elif [[ $(sed -n 's/.*[[:space:]]Size: \([0-9]*\).*/\1/p' <<<"$stat" | head -n1) == 0 ]]; then
		echo empty
	else
		echo regular
	fi
}

header=$(dumpe2fs -h "$fs" 2>/dev/null) || { fail "the partition holds no ext4 filesystem"; exit 1; }
fs_uuid=$(sed -n 's/^Filesystem UUID: *//p' <<<"$header")
[[ $header == *"Filesystem state:"*clean* ]] || fail "the filesystem's state is not clean"
if grep -q '^Filesystem features:.*needs_recovery' <<<"$header"; then
	fail "the filesystem was not unmounted cleanly (needs_recovery: writes are still in its journal, which GRUB does not read)"
fi
e2fsck -fn "$fs" >"$tmp/fsck.log" 2>&1 || fail "e2fsck -fn finds errors: $(tail -n 3 "$tmp/fsck.log" | tr '\n' ' ')"

[[ $(file_kind /boot/grub/i386-pc/normal.mod) == regular ]] || fail "no /boot/grub/i386-pc/normal.mod (grub-install did not run)"
kind=$(file_kind /boot/grub/grub.cfg)
if [[ $kind != regular ]]; then
	fail "/boot/grub/grub.cfg is $kind (the guest would stop at the grub> prompt)"
else
	dbg "cat /boot/grub/grub.cfg" >"$tmp/grub.cfg"
	grub-script-check "$tmp/grub.cfg" || fail "grub-script-check rejects /boot/grub/grub.cfg"
	kernel=$(awk '$1 == "linux" { print $2; exit }' "$tmp/grub.cfg")
	initrd=$(awk '$1 == "initrd" { print $2; exit }' "$tmp/grub.cfg")
	[[ -n $kernel ]] || fail "grub.cfg names no kernel"
	[[ -n $initrd ]] || fail "grub.cfg names no initrd"
	[[ -z $kernel ]] || { kind=$(file_kind "$kernel") && [[ $kind == regular ]]; } || fail "grub.cfg's kernel $kernel is $kind"
	[[ -z $initrd ]] || { kind=$(file_kind "$initrd") && [[ $kind == regular ]]; } || fail "grub.cfg's initrd $initrd is $kind"
	search=$(awk '$1 == "search" { print $NF; exit }' "$tmp/grub.cfg")
	[[ $search == "$fs_uuid" ]] || fail "grub.cfg searches for UUID '$search', the filesystem's is '$fs_uuid'"
	cmdline=$(grep -o 'root=UUID=[^ ]*' "$tmp/grub.cfg" | head -n1 || true)
	[[ $cmdline == "root=UUID=$fs_uuid" ]] || fail "grub.cfg boots with '$cmdline', the filesystem's UUID is $fs_uuid"
fi
fstab=$(dbg "cat /etc/fstab" | awk '$2 == "/" { print $1; exit }')
[[ $fstab == "UUID=$fs_uuid" ]] || fail "/etc/fstab mounts '$fstab' on /, the filesystem's UUID is $fs_uuid"

((failed == 0)) || exit 1
log "ok: $image (root UUID $fs_uuid)"
