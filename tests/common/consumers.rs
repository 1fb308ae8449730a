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

/// `dnsmasq --test -C FILE` accepts the file (and, as a control, rejects it with a bogus option).
pub fn dnsmasq_accepts(conf: &str) {
    let (ok, out) = check("dnsmasq", &["--test", "-C"], conf, "plan.conf");
    assert!(ok, "dnsmasq rejected the plan: {out}");
    let (ok, _) = check(
        "dnsmasq",
        &["--test", "-C"],
        &format!("{conf}bogus-option=1\n"),
        "plan.conf",
    );
    assert!(
        !ok,
        "dnsmasq --test accepted a bogus option: the check is not reading the file"
    );
}

/// `dhcpd -t -cf FILE` accepts the file (and rejects a broken copy).
pub fn dhcpd_accepts(conf: &str) {
    let (ok, out) = check("dhcpd", &["-t", "-cf"], conf, "dhcpd.conf");
    assert!(ok, "dhcpd rejected the plan: {out}");
    let (ok, _) = check(
        "dhcpd",
        &["-t", "-cf"],
        &conf.replacen("hardware ethernet 52", "hardware ethernet zz", 1),
        "dhcpd.conf",
    );
    assert!(
        !ok,
        "dhcpd -t accepted a broken MAC: the check is not reading the file"
    );
}
