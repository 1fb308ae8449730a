//! What can go wrong with a lab; every message names the lab, the stage and what to do next.

use std::io;

use super::LabName;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "'{0}' is not a valid lab name: use 1-32 lowercase letters, digits or '-', not starting \
         or ending with '-'"
    )]
    BadName(String),
    #[error(
        "the lab needs root (it creates namespaces, mounts, bridges and daemons); run vnode as root"
    )]
    NotRoot,
    #[error("lab {lab} is not up; run `vnode {flag} lab up` first", flag = lab.flag())]
    NotUp { lab: LabName },
    #[error(
        "lab {lab} is broken ({problems}); run `vnode {flag} lab down` and `vnode {flag} lab up`",
        flag = lab.flag()
    )]
    Broken { lab: LabName, problems: String },
    #[error(
        "lab {lab}: no room left in 198.18.0.0/15 for a public subnet of pool '{pool}'; give the \
         pool a public_subnet in the config"
    )]
    NoSubnet { lab: LabName, pool: String },
    #[error(
        "lab {lab}: {count} hosts asked for; a lab has at most {max} (`lab up --hosts 1..={max}`)",
        max = super::site_hosts::MAX_HOSTS
    )]
    TooManyHosts { lab: LabName, count: u8 },
    #[error(
        "lab {lab}: no addresses for {count} host(s): {reason}; ask for fewer hosts or give the \
         default pool a larger public_subnet"
    )]
    NoHostAddress {
        lab: LabName,
        count: usize,
        reason: String,
    },
    #[error(
        "lab {lab} has no host '{host}' ({have}); `vnode {flag} lab status` lists them",
        flag = lab.flag()
    )]
    NoSuchHost {
        lab: LabName,
        host: String,
        have: String,
    },
    #[error(
        "lab {lab}: a lab with hosts needs {program}, which is missing; install the Debian \
         package {package}"
    )]
    Missing {
        lab: LabName,
        program: String,
        package: String,
    },
    #[error("lab {lab}: the pools as the lab serves them are invalid: {message}")]
    Pools { lab: LabName, message: String },
    /// A step failed; `message` says what happened and, where known, what the logs say.
    #[error("lab {lab}: {stage}: {message}")]
    Failed {
        lab: LabName,
        stage: String,
        message: String,
    },
    /// A step whose failure has a type of its own (a tool, a daemon, a key, the teardown).
    #[error("lab {lab}: {stage}: {source}")]
    Step {
        lab: LabName,
        stage: String,
        #[source]
        source: Box<StepError>,
    },
    #[error("lab {lab}: {stage}: {source}")]
    Io {
        lab: LabName,
        stage: String,
        #[source]
        source: io::Error,
    },
}

/// What failed in one step of bringing a lab up or taking it down.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Command(#[from] crate::process::exec::CommandError),
    #[error(transparent)]
    Daemon(#[from] super::tool::DaemonError),
    /// A daemon that did not start, with the end of its own log.
    #[error("{source}{tail}")]
    DaemonLog {
        #[source]
        source: super::tool::DaemonError,
        tail: String,
    },
    #[error(transparent)]
    Keygen(#[from] super::ssh_keys::KeygenError),
    /// Stopping a process, or reading what is mounted.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("still running in the lab: pids {}", .0.join(", "))]
    StillRunning(Vec<String>),
    #[error("{mount} is a mount point below {}; unmount it first", root.display())]
    MountBelow {
        mount: String,
        root: std::path::PathBuf,
    },
    #[error("{}: {source}", path.display())]
    Remove {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a host's teardown panicked")]
    Panicked,
    /// `lab down` from inside the lab would stop itself.
    #[error("this command runs inside the lab; run it outside (not through `lab exec`)")]
    FromInside,
}

impl LabError {
    pub fn io(lab: &LabName, stage: &str, source: io::Error) -> LabError {
        LabError::Io {
            lab: lab.clone(),
            stage: stage.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::BadName(_)
            | LabError::NoSubnet { .. }
            | LabError::Pools { .. }
            | LabError::TooManyHosts { .. }
            | LabError::NoHostAddress { .. }
            | LabError::NoSuchHost { .. } => crate::exit::EXIT_BAD_INPUT,
            _ => crate::exit::EXIT_FAILED,
        }
    }
}

/// Root is needed for everything a lab does; checked first so the message is about that.
pub fn require_root() -> Result<(), LabError> {
    if crate::process::unix::euid() != 0 {
        return Err(LabError::NotRoot);
    }
    Ok(())
}
