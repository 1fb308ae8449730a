#!/usr/bin/env bash
# Builds vnode's Debian 12 (bookworm) cloud-like test image: a 2 GiB qcow2 with an MBR, one
# ext4 partition, GRUB (i386-pc) on the serial console, the cloud kernel, systemd, cloud-init
# (NoCloud) and sshd. See README.md next to this file.
#
# Usage: sudo tests/image/build.sh [VARIANT]
#   VARIANT (or VNODE_TEST_IMAGE_VARIANT)   how the guest configures its network (default networkd):
#     networkd   systemd-networkd, cloud-init renders networkd (Debian 12's genericcloud family)
#     nm         NetworkManager, cloud-init renders network-manager, networkd masked (as on Fedora)
#     netplan    netplan.io with the networkd backend, cloud-init renders netplan (as on Ubuntu)
#   VNODE_TEST_IMAGE_DIR   cache/output directory (default /var/cache/vnode-test-image)
#   VNODE_TEST_IMAGE_KEEP_OLD=1   keep images/tarballs with other keys after a build
# The last line on stdout is the absolute path of the image; everything else goes to stderr.
# The image name carries the variant and a key over the content of every file under tests/image/,
# so a cached image is reused (exit within milliseconds) until the builder changes.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
files=$here/files

variant=${1:-${VNODE_TEST_IMAGE_VARIANT:-networkd}}
case $variant in
networkd | nm | netplan) ;;
*)
	printf 'build.sh: error: unknown variant %q (networkd, nm or netplan)\n' "$variant" >&2
	exit 2
	;;
esac

dir=$(realpath -m -- "${VNODE_TEST_IMAGE_DIR:-/var/cache/vnode-test-image}")

# KEY: sha256 over the concatenated content of every file under tests/image/, in byte order of
# their relative paths.
key=$(cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat -- | sha256sum | cut -c1-16)
image=$dir/debian12-vnode-test-$variant-$key.qcow2

if [[ -f $image ]]; then
	echo "$image"
	exit 0
fi

# From here on, stdout is only used for the final line.
exec 3>&1 1>&2

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it uses loop devices, mount and chroot)"

# The build mounts the new filesystem in a mount namespace of its own. Where mounts are private
# (no systemd as PID 1), every mount namespace made while the filesystem is mounted in the
# machine's namespace (libvirt's per-guest namespaces, a lab, `ip netns exec`) copies that mount
# and keeps the filesystem alive after our umount: its last writes (grub.cfg) then stay in the page
# cache and the journal, and the image is converted without them. Here, nobody else sees it.
if [[ ${VNODE_TEST_IMAGE_OWN_MOUNT_NS:-} != 1 ]]; then
	exec env VNODE_TEST_IMAGE_OWN_MOUNT_NS=1 unshare --mount --propagation private -- \
		bash "${BASH_SOURCE[0]}" "$variant" >&3
fi
[[ $dir != *[[:space:]]* ]] || die "VNODE_TEST_IMAGE_DIR must not contain whitespace: $dir"

# ---- required host tools ---------------------------------------------------------------
missing=()
export PATH=$PATH:/usr/sbin:/sbin
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)"); } # COMMAND PACKAGE
need mmdebstrap mmdebstrap
need grub-install grub2-common
[[ -f /usr/lib/grub/i386-pc/boot.img ]] || missing+=("/usr/lib/grub/i386-pc (Debian package grub-pc-bin)")
need sfdisk fdisk
need mkfs.ext4 e2fsprogs
need qemu-img qemu-utils
need losetup mount
need mount mount
need partx util-linux
need fstrim util-linux
need flock util-linux
need chroot coreutils
need tar tar
need unshare util-linux
need debugfs e2fsprogs
need grub-script-check grub2-common
if ((${#missing[@]})); then
	for m in "${missing[@]}"; do log "missing: $m"; done
	die "install the packages above (e.g. apt-get install --no-install-recommends mmdebstrap grub-pc-bin grub2-common fdisk e2fsprogs qemu-utils)"
fi

# ---- what goes into the rootfs tarball (its own cache key) -------------------------------
suite=bookworm
mirror=http://deb.debian.org/debian
sources=(
	"deb $mirror $suite main"
	"deb $mirror $suite-updates main"
	"deb http://deb.debian.org/debian-security $suite-security main"
)
pkgs=(
	linux-image-cloud-amd64 initramfs-tools systemd-sysv udev dbus systemd-resolved cloud-init
	openssh-server cloud-guest-utils e2fsprogs iproute2 iputils-ping netbase ca-certificates sudo
)
case $variant in
nm) pkgs+=(network-manager) ;;
netplan) pkgs+=(netplan.io) ;;
esac
mm_opts=(
	--variant=minbase --mode=root --format=tar
	--aptopt='Acquire::Languages "none"'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/groff/*'
	--dpkgopt='path-exclude=/usr/share/lintian/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-include=/usr/share/locale/locale.alias'
	# The initramfs config must be in place before the kernel is installed, so the initrd is
	# generated once, already small (its content is part of the tarball key below).
	--setup-hook="install -D -m 0644 $(printf %q "$files/initramfs.conf") \"\$1/etc/initramfs-tools/conf.d/vnode.conf\""
	--setup-hook="install -D -m 0755 $(printf %q "$files/initramfs-hook") \"\$1/etc/initramfs-tools/hooks/vnode\""
)
rootfs_key=$({
	printf '%s\n' "$suite" "${sources[@]}" "${pkgs[@]}" "${mm_opts[@]}"
	cat "$files/initramfs.conf" "$files/initramfs-hook"
} | sha256sum | cut -c1-16)
tarball=$dir/rootfs-$suite-$variant-$rootfs_key.tar

# ---- locking, temp dir, cleanup -------------------------------------------------------
mkdir -p "$dir"
chmod 755 "$dir"
# One lock per variant: the variants build at once (CI builds all three side by side), two
# builds of one variant do not.
exec 9>"$dir/.lock-$variant"
if ! flock -n 9; then
	log "another build holds $dir/.lock-$variant, waiting"
	flock 9
fi
if [[ -f $image ]]; then # built by the other process meanwhile
	echo "$image" >&3
	exit 0
fi

# Unmounts everything below $1, detaches loop devices backed by files below $1, removes $1.
# Used for our own temp dir and for leftovers of a build that was SIGKILLed (we hold the lock,
# and the lock fd is inherited by every child of a build, so such a dir is no longer in use).
clean_dir() {
	local d=$1 m l ok=1
	[[ -n $d && -d $d ]] || return 0
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" || ok=0
	done < <(awk -v t="$d/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	while read -r l; do
		losetup -d "$l" || ok=0
	done < <(losetup -l -n -O NAME,BACK-FILE | awk -v t="$d/" 'index($2, t) == 1 { print $1 }')
	if awk -v t="$d/" 'index($5, t) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then ok=0; fi
	if ((ok)); then
		rm -rf --one-file-system -- "$d"
	else
		log "WARNING: could not fully clean $d, left it in place"
	fi
}

tmp=""
child=""
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
		log "stopping pid $child"
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	clean_dir "$tmp"
	((rc == 0)) || log "FAILED (exit $rc)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for stale in "$dir"/.build-"$variant".*; do
	[[ -d $stale ]] || continue
	log "removing leftover $stale"
	clean_dir "$stale"
done

tmp=$(mktemp -d "$dir/.build-$variant.XXXXXX")
chmod 755 "$tmp" # lets apt download as _apt (sandboxed) inside mmdebstrap's chroot
export TMPDIR=$tmp

# Runs a command in the background and waits for it, so that INT/TERM reach our trap at once
# (and the trap stops that command) instead of after the command has finished.
run() {
	"$@" &
	child=$!
	wait "$child"
	child=""
}

t_start=$SECONDS

# ---- 1. rootfs tarball (cached) ----------------------------------------------------------
if [[ -f $tarball ]]; then
	log "rootfs: using cached $tarball"
	t_rootfs=0
else
	log "rootfs: mmdebstrap $suite (${#pkgs[@]} packages + deps) -> $tarball"
	t0=$SECONDS
	run mmdebstrap "${mm_opts[@]}" --include="$(IFS=,; echo "${pkgs[*]}")" \
		"$suite" "$tmp/rootfs.tar" "${sources[@]}"
	mv "$tmp/rootfs.tar" "$tarball"
	t_rootfs=$((SECONDS - t0))
	log "rootfs: done in ${t_rootfs} s ($(($(stat -c %s "$tarball") / 1048576)) MiB tar)"
fi

# ---- 2. disk: MBR, ext4, rootfs, config, GRUB ---------------------------------------------
t0=$SECONDS
raw=$tmp/disk.raw
mnt=$tmp/mnt
mkdir "$mnt"
truncate -s 2G "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
loop=$(losetup -f -P --show "$raw")
part=${loop}p1
for _ in $(seq 50); do
	[[ -b $part ]] && break
	partx -a "$loop" 2>/dev/null || true # losetup -P does not always create the node
	sleep 0.1
done
[[ -b $part ]] || die "partition device $part did not appear"

uuid=$(cat /proc/sys/kernel/random/uuid)
mkfs.ext4 -q -L rootfs -U "$uuid" -E lazy_itable_init=0,lazy_journal_init=0 "$part"
mount "$part" "$mnt"
tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$tarball" -C "$mnt"

kvers=("$mnt"/boot/vmlinuz-*)
((${#kvers[@]} == 1)) && [[ -f ${kvers[0]} ]] || die "expected exactly one kernel in the rootfs, found: ${kvers[*]}"
kver=${kvers[0]##*/vmlinuz-}
[[ -f $mnt/boot/initrd.img-$kver ]] || die "no initrd for kernel $kver"

# per-instance identity: generated on first boot
: >"$mnt/etc/machine-id"
rm -f "$mnt/var/lib/dbus/machine-id" "$mnt"/etc/ssh/ssh_host_* "$mnt/var/lib/systemd/random-seed"
echo localhost >"$mnt/etc/hostname"
rm -rf "$mnt"/var/lib/cloud/* "$mnt"/tmp/* "$mnt"/var/tmp/*
find "$mnt/var/log" -type f -delete
rm -f "$mnt"/var/cache/debconf/*-old "$mnt"/var/lib/dpkg/*-old

echo "UUID=$uuid / ext4 defaults,errors=remount-ro 0 1" >"$mnt/etc/fstab"
install -D -m 0644 "$files/cloud.cfg" "$mnt/etc/cloud/cloud.cfg.d/99_vnode.cfg"
install -D -m 0644 "$files/renderer-$variant.cfg" "$mnt/etc/cloud/cloud.cfg.d/98_vnode_renderer.cfg"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$mnt/etc/resolv.conf"
chroot "$mnt" systemctl --quiet enable systemd-resolved.service
case $variant in
networkd | netplan)
	install -D -m 0644 "$files/wait-online.conf" \
		"$mnt/etc/systemd/system/systemd-networkd-wait-online.service.d/vnode.conf"
	chroot "$mnt" systemctl --quiet enable systemd-networkd.service
	;;
nm)
	# As on Fedora: NetworkManager alone, and cloud-init's network stage after it is online.
	install -D -m 0644 "$files/cloud-init-nm.service" "$mnt/etc/systemd/system/cloud-init.service"
	chroot "$mnt" systemctl --quiet enable NetworkManager.service NetworkManager-wait-online.service
	chroot "$mnt" systemctl --quiet mask systemd-networkd.service systemd-networkd.socket \
		systemd-networkd-wait-online.service
	;;
esac
chroot "$mnt" systemctl --quiet mask e2scrub_reap.service e2scrub_all.timer apt-daily.timer \
	apt-daily-upgrade.timer fstrim.timer systemd-binfmt.service proc-sys-fs-binfmt_misc.automount

# grub-probe finds the start of a loop partition with "udevadm info --query path" (HDIO_GETGEO
# fails on loop devices). Without udev on the host, a minimal stand-in answers from sysfs.
grub_path=$PATH
if ! command -v udevadm >/dev/null 2>&1; then
	mkdir -p "$tmp/bin"
	cat >"$tmp/bin/udevadm" <<'EOS'
#!/bin/sh
# stand-in for "udevadm info --query path --name DEV", the only call grub-probe makes
[ "$1 $2 $3 $4" = "info --query path --name" ] && [ -b "$5" ] || exit 1
majmin=$(stat -L -c '%t %T' "$5" | { read -r a b; printf '%d:%d' "0x$a" "0x$b"; })
p=$(readlink -e "/sys/dev/block/$majmin") || exit 1
echo "${p#/sys}"
EOS
	chmod 755 "$tmp/bin/udevadm"
	grub_path=$tmp/bin:$PATH
fi
PATH=$grub_path grub-install --target=i386-pc --no-floppy --boot-directory="$mnt/boot" \
	--modules="part_msdos ext2 search_fs_uuid" "$loop"
cat >"$mnt/boot/grub/grub.cfg" <<EOF
# vnode test image: hand-written, no update-grub in the image
set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux 12 (vnode test image, $variant)' {
	linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 quiet
	initrd /boot/initrd.img-$kver
}
EOF

fstrim "$mnt" # freed blocks would otherwise end up in the qcow2
sync -f "$mnt"
umount "$mnt"
losetup -d "$loop"
# A loop device still open (its filesystem mounted somewhere else) is only marked for autoclear:
# the disk would be converted before the filesystem's last writes reach it.
[[ -z $(losetup -n -j "$raw") ]] || die "$loop is still in use after umount (is the filesystem mounted in another mount namespace?)"
loop=""
run qemu-img convert -O qcow2 "$raw" "$tmp/image.qcow2"
chmod 644 "$tmp/image.qcow2"
# Never cache a broken image: check it as its boot will read it.
"$here/check.sh" "$tmp/image.qcow2" || die "the image fails the checks above; not cached"
mv "$tmp/image.qcow2" "$image"
t_disk=$((SECONDS - t0))

size=$(stat -c %s "$image")
log "disk: done in ${t_disk} s (kernel $kver, root UUID $uuid)"
log "timings: rootfs ${t_rootfs} s, disk ${t_disk} s, total $((SECONDS - t_start)) s"
log "image: $image ($((size / 1048576)) MiB qcow2, 2 GiB virtual)"

if [[ ${VNODE_TEST_IMAGE_KEEP_OLD:-0} != 1 ]]; then
	for old in "$dir"/debian12-vnode-test-"$variant"-*.qcow2 "$dir"/rootfs-"$suite"-"$variant"-*.tar; do
		[[ -f $old && $old != "$image" && $old != "$tarball" ]] || continue
		log "removing old $old"
		rm -f -- "$old"
	done
fi

echo "$image" >&3
