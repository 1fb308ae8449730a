//! Fresh states of a `[[hosts]]` host's nodes, through libvirt alone (vnode runs nothing of its
//! own there). Their disks are volumes of the host's storage pool, and libvirt can neither rename
//! a volume nor give it a second name, so a node that will be saved boots on the state's disk
//! volume itself, `<node>-fresh-disk.qcow2`; the save's snapshot moves the running guest onto a
//! new overlay volume backed by it (the node's usual `<node>.qcow2`) and writes the guest's memory
//! into the pool's directory (`<node>-fresh-memory.save`, a volume after a refresh). From that
//! moment the state's disk is never written again: QEMU opens a backing file read-only.
//!
//! `state.json` and the two domain definitions stay on this host, in the state's directory:
//! `domain.xml` (the inactive definition, already on `<node>.qcow2`) and `restore.xml` (the running
//! domain's, for `virsh restore --xml`: the memory's own copy still names the state's disk, where a
//! restored guest must run on a new overlay instead).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::restore::RestoreError;
use super::save::{self, SaveError, Saved, SnapshotFiles};
use super::store::{StatePaths, StateRecord};
use crate::libvirt::storage::{Storage, StorageError};
use crate::libvirt::virsh::Virsh;

/// The state's disk volume: the node's first disk, frozen at the save.
pub fn disk_volume(node: &str) -> String {
    format!("{node}-fresh-disk.qcow2")
}

/// The state's memory, written by the save's snapshot into the pool's directory.
pub fn memory_volume(node: &str) -> String {
    format!("{node}-fresh-memory.save")
}

/// The state's volumes, in the order they are removed.
pub fn volumes(node: &str) -> [String; 2] {
    [memory_volume(node), disk_volume(node)]
}

/// The node being saved on its host: the overlay volume the guest moves onto (`run`: its name
/// and virtual size) and its seed's path there.
pub struct OnHost<'a> {
    pub storage: &'a Storage,
    pub run_volume: &'a str,
    pub capacity: u64,
    pub seed: &'a Path,
}

fn storage_save(e: StorageError) -> SaveError {
    SaveError::Storage(Box::new(e))
}

/// Saves the running node `name`, which runs on [`disk_volume`]: it runs on, on a new
/// `host.run_volume`. Like the local save, any earlier state goes first, and a save that fails
/// removes what it made and leaves the node running (or says that it could not).
pub async fn save(
    virsh: &Virsh,
    name: &str,
    host: &OnHost<'_>,
    state: &StatePaths,
    mut record: StateRecord,
) -> Result<Saved, SaveError> {
    let start = Instant::now();
    let storage = host.storage;
    let dir = &state.dir;
    state
        .remove()
        .map_err(save::io("cannot remove the old state", dir))?;
    super::freeze::create_dir(dir).map_err(save::io("cannot create", dir))?;
    let undo = |e: SaveError| {
        let _ = state.remove();
        e
    };
    let paths = async {
        Ok::<_, StorageError>((
            storage.path_of(&disk_volume(name)).await?,
            storage.path_of(&memory_volume(name)).await?,
        ))
    };
    let (frozen, memory) = paths.await.map_err(|e| undo(storage_save(e)))?;
    storage
        .delete(&memory_volume(name))
        .await
        .map_err(|e| undo(storage_save(e)))?;
    let run = storage
        .create_overlay(host.run_volume, &frozen, host.capacity)
        .await
        .map_err(|e| undo(storage_save(e)))?;
    let files = SnapshotFiles {
        disk: frozen.clone(),
        run: run.clone(),
        seed: host.seed.to_path_buf(),
        memory,
    };
    let snapshotting = Instant::now();
    if let Err(failed) = save::snapshot(virsh, name, &files).await {
        let e = match save::resume_after_failure(virsh, name, &run).await {
            Ok(true) => SaveError::Libvirt(failed),
            Ok(false) => {
                let _ = storage.delete(host.run_volume).await;
                let _ = storage.delete(&memory_volume(name)).await;
                SaveError::Libvirt(failed)
            }
            Err(not_back) => not_back,
        };
        return Err(undo(e));
    }
    let snapshot_seconds = snapshotting.elapsed().as_secs_f64();
    record.snapshot_done_ms = super::store::unix_ms();
    // From here on the guest runs on `run`: a failure leaves it so, and removes the state only
    // (the frozen disk goes with the node, as its backing).
    let written = async {
        let memory_bytes = storage.file_size(&memory_volume(name)).await?;
        let disk_bytes = storage.file_size(&disk_volume(name)).await?;
        Ok::<_, StorageError>((memory_bytes, disk_bytes))
    };
    let (memory_bytes, disk_bytes) = written.await.map_err(|e| undo(storage_save(e)))?;
    let Some(memory_bytes) = memory_bytes else {
        let _ = storage.delete(&memory_volume(name)).await;
        return Err(undo(SaveError::NoMemory {
            path: files.memory.clone(),
        }));
    };
    for (what, args, to) in [
        (
            "the domain's definition",
            ["dumpxml", "--inactive", "--security-info", name],
            state.domain_xml(),
        ),
        (
            "the running domain",
            ["dumpxml", "--migratable", "--security-info", name],
            state.restore_xml(),
        ),
    ] {
        let xml = virsh
            .run(&args)
            .await
            .map_err(|e| undo(SaveError::Libvirt(e)))?;
        if !names_disk(&xml, &run) {
            let _ = storage.delete(&memory_volume(name)).await;
            return Err(undo(SaveError::NotMoved {
                what,
                disk: run.clone(),
            }));
        }
        crate::files::write_atomic(&to, xml, 0o600)
            .map_err(|e| undo(save::io("cannot write", &to)(e)))?;
    }
    let host_bytes = memory_bytes + disk_bytes.unwrap_or(0);
    record.memory_bytes = memory_bytes;
    record.host_bytes = host_bytes;
    record.save_seconds = snapshot_seconds;
    if let Err(e) = record.save(state) {
        let _ = storage.delete(&memory_volume(name)).await;
        return Err(undo(save::io("cannot write", &state.record())(e)));
    }
    Ok(Saved {
        snapshot_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        memory_bytes,
        host_bytes,
    })
}

/// Whether a domain's XML has `disk` as a disk's source file (as libvirt writes it: the path
/// XML-escaped, in single quotes).
fn names_disk(xml: &str, disk: &Path) -> bool {
    let escaped = crate::libvirt::storage::xml_escape(&disk.to_string_lossy());
    xml.contains(&format!("<source file='{escaped}'"))
}

/// Restores `name` from its state on the host: the node's disk (a new overlay on the state's
/// disk) and seed are in place; the memory volume must be whole. The domain is defined as saved
/// and restored with the running domain's definition. A restore that fails undefines what it
/// defined.
pub async fn restore(
    virsh: &Virsh,
    storage: &Storage,
    name: &str,
    state: &StatePaths,
    record: &StateRecord,
) -> Result<(), RestoreError> {
    let volume = memory_volume(name);
    let found = storage
        .file_size(&volume)
        .await
        .map_err(|e| RestoreError::Storage(Box::new(e)))?;
    if found != Some(record.memory_bytes) {
        return Err(RestoreError::MemoryChanged {
            volume,
            found,
            expected: record.memory_bytes,
        });
    }
    let memory: PathBuf = storage
        .path_of(&volume)
        .await
        .map_err(|e| RestoreError::Storage(Box::new(e)))?;
    super::restore::define_and_restore(virsh, name, state, &memory, Some(&state.restore_xml()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_names_its_disk_as_libvirt_writes_it() {
        let xml = "<disk type='file' device='disk'>\n  <source file='/p/a&amp;b.qcow2' index='3'/>";
        assert!(names_disk(xml, Path::new("/p/a&b.qcow2")));
        assert!(!names_disk(xml, Path::new("/p/a.qcow2")));
        assert_eq!(
            volumes("vnode03"),
            ["vnode03-fresh-memory.save", "vnode03-fresh-disk.qcow2"]
        );
    }
}
