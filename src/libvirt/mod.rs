//! libvirt: the virt-install argument builder, the osinfo ids it accepts, and (later) virsh queries.

pub mod dir_pools;
pub mod osinfo;
pub mod virt_install;

pub use osinfo::{OsinfoChoice, OsinfoDb};
pub use virt_install::{Accel, DomainMetadata, NetSource, NicSpec, VirtInstall};

pub mod ssh_mux;
pub mod storage;
pub mod virsh;

#[derive(Clone, Debug, thiserror::Error)]
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
    /// Is this libvirt not answering (libvirtd stopped or restarting), rather than libvirt
    /// refusing what was asked?
    pub fn is_connection(&self) -> bool {
        let message = match self {
            LibvirtError::Unreachable { .. } => return true,
            LibvirtError::Virsh { message, .. } => message,
            LibvirtError::Tool { .. } => return false,
        };
        [
            "failed to connect",
            "Failed to connect",
            "Cannot recv data",
            "Cannot write data",
            "End of file while reading",
            "Connection reset",
            "client socket is closed",
            "no valid connection",
            "Broken pipe",
            virsh::NO_MESSAGE,
        ]
        .iter()
        .any(|m| message.contains(m))
    }

    pub fn exit_code(&self) -> u8 {
        crate::exit::EXIT_FAILED
    }
}
