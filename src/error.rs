//! vnode's top-level error: every failure a command can end with, and its exit code.
//!
//! Exit codes: 0 success; 1 an operation failed (a node, a download, libvirt); 2 bad input
//! (specs, config, catalog, arguments) with nothing created; 3 some nodes did not become ready;
//! 130 interrupted.

use crate::catalog::CatalogError;
use crate::plan::NoAddresses;
use crate::spec::SpecError;
use crate::toml_file::FileError;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NOT_READY: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{0}")]
    File(#[from] FileError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Plan(#[from] NoAddresses),
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
    #[error(transparent)]
    Libvirt(#[from] crate::libvirt::LibvirtError),
    #[error(transparent)]
    Spawn(#[from] crate::spawn::SpawnError),
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// Bad arguments that clap cannot see (e.g. an unknown pool name).
    #[error("{0}")]
    Usage(String),
    /// An operation failed; the message says what and what to do.
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec(_)
            | Error::File(_)
            | Error::Catalog(_)
            | Error::Plan(_)
            | Error::Usage(_) => EXIT_BAD_INPUT,
            Error::Image(e) => e.exit_code(),
            Error::Node(e) => e.exit_code(),
            Error::Libvirt(e) => e.exit_code(),
            Error::Spawn(e) => e.exit_code(),
            Error::Lab(e) => e.exit_code(),
            Error::Failed(_) => EXIT_FAILED,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
