//! The benchmarks cannot rot: each runs in its smoke mode (tiny N, one round) against the debug
//! binary, and a benchmark that stops working fails here with what it printed.

mod common;

use std::path::Path;
use std::process::Command;

fn smoke(script: &str, args: &[&str]) -> String {
    smoke_with(script, args, &[])
}

/// Like [`smoke`], with more environment for the script.
fn smoke_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(script))
        .args(args)
        .env("VNODE_BIN", env!("CARGO_BIN_EXE_vnode"))
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} {args:?} failed:\n{text}");
    text
}

#[test]
fn prep_benchmark_runs() {
    let out = smoke("benches/prep.sh", &["--smoke"]);
    assert!(
        out.contains("ms per node") && out.contains("faster"),
        "{out}"
    );
}

#[test]
fn hostile_input_benchmark_runs() {
    let out = smoke("benches/hostile_input.sh", &["--smoke"]);
    assert!(
        out.contains("generated cases over") && out.contains("0 panics"),
        "{out}"
    );
}

#[test]
fn pull_benchmark_runs() {
    let out = smoke("benches/pull.sh", &["--smoke"]);
    assert!(out.contains("ratio vnode/openssl pipeline"), "{out}");
}

#[test]
fn hosts_benchmark_runs() {
    if common::gate::require_root_or_skip(common::gate::Needs::Vms) {
        return;
    }
    let out = smoke("benches/hosts.sh", &["--smoke"]);
    assert!(
        out.contains("ratio vnode/scp speed") && out.contains("virsh vol-upload alone"),
        "{out}"
    );
}

#[test]
fn fresh_benchmark_runs() {
    if common::gate::require_root_or_skip(common::gate::Needs::Vms) {
        return;
    }
    let out = smoke("benches/fresh.sh", &["--smoke"]);
    assert!(
        out.contains("N=1 round 1 reset: returned at")
            && out.contains("N=1 round 1 respawn: returned at")
            && out.contains("ratio save/reset")
            && out.contains("ratio save/respawn")
            && out.contains("On paper, KVM host"),
        "{out}"
    );
}

#[test]
fn ssh_overhead_benchmark_runs() {
    // Its harness is a test (tests/ssh_overhead.rs), run by cargo in the profile of this build.
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let out = smoke_with(
        "benches/ssh_overhead.sh",
        &["--smoke"],
        &[("SSH_OVERHEAD_PROFILE", profile)],
    );
    assert!(
        out.contains("T0 -> facts read (vnode reports ssh)")
            && out.contains("via host: 3 rounds")
            && out.contains("CPU time per node"),
        "{out}"
    );
}
