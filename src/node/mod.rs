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

// --- Stand-in until the per-node artifacts land (branch `node`); same names and shapes. ---
use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{Config, VirtType};
use crate::spec::NodeRequest;

pub struct BaseImage {
    pub path: PathBuf,
    pub osinfo: String,
    pub digest: String,
}

pub struct VirtInstall {
    argv: Vec<OsString>,
}

impl VirtInstall {
    pub fn argv(&self) -> Vec<OsString> {
        self.argv.clone()
    }
}

pub struct NodeArtifacts {
    pub name: String,
    pub dir: PathBuf,
    pub overlay: PathBuf,
    pub seed: PathBuf,
    pub console_log: PathBuf,
    pub host_public_key: String,
    pub instance_id: String,
    pub virt_install: VirtInstall,
}

pub fn prepare(
    _config: &Config,
    request: &NodeRequest,
    _base: &BaseImage,
    _virt_type: VirtType,
) -> Result<NodeArtifacts, NodeError> {
    Err(NodeError::Artifact {
        node: request.name.to_string(),
        message: "per-node artifacts are not built yet".into(),
    })
}

pub fn remove(config: &Config, name: &str) -> Result<(), NodeError> {
    let dir = config.state_dir.join(name);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NodeError::Artifact {
            node: name.into(),
            message: format!("cannot remove {}: {e}", dir.display()),
        }),
        _ => Ok(()),
    }
}

pub mod known_hosts {
    use std::path::Path;

    pub fn add_address(_path: &Path, _name: &str, _addr: &str) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn remove_keeping_disk(config: &Config, name: &str) -> Result<(), NodeError> {
    remove(config, name)
}
