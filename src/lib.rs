//! vnode: spawn many fresh libvirt/qemu VMs at once from cloud images.
//!
//! Data flows one way: specs ([`spec`]) → plan (names, MACs, images: [`pool`], [`mac`], [`catalog`])
//! → artifacts ([`node`]) → domain ([`libvirt`]) → readiness and report ([`spawn`]).

pub mod accel;
pub mod assets;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod config;
pub mod context;
pub mod debug_log;
pub mod derive;
pub mod error;
pub mod host;
pub mod images;
pub mod lab;
pub mod libvirt;
pub mod mac;
pub mod manpage;
pub mod node;
pub mod plan;
pub mod pool;
pub mod qcow2;
pub mod spawn;
pub mod spec;
pub mod ssh;
pub mod table;
pub mod terminal;
pub mod toml_file;

mod run;
pub use run::{not_yet, run};
