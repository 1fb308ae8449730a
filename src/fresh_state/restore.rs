//! Restoring a node from its state: a new overlay on the frozen disk (nothing of an earlier run
//! stays), the domain defined as it was saved, `virsh restore` of the snapshot's memory (the
//! format of `virsh save`). A restore that fails undefines
//! what it defined, so the caller can boot the node cold.

use std::path::Path;

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
    #[error("cannot use the state on its host: {0}")]
    Storage(#[source] Box<crate::libvirt::storage::StorageError>),
    #[error(
        "its memory volume {volume} is {} bytes, {expected} when saved",
        found.map_or_else(|| "missing, not".to_string(), |f| f.to_string())
    )]
    MemoryChanged {
        volume: String,
        found: Option<u64>,
        expected: u64,
    },
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
    define_and_restore(virsh, name, state, &state.memory(), None).await
}

/// Defines the domain as the state has it and restores `memory` (a path on the domain's host),
/// with `running_xml` (a file here) as the restored domain's definition when given; undefines it
/// again when the restore fails.
pub(super) async fn define_and_restore(
    virsh: &Virsh,
    name: &str,
    state: &StatePaths,
    memory: &Path,
    running_xml: Option<&Path>,
) -> Result<(), RestoreError> {
    let xml = state.domain_xml().to_string_lossy().into_owned();
    let memory = memory.to_string_lossy().into_owned();
    virsh
        .run(&["define", &xml])
        .await
        .map_err(RestoreError::Libvirt)?;
    let running = running_xml.map(|p| p.to_string_lossy().into_owned());
    let mut args = vec!["restore", memory.as_str(), "--running"];
    if let Some(running) = &running {
        args.extend(["--xml", running.as_str()]);
    }
    if let Err(e) = virsh.run(&args).await {
        let _ = virsh.undefine(name).await;
        return Err(RestoreError::Libvirt(e));
    }
    Ok(())
}
