//! The real programs that consume what vnode writes, as judges in tests.

use std::process::Command;

fn check(program: &str, args: &[&str], file_text: &str, name: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, file_text).unwrap();
    let out = Command::new(program)
        .args(args)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed for this test (see .ci/install-deps): {e}")
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `program ARGS FILE` accepts `conf`, and, as a control that it reads the file, rejects
/// `broken`.
fn accepts(program: &str, args: &[&str], name: &str, conf: &str, broken: &str, damage: &str) {
    let (ok, out) = check(program, args, conf, name);
    assert!(ok, "{program} rejected the plan: {out}");
    let (ok, _) = check(program, args, broken, name);
    assert!(
        !ok,
        "{program} accepted {damage}: the check is not reading the file"
    );
}

/// `dnsmasq --test -C FILE` accepts the file (and rejects it with a bogus option).
pub fn dnsmasq_accepts(conf: &str) {
    let broken = format!("{conf}bogus-option=1\n");
    accepts(
        "dnsmasq",
        &["--test", "-C"],
        "plan.conf",
        conf,
        &broken,
        "a bogus option",
    );
}

/// `dhcpd -t -cf FILE` accepts the file (and rejects a broken copy).
pub fn dhcpd_accepts(conf: &str) {
    let broken = conf.replacen("hardware ethernet 52", "hardware ethernet zz", 1);
    accepts(
        "dhcpd",
        &["-t", "-cf"],
        "dhcpd.conf",
        conf,
        &broken,
        "a broken MAC",
    );
}
