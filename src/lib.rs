//! vnode: spawn many fresh libvirt/qemu VMs at once from cloud images.
//!
//! Data flows one way: the config ([`config`]) and the specs ([`plan::spec`]) → planned nodes
//! (names, MACs, addresses, images: [`plan`], with [`images`]) → artifacts ([`node`]) → domain
//! ([`libvirt`]) → readiness and report ([`spawn`]), all on a hypervisor host ([`hosts`]).
//! Beside the flow: [`lab`] (the namespace lab), [`setup`] (`vnode host check|bridge`), [`ssh`]
//! (logins to guests and hosts), and the plumbing below everything: [`process`] (child processes,
//! the async runtime, the debug log) and [`text`] (value rules, quoting, tables, the terminal).
//! Only [`cli`], [`commands`] and the entry point know about the command line.

pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod error;
pub mod exit;
pub mod files;
pub mod fresh_state;
pub mod hosts;
pub mod images;
pub mod lab;
pub mod libvirt;
pub mod node;
pub mod plan;
pub mod process;
pub mod setup;
pub mod spawn;
pub mod ssh;
pub mod text;

mod run;
pub use run::run;
