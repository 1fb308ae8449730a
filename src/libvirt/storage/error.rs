//! What can go wrong with a host's storage pool, each with one message that names the host (its
//! libvirt URI), the pool or volume, and what to do next. (virsh's error is boxed: it keeps the
//! `Result`s of this module small.)

use std::io;
use std::path::PathBuf;

use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED};
use crate::libvirt::LibvirtError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "libvirt at {host} does not answer: {source}; check the host's uri and that libvirtd \
         runs there (`virsh -c {host} version`)"
    )]
    Unreachable {
        host: String,
        #[source]
        source: Box<LibvirtError>,
    },

    #[error(
        "storage pool {pool} is not defined on {host}; vnode defines it when it prepares the host \
         (or define it: `virsh -c {host} pool-define-as {pool} dir --target DIR`)"
    )]
    NoPool { host: String, pool: String },

    #[error(
        "storage pool {pool} on {host} is a {kind} pool; vnode keeps qcow2 files in a directory \
         pool (dir, fs or netfs): set the host's storage_pool to one"
    )]
    PoolType {
        host: String,
        pool: String,
        kind: String,
    },

    #[error(
        "cannot define storage pool {pool} on {host}: its directory {} is already storage pool \
         {other}'s; set the host's storage_pool to {other}, or its pool_path to another directory",
        path.display()
    )]
    PathTaken {
        host: String,
        pool: String,
        path: PathBuf,
        other: String,
    },

    #[error(
        "cannot {step} storage pool {pool} on {host}: {source}; libvirtd's log on {host} says more"
    )]
    Pool {
        host: String,
        pool: String,
        step: &'static str,
        #[source]
        source: Box<LibvirtError>,
    },

    #[error("cannot {step} volume {volume} in storage pool {pool} on {host}: {source}")]
    Volume {
        host: String,
        pool: String,
        volume: String,
        step: &'static str,
        #[source]
        source: Box<LibvirtError>,
    },

    #[error("no volume {volume} in storage pool {pool} on {host}")]
    NoVolume {
        host: String,
        pool: String,
        volume: String,
    },

    #[error(
        "volume {volume} already exists in storage pool {pool} on {host}; a leftover of an \
         earlier node? remove it (`virsh -c {host} vol-delete --pool {pool} {volume}`) and try again"
    )]
    Exists {
        host: String,
        pool: String,
        volume: String,
    },

    #[error("cannot {action} {}: {source}", path.display())]
    Local {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{} has sha256 {actual}, not {expected} as its name on {host} would say; nothing was left \
         on {host}; `vnode images verify` checks the cache",
        local.display()
    )]
    DigestMismatch {
        host: String,
        local: PathBuf,
        expected: String,
        actual: String,
    },

    #[error(
        "volume {volume} on {host} has {got} bytes after its upload of {expected}; is the file \
         system of storage pool {pool} full? (`virsh -c {host} pool-info {pool}`)"
    )]
    Short {
        host: String,
        pool: String,
        volume: String,
        expected: u64,
        got: u64,
    },

    #[error(
        "gave up on base image {volume} on {host} after {attempts} attempts (uploads of it kept \
         stalling or vanishing); look for another vnode uploading it, or remove it \
         (`virsh -c {host} vol-delete --pool {pool} {volume}`) and try again"
    )]
    GaveUp {
        host: String,
        pool: String,
        volume: String,
        attempts: u32,
    },

    #[error("{name:?} cannot name a libvirt {what}: {reason}")]
    BadName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    #[error("{} cannot be given to libvirt: it is not UTF-8", path.display())]
    BadPath { path: PathBuf },

    #[error("{digest:?} is not a sha256 digest (64 lowercase hex digits)")]
    BadDigest { digest: String },

    #[error("cannot read what `virsh {command}` printed for {host}: {output:?}")]
    Unparsed {
        host: String,
        command: &'static str,
        output: String,
    },
}

impl StorageError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StorageError::Unreachable { source, .. }
            | StorageError::Pool { source, .. }
            | StorageError::Volume { source, .. } => source.exit_code(),
            StorageError::BadName { .. }
            | StorageError::BadPath { .. }
            | StorageError::BadDigest { .. } => EXIT_BAD_INPUT,
            _ => EXIT_FAILED,
        }
    }

    /// libvirt on the host did not answer (rather than refusing what was asked).
    pub fn is_connection(&self) -> bool {
        matches!(self, StorageError::Unreachable { .. })
    }
}
