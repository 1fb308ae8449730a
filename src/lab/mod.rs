//! vnode's namespace lab: libvirtd, the private network and a site DHCP, all inside namespaces.

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab {lab}: {message}")]
    Failed { lab: String, message: String },
}

impl LabError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}

/// Moves this process into the lab's namespaces. Must run before any thread starts.
pub fn enter(lab: &str) -> Result<(), LabError> {
    Err(LabError::Failed {
        lab: lab.into(),
        message: "`--lab` is not implemented yet".into(),
    })
}
