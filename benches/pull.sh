#!/usr/bin/env bash
# Benchmark: a verified `vnode images pull` of a 1 GiB qcow2 from nginx on 127.0.0.1, against
# `curl | sha256sum` and `curl | openssl dgst -sha256` in the same run.
#
#   benches/pull.sh [RUNS]        (default 3 runs each; the best run counts)
#   benches/pull.sh --smoke       (one run of a 64 MiB image: checks the benchmark works; CI)
#   VNODE_BIN=target/debug/vnode benches/pull.sh ...   (a given binary; default: a release build)
#
# Needs nginx (Debian nginx-light), curl, openssl, qemu-img. Starts its own nginx with its own
# config in a temp dir and stops it (by PID) at the end; removes the 1 GiB file. vnode's run
# includes what the pipelines do not: writing the image to disk, fsync, the qcow2 check and the
# rename into the cache.
set -euo pipefail

SIZE_ARG=1G
if [[ ${1:-} == --smoke ]]; then RUNS=1 SIZE_ARG=64M; else RUNS=${1:-3}; fi
PORT=${VNODE_BENCH_PORT:-18089}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n ${VNODE_BIN:-} ]]; then
  VNODE=$(realpath "$VNODE_BIN")
else
  VNODE="$ROOT/target/release/vnode"
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vnode-bench.XXXXXX")
NGINX_PID=
cleanup() {
    if [[ -n "$NGINX_PID" ]]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www" "$WORK/tmp"
# nginx's workers run as an unprivileged user: let them read the files.
chmod 755 "$WORK" "$WORK/www"
echo "making a $SIZE_ARG qcow2 image..."
qemu-img create -q -f qcow2 -o preallocation=full "$WORK/www/bench.qcow2" "$SIZE_ARG"
SIZE=$(stat -c %s "$WORK/www/bench.qcow2")
DIGEST=$(openssl dgst -sha256 -r "$WORK/www/bench.qcow2" | cut -d' ' -f1)
echo "SHA256 (bench.qcow2) = $DIGEST" > "$WORK/www/CHECKSUM"

cat > "$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    default_type application/octet-stream;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/www;
    }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf" &
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/bench.qcow2"
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/CHECKSUM" && break
    sleep 0.1
done

cat > "$WORK/images.toml" <<EOF
[[image]]
name = "bench"
family = "bench"
version = "1"
osinfo = "linux2022"
url = "$URL"
checksum_url = "http://127.0.0.1:$PORT/CHECKSUM"
checksum_algo = "sha256"
EOF
printf 'cache_dir = "%s"\ncatalog = "%s"\n' "$WORK/cache" "$WORK/images.toml" > "$WORK/config.toml"

# Warm the page cache so that every contender reads the file from memory on the server side.
curl -s "$URL" > /dev/null

now() { date +%s.%N; }
best() { sort -g | head -1; }
mibps() { awk -v s="$SIZE" -v t="$1" 'BEGIN { printf "%.0f", s / t / 1048576 }'; }

time_it() {
    local start end
    start=$(now)
    if ! "$@"; then
        echo "$1 failed" >&2
        [[ $1 != vnode_* ]] || cat "$WORK/vnode.log" >&2 2>/dev/null || true
        exit 1
    fi
    end=$(now)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

curl_sha256sum() { [[ $(curl -s "$URL" | sha256sum | cut -d' ' -f1) == "$DIGEST" ]]; }
curl_openssl() { [[ $(curl -s "$URL" | openssl dgst -sha256 -r | cut -d' ' -f1) == "$DIGEST" ]]; }
vnode_pull() {
    rm -rf "$WORK/cache"
    # The checksum file is unsigned here: the signature check (microseconds) is not what is measured.
    env -u http_proxy -u HTTP_PROXY "$VNODE" images pull --no-signature bench --config "$WORK/config.toml" 2> "$WORK/vnode.log"
}
# The hashing contenders all read the image vnode just pulled, after it was read into the page
# cache (vnode writes with O_DIRECT, so the pull itself leaves it on disk only).
IMAGE="$WORK/cache/bench.qcow2"
warm_image() { cat "$IMAGE" > /dev/null; }
sha256sum_file() { sha256sum "$IMAGE" > /dev/null; }
openssl_file() { openssl dgst -sha256 "$IMAGE" > /dev/null; }
vnode_verify() { "$VNODE" images verify bench --config "$WORK/config.toml" > /dev/null; }

# Rounds take turns, so that load from elsewhere on the machine hits every contender alike.
CONTENDERS=(curl_sha256sum curl_openssl vnode_pull sha256sum_file openssl_file vnode_verify)
declare -A T
for _ in $(seq "$RUNS"); do
    for name in "${CONTENDERS[@]}"; do
        [[ $name != sha256sum_file ]] || warm_image
        t=$(time_it "$name")
        T[$name]=$(printf '%s\n%s\n' "${T[$name]:-}" "$t" | sed '/^$/d' | best)
    done
done

echo
echo "$SIZE_ARG ($SIZE bytes) from nginx on 127.0.0.1, best of $RUNS; $(nproc) CPUs, sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
printf '  %-40s %7s s  %6s MiB/s\n' \
    "curl | sha256sum" "${T[curl_sha256sum]}" "$(mibps "${T[curl_sha256sum]}")" \
    "curl | openssl dgst -sha256" "${T[curl_openssl]}" "$(mibps "${T[curl_openssl]}")" \
    "vnode images pull (verified, on disk)" "${T[vnode_pull]}" "$(mibps "${T[vnode_pull]}")"
awk -v v="${T[vnode_pull]}" -v o="${T[curl_openssl]}" -v s="${T[curl_sha256sum]}" \
    'BEGIN { printf "  ratio vnode/openssl pipeline: %.2f   vnode/sha256sum pipeline: %.2f\n", o / v, s / v }'
# Hashing alone (file in the page cache): does sha2 use the SHA extensions like openssl does?
echo "hashing only, file in the page cache:"
printf '  %-40s %7s s  %6s MiB/s\n' \
    "sha256sum FILE" "${T[sha256sum_file]}" "$(mibps "${T[sha256sum_file]}")" \
    "openssl dgst -sha256 FILE" "${T[openssl_file]}" "$(mibps "${T[openssl_file]}")" \
    "vnode images verify (sha2 crate)" "${T[vnode_verify]}" "$(mibps "${T[vnode_verify]}")"
echo "vnode's own report: $(tail -1 "$WORK/vnode.log")"
