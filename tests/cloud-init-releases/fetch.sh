#!/usr/bin/env bash
# Fetches the cloud-init releases that tests/renderers.rs runs beside the host's own (Debian 12's
# 22.4, from the installed package): the builds of Debian 13 "trixie" (25.1) and of "sid" (26.2
# or later), straight from Debian's archive, and unpacks each with `dpkg -x`. Nothing on the
# machine changes: apt runs with a private configuration (sources, lists, cache) in a temp dir, and
# the packages are never installed.
#
# Usage: tests/cloud-init-releases/fetch.sh
#   VNODE_TEST_CLOUD_INIT_DIR   cache directory (default /var/cache/vnode-test-cloud-init as root,
#                               else ${XDG_CACHE_HOME:-~/.cache}/vnode-test-cloud-init)
#   VNODE_TEST_CLOUD_INIT_MIRROR   the archive (default http://deb.debian.org/debian)
# Prints one line per suite on stdout: SUITE VERSION PYTHONPATH; progress goes to stderr.
# A suite already unpacked in the cache is reused (delete the directory to pick up a newer build).
set -euo pipefail

suites=(trixie sid)
mirror=${VNODE_TEST_CLOUD_INIT_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [[ $(id -u) -eq 0 ]]; then
	default_dir=/var/cache/vnode-test-cloud-init
else
	default_dir=${XDG_CACHE_HOME:-$HOME/.cache}/vnode-test-cloud-init
fi
dir=$(realpath -m -- "${VNODE_TEST_CLOUD_INIT_DIR:-$default_dir}")

log() { printf 'fetch.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A suite is done when DIR/SUITE/version names a release whose python package is unpacked.
report() { # SUITE -> prints its line, or fails
	local s=$1 v
	[[ -f $dir/$s/version ]] || return 1
	v=$(<"$dir/$s/version")
	[[ -d $dir/$s/$v/usr/lib/python3/dist-packages/cloudinit ]] || return 1
	printf '%s %s %s\n' "$s" "$v" "$dir/$s/$v/usr/lib/python3/dist-packages"
}
all_cached() {
	local s
	for s in "${suites[@]}"; do report "$s" >/dev/null || return 1; done
}

if all_cached; then
	for s in "${suites[@]}"; do report "$s"; done
	exit 0
fi

for tool in apt-get dpkg-deb flock; do
	command -v "$tool" >/dev/null || die "$tool is missing (Debian packages apt, dpkg, util-linux)"
done
[[ -r $keyring ]] || die "$keyring is missing (Debian package debian-archive-keyring)"

mkdir -p "$dir"
# Test binaries run side by side: one fetch at a time, the others reuse its result.
exec 9>"$dir/.lock"
flock 9
if all_cached; then
	for s in "${suites[@]}"; do report "$s"; done
	exit 0
fi

tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/preferences.d" "$tmp/debs"
: >"$tmp/status"
for s in "${suites[@]}"; do
	printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$s"
done >"$tmp/sources.list"
apt_opts=(
	-o "Dir::Etc::SourceList=$tmp/sources.list"
	-o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$tmp/lists"
	-o "Dir::State::Status=$tmp/status"
	-o "Dir::Cache=$tmp/cache"
	-o Dir::Etc::Preferences=/dev/null
	-o "Dir::Etc::PreferencesParts=$tmp/preferences.d"
	-o APT::Architecture=amd64
	-o Acquire::Languages=none
	# The temp dir is root's: apt's _apt sandbox user could not write into it.
	-o APT::Sandbox::User="$(id -un)"
	-qq
)
log "reading the package lists of ${suites[*]} from $mirror"
apt-get "${apt_opts[@]}" update >&2 || die "apt-get update with the private sources failed (is $mirror reachable?)"
for s in "${suites[@]}"; do
	rm -f "$tmp/debs"/*.deb
	(cd "$tmp/debs" && apt-get "${apt_opts[@]}" download "cloud-init/$s" >&2) ||
		die "could not download cloud-init from $s"
	deb=$(find "$tmp/debs" -name 'cloud-init_*.deb' -print -quit)
	[[ -n $deb ]] || die "apt-get download left no cloud-init package for $s"
	version=$(dpkg-deb -f "$deb" Version)
	[[ $version =~ ^[0-9A-Za-z.+~:-]+$ ]] || die "unexpected version '$version' in $deb"
	rm -rf -- "${dir:?}/$s" "$dir/$s.new"
	mkdir -p "$dir/$s.new"
	dpkg-deb -x "$deb" "$dir/$s.new/$version"
	printf '%s\n' "$version" >"$dir/$s.new/version"
	mv -T "$dir/$s.new" "$dir/$s"
	log "$s: cloud-init $version"
done
for s in "${suites[@]}"; do report "$s"; done
