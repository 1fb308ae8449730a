//! vnode's top-level error: every failure a command can end with, and its exit code (see
//! [`crate::exit`]).

use crate::images::catalog::CatalogError;
use crate::plan::site_dhcp::NoAddresses;
use crate::plan::spec::SpecError;
use crate::text::toml_file::FileError;

pub use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOT_READY};

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
    /// A config file, catalog, cache or state directory others could change.
    #[error(transparent)]
    Trust(#[from] crate::files::TrustError),
    #[error(transparent)]
    Osinfo(#[from] crate::libvirt::osinfo::OsinfoIdError),
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
    #[error(transparent)]
    Hosts(#[from] crate::hosts::HostsError),
    #[error(transparent)]
    Placement(#[from] crate::hosts::placement::PlacementError),
    #[error(transparent)]
    Storage(#[from] crate::libvirt::storage::StorageError),
    #[error(transparent)]
    Derive(#[from] crate::commands::DeriveError),
    /// `images derive` failed and its temporary node is removed.
    #[error("{source}\nnothing was added to the cache; the temporary node {node} is destroyed")]
    DeriveFailed { source: Box<Error>, node: String },
    /// `images derive` failed and its temporary node could not be removed.
    #[error(
        "{source}\nnothing was added to the cache, and the temporary node could not be removed: {removal}; `vnode destroy {node}`"
    )]
    DeriveFailedNotRemoved {
        source: Box<Error>,
        node: String,
        removal: Box<crate::hosts::hypervisor::RemoveError>,
    },
    #[error(transparent)]
    Command(#[from] crate::commands::CommandError),
    #[error(transparent)]
    Runtime(#[from] crate::process::runtime::RuntimeError),
    /// Bad arguments that clap cannot see (e.g. an unknown pool name).
    #[error("{0}")]
    Usage(String),
    /// An operation failed; the message says what and what to do.
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
    /// Ctrl-C, after the command cleaned up; the message says what it removed or left.
    #[error("interrupted: {0}")]
    InterruptedWith(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec(_)
            | Error::File(_)
            | Error::Catalog(_)
            | Error::Plan(_)
            | Error::Trust(_)
            | Error::Osinfo(_)
            | Error::Hosts(_)
            | Error::Usage(_) => EXIT_BAD_INPUT,
            Error::Placement(e) => e.exit_code(),
            Error::Storage(e) => e.exit_code(),
            Error::Image(e) => e.exit_code(),
            Error::Node(e) => e.exit_code(),
            Error::Libvirt(e) => e.exit_code(),
            Error::Spawn(e) => e.exit_code(),
            Error::Lab(e) => e.exit_code(),
            Error::Failed(_)
            | Error::Derive(_)
            | Error::DeriveFailed { .. }
            | Error::DeriveFailedNotRemoved { .. }
            | Error::Runtime(_) => EXIT_FAILED,
            Error::Command(e) => e.exit_code(),
            Error::Interrupted | Error::InterruptedWith(_) => EXIT_INTERRUPTED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
