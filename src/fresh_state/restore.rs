//! Restoring a node from its state: a new overlay on the frozen disk (nothing of an earlier run
//! stays), the domain defined as it was saved, `virsh restore` of the snapshot's memory (the
//! format of `virsh save`). A restore that fails undefines
//! what it defined, so the caller can boot the node cold.

use super::freeze;
use super::store::StatePaths;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::Virsh;
use crate::node::files::NodePaths;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot put a new overlay on the state's disk at {}: {source}", path.display())]
    Overlay {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("libvirt refused the state: {0}")]
    Libvirt(#[source] LibvirtError),
}

/// Restores `name` from `state` into the node files `node` (already prepared: seed, keys).
pub async fn restore(
    virsh: &Virsh,
    name: &str,
    node: &NodePaths,
    state: &StatePaths,
) -> Result<(), RestoreError> {
    freeze::new_overlay(&node.disk(), &state.disk()).map_err(|source| RestoreError::Overlay {
        path: node.disk(),
        source,
    })?;
    let xml = state.domain_xml().to_string_lossy().into_owned();
    let memory = state.memory().to_string_lossy().into_owned();
    virsh
        .run(&["define", &xml])
        .await
        .map_err(RestoreError::Libvirt)?;
    if let Err(e) = virsh.run(&["restore", &memory, "--running"]).await {
        let _ = virsh.undefine(name).await;
        return Err(RestoreError::Libvirt(e));
    }
    Ok(())
}
