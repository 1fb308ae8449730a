//! libvirt: the virt-install argument builder, the osinfo ids it accepts, and (later) virsh queries.

pub mod osinfo;
pub mod virt_install;

pub use osinfo::{OsinfoChoice, OsinfoDb};
pub use virt_install::{Accel, DomainMetadata, NetSource, NicSpec, VirtInstall};

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{0}")]
    Command(String),
}

impl LibvirtError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}
