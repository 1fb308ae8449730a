//! The gate of every test that needs root: network namespaces, the namespace lab, real VMs.
//!
//! Such a test starts with `if gate::require_root_or_skip(Needs::Lab) { return; }`. Without root
//! the test fails, saying how to skip these tests; as root, a missing program fails it with the
//! Debian package to install. Only `VNODE_SKIP_VM_TESTS=1` skips it, and the skip is printed,
//! so a run that tested nothing never looks like one that passed.

use std::io::Write;
use std::path::Path;

/// The variable that skips every gated test, on purpose.
pub const SKIP_VAR: &str = "VNODE_SKIP_VM_TESTS";

/// Every test binary (`tests/NAME.rs` or `tests/NAME/main.rs`) that has tests behind this gate,
/// with the most any of them needs. The one list: the gate refuses a test from a binary that is
/// not here, and docs/development.md is held to it.
pub const GATED: &[(&str, Needs)] = &[
    ("benches", Needs::Vms),
    ("host_bridge", Needs::Netns),
    ("image_builder", Needs::Vms),
    ("storage", Needs::Lab),
    ("storage_and_interrupts", Needs::Mount),
    ("vm", Needs::Vms),
];

/// What a gated test needs besides root; each level includes the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needs {
    /// Mounting file systems (a small tmpfs that fills up, see tmpfs.rs).
    Mount,
    /// Network namespaces made with iproute2.
    Netns,
    /// vnode's namespace lab: its libvirtd, virtlogd, NAT network and site DHCP/DNS.
    Lab,
    /// Guests booted in the lab from the Debian test image (built by tests/image/build.sh).
    Vms,
}

/// A program on PATH (or in /usr/sbin, /sbin) and the Debian package that ships it.
struct Tool {
    program: &'static str,
    package: &'static str,
}

const fn tool(program: &'static str, package: &'static str) -> Tool {
    Tool { program, package }
}

const MOUNT: &[Tool] = &[tool("mount", "mount"), tool("umount", "mount")];

const NETNS: &[Tool] = &[tool("ip", "iproute2")];

const LAB: &[Tool] = &[
    tool("libvirtd", "libvirt-daemon-system"),
    tool("virtlogd", "libvirt-daemon-system"),
    tool("virsh", "libvirt-clients"),
    tool("qemu-system-x86_64", "qemu-system-x86"),
    tool("dnsmasq", "dnsmasq-base"),
    tool("iptables", "iptables"),
    tool("dig", "dnsutils"),
];

const VMS: &[Tool] = &[
    tool("virt-install", "virtinst"),
    tool("qemu-img", "qemu-utils"),
    tool("ssh", "openssh-client"),
    tool("ssh-keygen", "openssh-client"),
    tool("ping", "iputils-ping"),
    tool("cloud-localds", "cloud-image-utils"),
    // tests/image/build.sh
    tool("mmdebstrap", "mmdebstrap"),
    tool("grub-install", "grub2-common"),
    tool("sfdisk", "fdisk"),
    tool("mkfs.ext4", "e2fsprogs"),
];

impl Needs {
    fn tools(self) -> impl Iterator<Item = &'static Tool> {
        let levels: [(Needs, &'static [Tool]); 4] = [
            (Needs::Mount, MOUNT),
            (Needs::Netns, NETNS),
            (Needs::Lab, LAB),
            (Needs::Vms, VMS),
        ];
        levels
            .into_iter()
            .filter(move |(level, _)| *level <= self)
            .flat_map(|(_, tools)| tools)
    }
}

/// Returns true when the test is to be skipped (`VNODE_SKIP_VM_TESTS=1`, printed to stderr); the
/// caller returns then. Panics, failing the test, when not root or when a program is missing.
#[must_use = "the test must return when the gate says skip"]
pub fn require_root_or_skip(needs: Needs) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    let binary = test_binary();
    match GATED.iter().find(|(name, _)| *name == binary) {
        Some((_, most)) => assert!(
            needs <= *most,
            "{test}: needs {needs:?}, but tests/common/gate.rs lists {binary} with {most:?}; \
             raise it there"
        ),
        None => panic!(
            "{test}: the test binary {binary} is not in gate::GATED (tests/common/gate.rs); add \
             it there, and to the list of root tests in docs/development.md"
        ),
    }
    match std::env::var(SKIP_VAR).as_deref() {
        Ok("1") => {
            // Past libtest's capture (which takes only `eprintln!`), so that every run shows it.
            let line = format!("SKIPPED ({SKIP_VAR}=1): {test}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            return true;
        }
        Ok("0") | Ok("") | Err(std::env::VarError::NotPresent) => {}
        Ok(other) => panic!("{SKIP_VAR}={other:?}: set it to 1 to skip the VM tests, or unset it"),
        Err(e) => panic!("{SKIP_VAR}: {e}"),
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "{test}: this test needs root (network namespaces, libvirtd, VMs); run as root, \
             or set {SKIP_VAR}=1 to skip the VM tests explicitly"
        );
    }
    let missing: Vec<String> = needs
        .tools()
        .filter(|t| !on_path(t.program))
        .map(|t| format!("{} (Debian package {})", t.program, t.package))
        .collect();
    assert!(
        missing.is_empty(),
        "{test}: missing {}; install them (bash .ci/install-deps)",
        missing.join(", ")
    );
    false
}

/// Whether `program` is an executable in PATH, /usr/sbin or /sbin (libvirtd lives in /usr/sbin,
/// which a non-login root shell may lack in PATH).
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .any(|dir| {
            std::fs::metadata(Path::new(&dir).join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The name of the running test binary: cargo builds `tests/NAME.rs` as `NAME-<hash>`.
fn test_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}
