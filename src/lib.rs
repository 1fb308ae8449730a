//! vnode: spawn many fresh libvirt/qemu VMs at once from cloud images.
//!
//! Data flows one way: specs ([`spec`]) → planned nodes (names, MACs, addresses, images:
//! [`planned`], built on [`pool`], [`mac`], [`catalog`], [`images`]) → artifacts ([`node`]) →
//! domain ([`libvirt`]) → readiness and report ([`spawn`]), all on a hypervisor host
//! ([`hypervisor`]). Only [`cli`], [`commands`] and the entry point know about the command line.

pub mod accel;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod debug_log;
pub mod derive;
pub mod error;
pub mod exec;
pub mod exit;
pub mod host;
pub mod hosts;
pub mod hypervisor;
pub mod images;
pub mod ip_json;
pub mod lab;
pub mod libvirt;
pub mod mac;
pub mod names;
pub mod node;
pub mod percent;
pub mod plan;
pub mod planned;
pub mod pool;
pub mod qcow2;
pub mod runtime;
pub mod shell;
pub mod spawn;
pub mod spec;
pub mod ssh;
pub mod table;
pub mod terminal;
pub mod toml_file;

mod run;
pub use run::run;
