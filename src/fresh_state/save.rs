//! Saving a ready node's state: the domain's definition, `virsh save` (the guest stops), the
//! disk frozen into the state with a new overlay for the node, `virsh restore` (the node runs on,
//! as it was), and `state.json` last. The node is the user's: a save that fails after the guest
//! stopped says so, with what to do.

use std::path::Path;
use std::time::Instant;

use super::freeze;
use super::store::{StatePaths, StateRecord};
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::Virsh;
use crate::node::files::NodePaths;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot save its fresh state: {0}")]
    Libvirt(#[source] LibvirtError),
    #[error("cannot save its fresh state: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "its fresh state was saved but the node did not come back ({source}); spawn it again \
         (`vnode {node} --force` restores the state; add --cold to boot it instead)"
    )]
    NotBack {
        node: String,
        #[source]
        source: LibvirtError,
    },
}

/// What a save took.
#[derive(Clone, Copy, Debug)]
pub struct Saved {
    /// `virsh save` alone.
    pub save_seconds: f64,
    /// Everything from the definition to the node running again.
    pub total_seconds: f64,
    pub memory_bytes: u64,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SaveError + 'a {
    move |source| SaveError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Saves the running node `name` into `state` and has it running again on a new overlay;
/// `record` (its key, identity and addresses) is written with the save's figures. Any state the
/// node had is replaced. On an error before the guest stopped, the state is removed and the
/// node runs on untouched.
pub async fn save(
    virsh: &Virsh,
    name: &str,
    node: &NodePaths,
    state: &StatePaths,
    mut record: StateRecord,
) -> Result<Saved, SaveError> {
    let start = Instant::now();
    let dir = &state.dir;
    state
        .remove()
        .map_err(io("cannot remove the old state", dir))?;
    freeze::create_dir(dir).map_err(io("cannot create", dir))?;
    let undo = |e: SaveError| {
        let _ = state.remove();
        e
    };
    let xml = virsh
        .run(&["dumpxml", "--inactive", "--security-info", name])
        .await
        .map_err(|e| undo(SaveError::Libvirt(e)))?;
    crate::files::write_atomic(&state.domain_xml(), xml, 0o600)
        .map_err(|e| undo(io("cannot write", &state.domain_xml())(e)))?;
    let memory = path_str(&state.memory());
    let saving = Instant::now();
    virsh
        .run(&["save", name, &memory, "--running"])
        .await
        .map_err(|e| undo(SaveError::Libvirt(e)))?;
    let save_seconds = saving.elapsed().as_secs_f64();
    // The guest is stopped: its disk is the state's now, the node gets an overlay on it.
    if let Err(e) = freeze::freeze(&node.disk(), &state.disk()) {
        // Put the disk back where the saved domain expects it, and the node back up.
        let _ = std::fs::rename(state.disk(), node.disk());
        let _ = virsh.run(&["restore", &memory]).await;
        return Err(undo(io("cannot freeze the disk into", &state.disk())(e)));
    }
    if let Err(e) = virsh.run(&["restore", &memory]).await {
        return Err(SaveError::NotBack {
            node: name.to_string(),
            source: e,
        });
    }
    let total_seconds = start.elapsed().as_secs_f64();
    let memory_bytes = std::fs::metadata(state.memory())
        .map_err(io("cannot read", &state.memory()))?
        .len();
    record.memory_bytes = memory_bytes;
    record.save_seconds = save_seconds;
    record
        .save(state)
        .map_err(io("cannot write", &state.record()))?;
    Ok(Saved {
        save_seconds,
        total_seconds,
        memory_bytes,
    })
}
