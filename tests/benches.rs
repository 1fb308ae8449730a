//! The benchmarks cannot rot: each runs in its smoke mode (tiny N, one round) against the debug
//! binary, and a benchmark that stops working fails here with what it printed.

mod common;

use std::path::Path;
use std::process::Command;

fn smoke(script: &str, args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(script))
        .args(args)
        .env("VNODE_BIN", env!("CARGO_BIN_EXE_vnode"))
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
    assert!(out.contains("ratio upload/scp speed"), "{out}");
}
