//! Per-node artifacts: qcow2 overlay, NoCloud seed ISO, cloud-init documents, host keys.

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{node}: {message}")]
    Artifact { node: String, message: String },
}

impl NodeError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}
