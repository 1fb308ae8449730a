//! Where fresh states live and what they hold: `<state_dir>/.fresh-states/<node>/` with
//! `memory.save` (libvirt's save image), `disk.qcow2` (the node's disk at that moment, frozen
//! read-only: every restore's overlay is backed by it), `domain.xml` (the domain as defined) and
//! `state.json` ([`StateRecord`], written last: a directory without it is a save that did not
//! finish, and is removed). Listing, disk usage, the least-recently-used cap, removal.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::key::KeyInputs;
use crate::node::identity::Identity;
use crate::plan::planned_node::HostName;

/// How old a state is at least when its guest resumes: the watcher's jump (1 s, in
/// src/fresh_state/watcher.py) plus the RTC's whole second, and a margin.
pub const MIN_AGE: std::time::Duration = std::time::Duration::from_millis(2100);

/// The directory of all states, beside the node directories (hidden: not a node).
pub const DIR: &str = ".fresh-states";

/// The files of one node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    pub fn new(state_dir: &Path, node: &str) -> StatePaths {
        StatePaths {
            dir: state_dir.join(DIR).join(node),
        }
    }
    pub fn memory(&self) -> PathBuf {
        self.dir.join("memory.save")
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join("disk.qcow2")
    }
    pub fn domain_xml(&self) -> PathBuf {
        self.dir.join("domain.xml")
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// A `[[hosts]]` host's state: the running domain's definition, to restore with.
    pub fn restore_xml(&self) -> PathBuf {
        self.dir.join("restore.xml")
    }

    /// Removes the state's directory; whether there was one. The frozen disk is read-only: its
    /// directory entry goes all the same.
    pub fn remove(&self) -> io::Result<bool> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// `state.json`: what the state was made from and what the node was at that moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateRecord {
    pub node: String,
    pub image: String,
    /// [`KeyInputs::digest`] of `inputs`.
    pub key: String,
    pub inputs: KeyInputs,
    /// The host key and instance id the node was seeded with (the seed is made again from them).
    pub identity: Identity,
    pub private_ip: Option<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub os: Option<String>,
    /// Seconds since the epoch.
    pub created_unix: u64,
    pub last_used_unix: u64,
    /// `memory.save`'s size when written (a shorter file is not a usable state).
    pub memory_bytes: u64,
    /// The snapshot's seconds (the guest paused while its memory was written).
    pub save_seconds: f64,
    /// When the snapshot had ended, in milliseconds since the epoch (0 in states made before
    /// it was recorded): the guest's clock in the state is at most this.
    #[serde(default)]
    pub snapshot_done_ms: u64,
    /// Bytes of the state's volumes on a `[[hosts]]` host (its memory and frozen disk, which
    /// never change); 0 for this host's states, whose files are all here.
    #[serde(default)]
    pub host_bytes: u64,
}

/// Why a state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("no state")]
    Missing,
    #[error("{file} is missing")]
    FileMissing { file: &'static str },
    #[error("state.json cannot be read: {0}")]
    Record(#[source] serde_json::Error),
    #[error("memory.save is {found} bytes, {expected} when saved")]
    Truncated { found: u64, expected: u64 },
    #[error("cannot read the state: {0}")]
    Io(#[source] io::Error),
}

impl StateRecord {
    /// The node's state, checked to be complete (every file there, the memory image whole).
    pub fn load(paths: &StatePaths) -> Result<StateRecord, Unusable> {
        let text = match std::fs::read(paths.record()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if paths.dir.exists() {
                    Unusable::FileMissing { file: "state.json" }
                } else {
                    Unusable::Missing
                });
            }
            Err(e) => return Err(Unusable::Io(e)),
        };
        let record: StateRecord = serde_json::from_slice(&text).map_err(Unusable::Record)?;
        // A `[[hosts]]` host's state has its memory and disk there (checked at the restore).
        let files: &[(&'static str, PathBuf)] = match record.on_host() {
            Some(_) => &[
                ("domain.xml", paths.domain_xml()),
                ("restore.xml", paths.restore_xml()),
            ],
            None => &[
                ("disk.qcow2", paths.disk()),
                ("domain.xml", paths.domain_xml()),
                ("memory.save", paths.memory()),
            ],
        };
        for (file, path) in files {
            if !path.is_file() {
                return Err(Unusable::FileMissing { file });
            }
        }
        if record.on_host().is_some() {
            return Ok(record);
        }
        let found = std::fs::metadata(paths.memory())
            .map_err(Unusable::Io)?
            .len();
        if found != record.memory_bytes {
            return Err(Unusable::Truncated {
                found,
                expected: record.memory_bytes,
            });
        }
        Ok(record)
    }

    /// The `[[hosts]]` host whose storage pool holds the state's memory and disk; `None` for
    /// this host's states.
    pub fn on_host(&self) -> Option<&str> {
        (self.inputs.host != HostName::LOCAL).then_some(self.inputs.host.as_str())
    }

    /// Writes `state.json` (0600: it holds the host's private key), atomically.
    pub fn save(&self, paths: &StatePaths) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("plain data serializes");
        crate::files::write_atomic(&paths.record(), json, 0o600)
    }

    /// How long to wait before restoring the state, so that the guest wakes up at least
    /// [`MIN_AGE`] after its snapshot: the watcher knows a restore by the guest's clock falling
    /// behind the RTC, whose whole seconds it compares, and a guest resumed sooner (a reset
    /// right after a save) would go unnoticed and its RNG not be reseeded.
    pub fn too_young(&self) -> Option<std::time::Duration> {
        let done = std::time::Duration::from_millis(self.snapshot_done_ms);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        (done + MIN_AGE).checked_sub(now).filter(|d| !d.is_zero())
    }

    /// Marks the state used now (for the least-recently-used cap).
    pub fn touch(mut self, paths: &StatePaths) -> io::Result<()> {
        self.last_used_unix = crate::node::metadata::now().0;
        self.save(paths)
    }
}

/// Now, in milliseconds since the epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One state in a listing.
#[derive(Debug)]
pub struct Listed {
    pub node: String,
    pub record: Result<StateRecord, Unusable>,
    /// Bytes on disk (allocated blocks) of all its files.
    pub bytes: u64,
}

/// Every state under `state_dir`, by node name.
pub fn list(state_dir: &Path) -> Vec<Listed> {
    let Ok(dir) = std::fs::read_dir(state_dir.join(DIR)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|node| {
            let paths = StatePaths::new(state_dir, &node);
            let record = StateRecord::load(&paths);
            let on_host = record.as_ref().map_or(0, |r| r.host_bytes);
            Listed {
                bytes: disk_usage(&paths.dir) + on_host,
                record,
                node,
            }
        })
        .collect()
}

/// Allocated bytes of the files in `dir` (sparse files count what they use).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Removes `node`'s state (nothing when it has none).
pub fn remove(state_dir: &Path, node: &str) -> io::Result<bool> {
    StatePaths::new(state_dir, node).remove()
}

/// The nodes whose states are built on image `image`.
pub fn built_on(state_dir: &Path, image: &str) -> Vec<String> {
    list(state_dir)
        .into_iter()
        .filter(|l| l.record.as_ref().is_ok_and(|r| r.image == image))
        .map(|l| l.node)
        .collect()
}

/// The states to remove to hold all under `cap_bytes`, in the order they go: the least recently
/// used first, unusable ones before any usable one; never `keep` (the one just saved), nor the
/// state of a node that exists (a saved node runs on an overlay backed by its state's disk).
pub fn over_cap(state_dir: &Path, cap_bytes: u64, keep: &str) -> Vec<String> {
    let listed = list(state_dir);
    let mut total: u64 = listed.iter().map(|l| l.bytes).sum();
    let exists = |node: &str| {
        crate::node::files::NodePaths::new(state_dir, node)
            .dir
            .exists()
    };
    let mut order: Vec<&Listed> = listed
        .iter()
        .filter(|l| l.node != keep && !exists(&l.node))
        .collect();
    order.sort_by_key(|l| match &l.record {
        Err(_) => (0, 0),
        Ok(r) => (1, r.last_used_unix),
    });
    let mut evicted = Vec::new();
    for l in order {
        if total <= cap_bytes {
            break;
        }
        total = total.saturating_sub(l.bytes);
        evicted.push(l.node.clone());
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fresh_state::key::FORMAT;

    fn record(node: &str, image: &str, used: u64) -> StateRecord {
        StateRecord {
            node: node.into(),
            image: image.into(),
            key: "k".into(),
            inputs: KeyInputs {
                format: FORMAT,
                name: node.into(),
                image: image.into(),
                base_digest: String::new(),
                memory_mib: 512,
                vcpus: 1,
                disk_gib: 10,
                documents: String::new(),
                osinfo: String::new(),
                virt_type: "qemu".into(),
                host: "local".into(),
                virt_install_args: vec![],
                libvirt: String::new(),
                qemu: String::new(),
            },
            identity: Identity::default(),
            private_ip: None,
            public_ip: None,
            os: None,
            created_unix: used,
            last_used_unix: used,
            memory_bytes: 4096,
            save_seconds: 1.0,
            snapshot_done_ms: 0,
            host_bytes: 0,
        }
    }

    fn make(state_dir: &Path, node: &str, image: &str, used: u64) {
        let p = StatePaths::new(state_dir, node);
        std::fs::create_dir_all(&p.dir).unwrap();
        std::fs::write(p.memory(), vec![1u8; 4096]).unwrap();
        std::fs::write(p.disk(), vec![1u8; 4096]).unwrap();
        std::fs::write(p.domain_xml(), "<domain/>").unwrap();
        record(node, image, used).save(&p).unwrap();
    }

    #[test]
    fn states_are_listed_checked_and_removed_by_image() {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), "vnode03", "a", 10);
        make(d.path(), "vnode04", "b", 20);
        let l = list(d.path());
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|l| l.record.is_ok() && l.bytes >= 3 * 4096));
        // A truncated memory image and a missing record are unusable, named.
        let p = StatePaths::new(d.path(), "vnode03");
        std::fs::write(p.memory(), [1u8; 10]).unwrap();
        let e = StateRecord::load(&p).unwrap_err();
        assert_eq!(e.to_string(), "memory.save is 10 bytes, 4096 when saved");
        std::fs::remove_file(p.record()).unwrap();
        assert!(matches!(
            StateRecord::load(&p),
            Err(Unusable::FileMissing { file: "state.json" })
        ));
        assert!(matches!(
            StateRecord::load(&StatePaths::new(d.path(), "vnode09")),
            Err(Unusable::Missing)
        ));
        assert_eq!(built_on(d.path(), "b"), ["vnode04"]);
        assert!(remove(d.path(), "vnode04").unwrap());
        assert_eq!(list(d.path()).len(), 1);
    }

    #[test]
    fn a_hosts_state_is_its_record_and_definitions_here_its_volumes_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = StatePaths::new(d.path(), "vnode03");
        std::fs::create_dir_all(&p.dir).unwrap();
        let mut r = record("vnode03", "a", 10);
        r.inputs.host = "h1".into();
        r.host_bytes = 300 << 20;
        r.save(&p).unwrap();
        std::fs::write(p.domain_xml(), "<domain/>").unwrap();
        assert!(matches!(
            StateRecord::load(&p),
            Err(Unusable::FileMissing {
                file: "restore.xml"
            })
        ));
        std::fs::write(p.restore_xml(), "<domain/>").unwrap();
        let loaded = StateRecord::load(&p).unwrap();
        assert_eq!(loaded.on_host(), Some("h1"));
        assert!(list(d.path())[0].bytes >= 300 << 20);
        assert_eq!(record("vnode04", "a", 1).on_host(), None);
    }

    #[test]
    fn a_state_is_restored_only_once_its_guest_can_tell_a_restore() {
        let mut r = record("vnode03", "a", 1);
        assert_eq!(r.too_young(), None);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        r.snapshot_done_ms = now.as_millis() as u64;
        let wait = r.too_young().unwrap();
        assert!(wait <= MIN_AGE && wait > MIN_AGE / 2, "{wait:?}");
        r.snapshot_done_ms -= 10_000;
        assert_eq!(r.too_young(), None);
    }

    #[test]
    fn the_cap_removes_the_least_recently_used_first_never_the_kept_one() {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), "vnode01", "a", 30);
        make(d.path(), "vnode02", "a", 10);
        make(d.path(), "vnode03", "a", 20);
        let one = list(d.path())[0].bytes;
        // Room for two: the oldest other than the kept one goes.
        assert_eq!(over_cap(d.path(), 2 * one, "vnode02"), ["vnode03"]);
        assert!(remove(d.path(), "vnode03").unwrap());
        // A node that exists keeps its state (it may run on an overlay backed by it).
        std::fs::create_dir(d.path().join("vnode01")).unwrap();
        assert!(over_cap(d.path(), 0, "vnode02").is_empty());
        std::fs::remove_dir(d.path().join("vnode01")).unwrap();
        assert_eq!(over_cap(d.path(), 0, "vnode02"), ["vnode01"]);
    }
}
