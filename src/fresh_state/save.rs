//! Saving a ready node's state without stopping it: the domain's definition, then one external
//! snapshot that writes the guest's memory to the state and moves the running guest onto a new
//! overlay (`disk.run.qcow2`) on its disk, which is frozen from that moment (the state's disk, by
//! a second name), and `state.json` last. The guest pauses for the memory's write only (about
//! half a second here): the same QEMU process runs on, with its NICs, so its network does not
//! change. Nothing of the snapshot stays in libvirt (`--no-metadata`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    #[error("cannot save its fresh state: {0}")]
    Storage(#[source] Box<crate::libvirt::storage::StorageError>),
    #[error("cannot save its fresh state: libvirt wrote no memory file at {}", path.display())]
    NoMemory { path: std::path::PathBuf },
    #[error(
        "cannot save its fresh state: after the snapshot, {what} does not run on {}",
        disk.display()
    )]
    NotMoved {
        what: &'static str,
        disk: std::path::PathBuf,
    },
    #[error(
        "saving its fresh state failed and left it paused ({source}); resume it \
         (`virsh resume {node}`) or spawn it again (`vnode {node} --force --cold`)"
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
    /// The snapshot alone (the guest paused while its memory was written).
    pub snapshot_seconds: f64,
    /// Everything from the definition to the state's record.
    pub total_seconds: f64,
    pub memory_bytes: u64,
    /// Bytes of the state's volumes on a `[[hosts]]` host (0 here: all its files are here).
    pub host_bytes: u64,
}

pub(super) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SaveError + 'a {
    move |source| SaveError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A path as one `--diskspec`/`--memspec` value: virsh splits those at `,`, and reads `,,` as
/// one comma.
fn spec_path(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// The files of a save's snapshot, as paths on the node's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFiles {
    /// The disk the guest runs on, frozen from the snapshot on.
    pub disk: PathBuf,
    /// The new overlay on it that the guest moves onto (made beforehand: `--reuse-external`).
    pub run: PathBuf,
    /// The seed, left alone.
    pub seed: PathBuf,
    /// Where the guest's memory goes.
    pub memory: PathBuf,
}

impl SnapshotFiles {
    /// A node of this host: its own files, the memory into its state.
    pub fn local(node: &NodePaths, state: &StatePaths) -> SnapshotFiles {
        SnapshotFiles {
            disk: node.disk(),
            run: node.run_disk(),
            seed: node.seed(),
            memory: state.memory(),
        }
    }
}

/// The `virsh snapshot-create-as` arguments of the save: memory to `files.memory`, the disk
/// frozen with `files.run` as its new overlay, the seed left alone, no libvirt metadata.
pub fn snapshot_args(name: &str, files: &SnapshotFiles) -> Vec<String> {
    [
        "snapshot-create-as",
        name,
        "--no-metadata",
        "--atomic",
        "--reuse-external",
        "--memspec",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("file={},snapshot=external", spec_path(&files.memory)),
        "--diskspec".to_string(),
        format!(
            "{},snapshot=external,file={}",
            spec_path(&files.disk),
            spec_path(&files.run)
        ),
        "--diskspec".to_string(),
        format!("{},snapshot=no", spec_path(&files.seed)),
    ])
    .collect()
}

/// Takes the save's snapshot.
pub(super) async fn snapshot(
    virsh: &Virsh,
    name: &str,
    files: &SnapshotFiles,
) -> Result<(), LibvirtError> {
    let args = snapshot_args(name, files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    virsh.run(&args).await.map(drop)
}

/// Saves the running node `name` into `state`; it runs on, on `node.run_disk()`. `record` (its
/// key, identity and addresses) is written with the save's figures. Any state the node had is
/// replaced. A save that fails removes the state and leaves the node running (on whichever
/// disk libvirt left it), or says that it could not.
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
    // The state's disk is the node's disk by a second name: what it holds at the snapshot is
    // what the memory expects. The new overlay names it by that name, which outlives the node.
    std::fs::hard_link(node.disk(), state.disk())
        .map_err(|e| undo(io("cannot link the node's disk into", &state.disk())(e)))?;
    freeze::new_overlay(&node.run_disk(), &state.disk())
        .map_err(|e| undo(io("cannot write the new overlay", &node.run_disk())(e)))?;
    let snapshotting = Instant::now();
    if let Err(failed) = snapshot(virsh, name, &SnapshotFiles::local(node, state)).await {
        let e = match resume_after_failure(virsh, name, &node.run_disk()).await {
            Ok(true) => SaveError::Libvirt(failed),
            Ok(false) => {
                let _ = std::fs::remove_file(node.run_disk());
                SaveError::Libvirt(failed)
            }
            Err(not_back) => not_back,
        };
        return Err(undo(e));
    }
    let snapshot_seconds = snapshotting.elapsed().as_secs_f64();
    record.snapshot_done_ms = super::store::unix_ms();
    // The guest writes only to its new overlay now; nothing may write the frozen disk again.
    std::fs::set_permissions(state.disk(), std::fs::Permissions::from_mode(0o400))
        .map_err(|e| undo(io("cannot make read-only", &state.disk())(e)))?;
    let memory_bytes = std::fs::metadata(state.memory())
        .map_err(|e| undo(io("cannot read", &state.memory())(e)))?
        .len();
    record.memory_bytes = memory_bytes;
    record.save_seconds = snapshot_seconds;
    record
        .save(state)
        .map_err(|e| undo(io("cannot write", &state.record())(e)))?;
    Ok(Saved {
        snapshot_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        memory_bytes,
        host_bytes: 0,
    })
}

/// After a snapshot that failed: the guest running again (libvirt may leave it paused);
/// whether it runs on `run`, the new overlay (which the caller removes otherwise), or the error
/// that says it is left paused.
pub(super) async fn resume_after_failure(
    virsh: &Virsh,
    name: &str,
    run: &Path,
) -> Result<bool, SaveError> {
    let state = virsh.run(&["domstate", name]).await.unwrap_or_default();
    if state.trim() == "paused"
        && let Err(e) = virsh.run(&["resume", name]).await
    {
        return Err(SaveError::NotBack {
            node: name.to_string(),
            source: e,
        });
    }
    let disks = virsh.run(&["domblklist", name]).await.unwrap_or_default();
    let run = run.to_string_lossy();
    Ok(disks.lines().any(|l| l.trim_end().ends_with(run.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_names_the_disks_by_path_with_commas_doubled() {
        let node = NodePaths::in_dir("/s/a,b".into());
        let state = StatePaths::new(Path::new("/s"), "vnode03");
        let args = snapshot_args("vnode03", &SnapshotFiles::local(&node, &state));
        assert_eq!(
            args,
            [
                "snapshot-create-as",
                "vnode03",
                "--no-metadata",
                "--atomic",
                "--reuse-external",
                "--memspec",
                "file=/s/.fresh-states/vnode03/memory.save,snapshot=external",
                "--diskspec",
                "/s/a,,b/disk.qcow2,snapshot=external,file=/s/a,,b/disk.run.qcow2",
                "--diskspec",
                "/s/a,,b/seed.iso,snapshot=no",
            ]
        );
    }
}
