//! The one harness of vnode's integration tests, after just's and cloud-hypervisor's:
//!
//! - `broken_disk`: copies of the test image broken the ways real images break;
//! - `cli`: the real binary, `Vnode::new().config(..).args(..).ok()` (every run of it goes here);
//! - `lab`: vnode's namespace lab, `Lab::up(..)`, with `spawn`, `ssh`, `import`, `json` in it;
//! - `e2e`: tests with real VMs: `VmLab::up(..)` (gate, test image, site, lab), `assert_no_nodes`;
//! - `json`: vnode's JSON output, parsed with useful messages;
//! - `netns`: a network namespace owned by one test;
//! - `tmpfs`: a small tmpfs owned by one test, to fill up;
//! - `toml_text`: TOML string literals that hold exactly a given value;
//! - `consumers`: the real programs (dnsmasq, dhcpd) that judge what vnode writes;
//! - `cloud_init_releases`: the cloud-init releases (22.4, 25.1, 26.2) that judge the seeds;
//! - `gate`: the gate of every test that needs root, and the one list of the test binaries that
//!   have such tests (`gate::GATED`);
//! - `http_server`, `signing`, `ssh_servers`: stand-ins that tests talk to (an HTTP server on
//!   127.0.0.1 with scripted faults, OpenPGP signing keys, ssh servers for guests and hosts).
//!
//! Tests that need root (a tmpfs, network namespaces, the lab's libvirtd, VMs) start with
//! `if gate::require_root_or_skip(Needs::..) { return; }` (or `let Some(vms) = VmLab::up(..) else
//! { return; };`, which passes the same gate). Not run as root, such a test **fails**,
//! saying so; as root, a missing program fails it with the Debian package to install.
//! `VNODE_SKIP_VM_TESTS=1` skips them explicitly, each printing
//! `SKIPPED (VNODE_SKIP_VM_TESTS=1): <test>` to stderr, past the test harness's capture, so
//! every run shows it. Which test binaries have such tests is `gate::GATED`, the one list: the
//! gate refuses a test of a binary that is not in it, and the docs are held to it.
#![allow(dead_code)]

pub mod broken_disk;
pub mod cli;
pub mod cloud_init_releases;
pub mod consumers;
pub mod e2e;
pub mod gate;
pub mod http_server;
pub mod json;
pub mod lab;
pub mod netns;
pub mod signing;
pub mod ssh_servers;
pub mod tmpfs;
pub mod toml_text;
