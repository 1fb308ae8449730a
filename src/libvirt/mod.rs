//! libvirt: the virt-install argument builder and virsh queries.

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
