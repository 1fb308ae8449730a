//! The one harness of vnode's integration tests, after just's and cloud-hypervisor's:
//!
//! - `cli`: the real binary, `Vnode::new().config(..).args(..).ok()` (every run of it goes here);
//! - `lab`: vnode's namespace lab, `Lab::up(..)`, with `spawn`, `ssh`, `import`, `json` in it;
//! - `e2e`: tests with real VMs: `VmLab::up(..)` (gate, test image, site, lab), `assert_no_nodes`;
//! - `json`: vnode's JSON output, parsed with useful messages;
//! - `netns`: a network namespace owned by one test;
//! - `tmpfs`: a small tmpfs owned by one test, to fill up;
//! - `consumers`: the real programs (dnsmasq, dhcpd) that judge what vnode writes;
//! - `gate`: the gate of every test that needs root.
//!
//! Tests that need root (network namespaces, the lab's libvirtd, VMs) start with
//! `if gate::require_root_or_skip(Needs::..) { return; }` (or `let Some(vms) = VmLab::up(..) else
//! { return; };`, which passes the same gate). Not run as root, such a test **fails**,
//! saying so; as root, a missing program fails it with the Debian package to install.
//! `VNODE_SKIP_VM_TESTS=1` skips them explicitly, each printing
//! `SKIPPED (VNODE_SKIP_VM_TESTS=1): <test>` to stderr, past the test harness's capture, so
//! every run shows it. It skips the VM tests (tests/vm/: lab, spawn, derive, faults,
//! guest_variants, several_hosts), tests/host_bridge.rs, tests/image_builder.rs and the full-disk tests of
//! tests/storage_and_interrupts.rs; every other test runs without root.
#![allow(dead_code)]

pub mod cli;
pub mod consumers;
pub mod e2e;
pub mod gate;
pub mod json;
pub mod lab;
pub mod netns;
pub mod tmpfs;
