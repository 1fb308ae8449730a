//! A network namespace owned by one test: created with a unique name, deleted on drop (also when
//! the test fails). Everything a test creates in it disappears with it.

use std::process::Command;

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with `lo` up (the test passed `gate::require_root_or_skip` first).
    pub fn new(tag: &str) -> Netns {
        let name = format!("vnode-t-{tag}-{}", std::process::id());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip (iproute2) is installed");
        assert!(status.success(), "ip netns add {name} failed");
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs and asserts success.
    pub fn run(&self, argv: &[&str]) {
        let out = self.command(argv[0]).args(&argv[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{argv:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
