#!/usr/bin/env bash
# Hostile input at scale: every property test of vnode's parsers, validators and writers, each with
# CASES generated inputs (arbitrary bytes and near misses of hypervisors' and guests' answers,
# specs, configs, seeds loaded by cloud-init's own loaders, ssh configs and inventories judged by
# `ssh -G` and `ansible-inventory`). A case that panics or is read back wrong fails its test, and
# the run with it.
#
#   benches/hostile_input.sh [CASES]     (default 1000 cases per property, release build)
#   benches/hostile_input.sh --smoke     (64 cases per property, debug build: checks the harness; CI)
#
# Prints, per test target, its properties, the cases they ran and the seconds; then the total. The
# properties are counted from the sources (`proptest!` blocks); tests/config_props.rs runs its own
# fixed 10,000 cases and tests/login_files.rs and tests/seeds.rs take CASES as the number of
# generated values they render. Needs what `cargo test` needs (`bash .ci/install-deps`), including
# the cloud-init releases of tests/seeds.rs (fetched by it when absent). Touches nothing outside
# the build directory and temporary directories.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --smoke ]]; then CASES=64 PROFILE=(); else CASES=${1:-1000} PROFILE=(--release); fi
[[ $CASES =~ ^[1-9][0-9]*$ ]] || { echo "hostile_input.sh: CASES must be a positive number" >&2; exit 1; }

# properties FILE...: how many property tests the files define (a `fn` inside a `proptest!` block,
# or a `proptest!(config, |...|` closure call).
properties() {
  awk '
    /proptest!\(/ { n++ }
    /proptest! *\{/ { inside = 1; depth = 0 }
    inside {
      if ($0 ~ /^[[:space:]]*(pub )?fn [a-z_0-9]+/) n++
      depth += gsub(/\{/, "{"); depth -= gsub(/\}/, "}")
      if (depth <= 0 && $0 ~ /\}/) inside = 0
    }
    END { print n + 0 }
  ' "$@"
}

total_props=0 total_cases=0
run() { # run LABEL PROPS CASES_PER_PROP CARGO_TARGET_ARGS...
  local label=$1 props=$2 per=$3 t0=$SECONDS
  shift 3
  if ! PROPTEST_CASES=$CASES cargo test "${PROFILE[@]}" --quiet "$@" > "$log" 2>&1; then
    cat "$log" >&2
    echo "hostile_input.sh: $label failed (output above)" >&2
    exit 1
  fi
  printf '%-28s %3d properties x %6d cases  %5d s\n' "$label" "$props" "$per" $((SECONDS - t0))
  total_props=$((total_props + props))
  total_cases=$((total_cases + props * per))
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build "${PROFILE[@]}" --quiet --tests
lib_files=$(grep -rl 'proptest!' src)
# shellcheck disable=SC2086
run "library (src/)" "$(properties $lib_files)" "$CASES" --lib
run "tests/hostile_answers.rs" "$(properties tests/hostile_answers.rs)" "$CASES" --test hostile_answers
if [[ ${#PROFILE[@]} -gt 0 ]]; then # its fixed 10,000 cases: not in the smoke run
  run "tests/config_props.rs" "$(properties tests/config_props.rs)" 10000 --test config_props
fi
run "tests/seeds.rs" 1 "$CASES" --test seeds
run "tests/login_files.rs" 1 "$CASES" --test login_files
echo "total: $total_cases generated cases over $total_props properties, 0 failures, 0 panics"
