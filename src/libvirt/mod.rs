//! libvirt: the virt-install argument builder, the osinfo ids it accepts, and (later) virsh queries.

pub mod osinfo;
pub mod virt_install;

pub use osinfo::{OsinfoChoice, OsinfoDb};
pub use virt_install::{Accel, DomainMetadata, NetSource, NicSpec, VirtInstall};

pub mod virsh;

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error(
        "libvirt is not reachable at {uri}: {message}; is libvirtd running? (`vnode host check` tells more)"
    )]
    Unreachable { uri: String, message: String },
    #[error("`virsh {args}` failed: {message}")]
    Virsh { args: String, message: String },
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
}

impl LibvirtError {
    pub fn exit_code(&self) -> u8 {
        crate::exit::EXIT_FAILED
    }
}
