//! Starting the lab's daemons with a deadline, so a wedged daemon makes `up` fail with a
//! message instead of hanging (other tools run through [`crate::process::exec`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use crate::process::exec::describe;

/// Why a daemon did not start; the messages end with the end of its output file, if any.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot open {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Clone(#[source] io::Error),
    #[error("cannot run `{command}`: {source}")]
    CannotRun {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}){tail}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        tail: String,
    },
    /// Waiting failed, or the deadline passed.
    #[error("`{command}`: {source}{tail}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
        tail: String,
    },
}

/// Runs a command that starts a daemon and returns (`libvirtd -d`, dnsmasq): its output goes to
/// `log`, never to a pipe the daemon could keep open.
pub fn start_daemon(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<(), DaemonError> {
    let file = append(log).map_err(|source| DaemonError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().map_err(DaemonError::Clone)?)
        .stderr(file);
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        crate::process::exec::log_end(
            cmd,
            started,
            &Err(std::io::Error::new(e.kind(), e.to_string())),
        );
        DaemonError::CannotRun {
            command: describe(cmd),
            source: e,
        }
    })?;
    let status = crate::process::exec::wait(&mut child, timeout);
    crate::process::exec::log_end(cmd, started, &status);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(status) => Err(DaemonError::Failed {
            command: describe(cmd),
            status,
            tail: tail_of(log),
        }),
        Err(source) => Err(DaemonError::Wait {
            command: describe(cmd),
            source,
            tail: tail_of(log),
        }),
    }
}

pub fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// "; <path> ends with: <last lines>" for error messages, or nothing when the file is empty.
pub fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let last = &lines[lines.len().saturating_sub(8)..];
    format!("; {} ends with:\n  {}", path.display(), last.join("\n  "))
}
