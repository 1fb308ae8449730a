//! vnode's end-to-end tests with real VMs (root; TCG guests in namespace labs), in one test binary
//! so that they run side by side: `cargo test` runs test binaries one after another but the tests
//! of one binary on several threads (four: `.cargo/config.toml`). A test that boots or restores
//! guests takes boots from the [`budget`] first, so that the tests running at once never boot more
//! guests than the machine can take (its CPUs and one more: on two cores a fourth TCG boot halves
//! the throughput), while a test that waits, checks or boots a single guest leaves room for another.
//!
//! - `lab`: the namespace lab itself (`lab up/down`, hosts, leases);
//! - `spawn`: nodes in parallel, a broken one, refuse, `--force`, destroy;
//! - `derive`: derived images;
//! - `faults`: a dead guest, a restarting libvirtd, Ctrl-C, a failed define;
//! - `fresh`: fresh states: warm, respawn and reset from them, Ctrl-C, cold fallbacks;
//! - `guest_variants`: the three network renderers, with and without a public lease;
//! - `several_hosts`: nodes spread over three libvirt hosts.

#[path = "../common/mod.rs"]
mod common;

mod budget;

mod derive;
mod faults;
mod fresh;
mod guest_variants;
mod lab;
mod running;
mod several_hosts;
mod spawn;
