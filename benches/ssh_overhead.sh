#!/usr/bin/env bash
# Tool overhead, isolated (issue #17, item 6): from the instant a guest's sshd starts accepting to
# the instant vnode reports ssh (its bring-up has passed the banner wait, the pinned-key login and
# the facts read), against a russh stand-in guest on 127.0.0.1 whose port refuses connections until
# that instant, while vnode is already polling; directly and through a libvirt host's sshd (a fake
# one, its connection already open). Prints median, p90 and max, split by stage, and vnode's CPU
# time per node.
#
#   benches/ssh_overhead.sh [ROUNDS]   (default 21 rounds per variant; exits non-zero when a
#                                       variant's median exceeds 0.3 s)
#   benches/ssh_overhead.sh --smoke    (3 rounds, no bound: checks the benchmark works; CI)
#   SSH_OVERHEAD_PROFILE=dev benches/ssh_overhead.sh ...   (a given cargo profile; default: release,
#                                       built here; --smoke: dev, the tests' build)
#
# The harness is tests/ssh_overhead.rs, an ignored test run here with --ignored. Loopback only; it
# starts no process but cargo and the test binary.
set -euo pipefail
usage() { echo "usage: $0 [--smoke | ROUNDS]" >&2; exit 2; }
case "${1:-}" in
  --smoke) ROUNDS=3 ENFORCE=0 PROFILE=${SSH_OVERHEAD_PROFILE:-dev} ;;
  "" | [0-9]*) ROUNDS=${1:-21} ENFORCE=1 PROFILE=${SSH_OVERHEAD_PROFILE:-release} ;;
  *) usage ;;
esac
[[ $# -le 1 && $ROUNDS =~ ^[1-9][0-9]*$ ]] || usage
cd "$(dirname "$0")/.."
SSH_OVERHEAD_ROUNDS=$ROUNDS SSH_OVERHEAD_ENFORCE=$ENFORCE exec "${CARGO:-cargo}" test --quiet \
  --profile "$PROFILE" --test ssh_overhead -- --ignored --exact ssh_overhead --nocapture
