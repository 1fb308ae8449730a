//! Failures of the commands themselves (not of the modules they call, which have their own
//! errors): what a command found wrong at its end, each with the message it prints.

use std::io;
use std::path::PathBuf;

use crate::hosts::hypervisor::RemoveError;
use crate::spawn::report::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot write the script: {0}")]
    WriteScript(#[source] io::Error),
    #[error("cannot write into {}: {source}", dir.display())]
    WriteAssets {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Yaml(#[source] serde_norway::Error),
    /// A node's ssh options that ssh could not read as meant.
    #[error(transparent)]
    Login(#[from] crate::ssh::config_file::LoginError),
    /// `exec` of a program that replaces vnode (virsh console, ssh) returned.
    #[error("cannot run {program}: {source}{hint}")]
    Exec {
        program: &'static str,
        #[source]
        source: io::Error,
        /// What to do about it, with its leading "; ", or nothing.
        hint: &'static str,
    },
    #[error("{node}: cannot read {}: {source}", path.display())]
    ReadConsoleLog {
        node: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{node} has no known address")]
    NoAddress { node: String },
    #[error("{node}: no host has it (`vnode list` shows the nodes)")]
    NoHostHasIt { node: String },
    #[error("{node}: not found on the hosts that answered; these did not: {}", silent.join("; "))]
    NotOnAnsweringHosts {
        node: String,
        /// "HOST: ERROR" per host that did not answer.
        silent: Vec<String>,
    },
    #[error(
        "{node} is not a ready vnode node (no record in {}); `vnode list` shows the nodes",
        state_dir.display()
    )]
    NotReady { node: String, state_dir: PathBuf },
    #[error("not applied")]
    NotApplied,
    #[error("{0}; the plan above shows what was meant, the host may be half-way")]
    BridgeHalfWay(#[source] crate::setup::bridge::BridgeError),
    #[error("{0} check(s) failed: this host cannot run vnode as configured")]
    ChecksFailed(usize),
    #[error("{down} of {all} hosts do not answer; leave them out of a spawn with --skip-host")]
    HostsDown { down: usize, all: usize },
    /// The nodes `destroy` could not remove, a line each.
    #[error("{}", .0.join("\n"))]
    NotDestroyed(Vec<String>),
    #[error(
        "cannot remove the fresh states built on image {image}: {source}; the image was kept \
         (remove the states with `vnode destroy --purge NODE`, then the image)"
    )]
    StatesNotRemoved {
        image: String,
        #[source]
        source: Box<crate::hosts::hypervisor::RemoveError>,
    },
    /// `vnode reset` of nodes vnode has no record of.
    #[error(
        "{}: no such node (no node.json in {}); reset brings back nodes that were spawned — \
         `vnode list` shows them; nothing was changed",
        nodes.join(", "),
        state_dir.display()
    )]
    NothingToReset {
        nodes: Vec<String>,
        state_dir: PathBuf,
    },
    /// The pushes that failed, a line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    NotPushed(Vec<super::images::push::PushFailure>),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::NothingToReset { .. } => crate::exit::EXIT_BAD_INPUT,
            _ => crate::exit::EXIT_FAILED,
        }
    }
}

/// Why an image could not be derived; the messages name the temporary node.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("the temporary node {node} did not become ready ({outcome:?}): {error}")]
    NotReady {
        node: String,
        outcome: Outcome,
        error: String,
    },
    #[error(
        "image {name} was made, but the temporary node could not be removed: {removal}; `vnode destroy {node}`"
    )]
    MadeButNotRemoved {
        name: String,
        node: String,
        #[source]
        removal: Box<RemoveError>,
    },
    #[error("no free node in pool {pool}; pass --node SPEC")]
    NoFreeNode { pool: String },
    #[error("{node} has no known address")]
    NoAddress { node: String },
    #[error("cannot read {}: {source}", path.display())]
    ReadHostKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy the commands to {node} (exit status {status:?})")]
    CopyCommands { node: String, status: Option<u32> },
    #[error("the commands failed in {node} with exit status {status}")]
    CommandsFailed { node: String, status: u32 },
    #[error("the commands in {node} ended without an exit status (killed by a signal?)")]
    CommandsKilled { node: String },
    #[error("cleaning {node} for reuse failed (exit status {status:?}): {output}")]
    Cleanup {
        node: String,
        status: Option<u32>,
        output: String,
    },
    #[error("cannot copy the key list to {node} (exit status {status:?})")]
    CopyKeys { node: String, status: Option<u32> },
    #[error("the domain {node} disappeared while shutting down")]
    Disappeared { node: String },
    #[error("{node} did not power off within {seconds} s of the ACPI shutdown request")]
    NoPowerOff { node: String, seconds: u64 },
}
