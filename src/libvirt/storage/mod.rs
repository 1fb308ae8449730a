//! A host's libvirt storage pool, driven through `virsh` alone, so that it works the same over
//! `qemu:///system`, `qemu+ssh://host/system` or the lab's unix socket, with no agent of vnode on
//! the host: the pool itself ([`Storage::ensure_pool`]), base images uploaded once per host and
//! named by their sha256 ([`Storage::push_base`], see push.rs for how concurrent uploads agree),
//! per-node qcow2 overlays on them, seed ISOs uploaded as volumes, files fetched back (a console
//! log), and deletion.
//!
//! Every change to the pool's list of volumes (define, build, start, refresh, create, delete)
//! goes through one lock per [`Storage`] (clones share it): libvirt's directory backend has
//! raced when volumes were created and the pool refreshed at once (terraform-provider-libvirt
//! #71, #594), and libvirt refuses a refresh while a volume is being built. Streams (uploads,
//! downloads) run outside the lock, since they do not change the list: a long base upload does
//! not hold up the overlays of other nodes. Different hosts are different `Storage`s and run in
//! parallel.

mod error;
pub mod parse;
mod push;
mod xml;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OnceCell};

pub use error::StorageError;
pub use push::Pushed;
pub use xml::escape as xml_escape;

use super::LibvirtError;
use super::virsh::Virsh;
use xml::{PoolXml, VolumeXml};

/// A volume as `virsh vol-list --details` lists it; sizes are rounded as virsh prints them (two
/// decimals of the unit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub path: PathBuf,
    pub capacity: u64,
    pub allocation: u64,
}

/// How a waiting [`Storage::push_base`] watches another process's upload of the same base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often it looks at the volume's size and marker.
    pub poll: Duration,
    /// How long the volume may stay the same size, without a marker, before the uploader is
    /// taken for gone and its volume deleted and uploaded anew.
    pub stall: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            poll: Duration::from_secs(1),
            stall: Duration::from_secs(60),
        }
    }
}

/// One host's storage pool. Cheap to clone; clones share the lock.
#[derive(Clone, Debug)]
pub struct Storage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    virsh: Virsh,
    pool: String,
    pool_path: PathBuf,
    timing: Timing,
    /// The pool's directory as libvirt reports it, asked once.
    target: OnceCell<PathBuf>,
    /// Held while the pool's list of volumes changes.
    lock: Mutex<()>,
}

/// The base volume of the image with this sha256: `base-<digest>.qcow2`.
pub fn base_volume_name(digest: &str) -> String {
    format!("base-{digest}.qcow2")
}

/// The marker that says the base volume is complete: `base-<digest>.qcow2.ready`.
pub fn ready_marker_name(digest: &str) -> String {
    format!("{}.ready", base_volume_name(digest))
}

/// Volume and pool names vnode makes: letters, digits, `.`, `_`, `-`, `+`, `@`, `:`, not
/// starting with `-` or `.` (virsh would take a leading `-` for an option; `.` and `..` are
/// directories), at most 240 bytes (room for `.ready` in a file name).
fn check_name(what: &'static str, name: &str) -> Result<(), StorageError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 240 {
        Some("it is longer than 240 bytes")
    } else if name.starts_with('-') || name.starts_with('.') {
        Some("it starts with '-' or '.'")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+@:".contains(c))
    {
        Some("only letters, digits and . _ - + @ : are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::BadName {
            what,
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_digest(digest: &str) -> Result<(), StorageError> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(StorageError::BadDigest {
            digest: digest.to_string(),
        })
    }
}

/// The size of a local file that is about to go up.
fn local_size(local: &Path) -> Result<u64, StorageError> {
    Ok(std::fs::metadata(local)
        .map_err(|source| StorageError::Local {
            action: "read",
            path: local.to_path_buf(),
            source,
        })?
        .len())
}

fn utf8(path: &Path) -> Result<&str, StorageError> {
    path.to_str().ok_or_else(|| StorageError::BadPath {
        path: path.to_path_buf(),
    })
}

/// virsh's own words in a failure.
fn message(e: &LibvirtError) -> &str {
    match e {
        LibvirtError::Virsh { message, .. } | LibvirtError::Unreachable { message, .. } => message,
        LibvirtError::Tool { message, .. } => message,
    }
}

/// How often a refresh refused because another client builds a volume is tried again.
const BUSY_RETRIES: u32 = 20;
const BUSY_PAUSE: Duration = Duration::from_millis(250);

impl Storage {
    /// The pool `pool` on the host `virsh` talks to; `pool_path` is its directory if vnode has
    /// to define it.
    pub fn new(virsh: Virsh, pool: &str, pool_path: &Path) -> Storage {
        Storage::with_timing(virsh, pool, pool_path, Timing::default())
    }

    /// Like [`Storage::new`], with how concurrent base uploads are watched.
    pub fn with_timing(virsh: Virsh, pool: &str, pool_path: &Path, timing: Timing) -> Storage {
        Storage {
            inner: Arc::new(Inner {
                virsh,
                pool: pool.to_string(),
                pool_path: pool_path.to_path_buf(),
                timing,
                target: OnceCell::new(),
                lock: Mutex::new(()),
            }),
        }
    }

    /// The host, as messages name it: its libvirt URI.
    pub fn host(&self) -> &str {
        self.inner.virsh.uri()
    }

    pub fn pool(&self) -> &str {
        &self.inner.pool
    }

    /// The pool exists and runs: define (dir type, target pool_path), build, start, autostart
    /// when missing; refresh. Returns its target path as libvirt reports it. Safe to run from
    /// several processes at once: each step accepts that another did it first.
    pub async fn ensure_pool(&self) -> Result<PathBuf, StorageError> {
        let pool = self.pool();
        check_name("storage pool", pool)?;
        let _held = self.inner.lock.lock().await;
        let info = match self.run(&["pool-info", pool]).await {
            Ok(text) => self.parsed("pool-info", &text, parse::pool_info(&text))?,
            Err(e) if parse::is_no_pool(message(&e)) => {
                self.define_pool().await?;
                let text = self
                    .run(&["pool-info", pool])
                    .await
                    .map_err(|e| self.pool_error("look at", e))?;
                self.parsed("pool-info", &text, parse::pool_info(&text))?
            }
            Err(e) => return Err(self.pool_error("look at", e)),
        };
        let dump = self.dump_pool().await?;
        if !matches!(dump.kind.as_str(), "dir" | "fs" | "netfs") {
            return Err(StorageError::PoolType {
                host: self.host().to_string(),
                pool: pool.to_string(),
                kind: dump.kind,
            });
        }
        if info.state != "running" {
            self.start_pool().await?;
        }
        if info.persistent && !info.autostart {
            self.run(&["pool-autostart", pool])
                .await
                .map_err(|e| self.pool_error("mark for autostart", e))?;
        }
        self.refresh_locked().await?;
        let _ = self.inner.target.set(dump.target.clone());
        Ok(dump.target)
    }

    async fn define_pool(&self) -> Result<(), StorageError> {
        let path = &self.inner.pool_path;
        utf8(path)?;
        let xml = PoolXml {
            name: self.pool(),
            path,
            mode: 0o755,
        }
        .render();
        match self.run_xml(&["pool-define"], &xml).await? {
            Ok(_) => Ok(()),
            // Another vnode defined it a moment ago.
            Err(e) if parse::is_pool_exists(message(&e)) => Ok(()),
            Err(e) => Err(match parse::conflicting_pool(message(&e)) {
                Some(other) => StorageError::PathTaken {
                    host: self.host().to_string(),
                    pool: self.pool().to_string(),
                    path: path.clone(),
                    other: other.to_string(),
                },
                None => self.pool_error("define", e),
            }),
        }
    }

    /// Starts an inactive pool; builds it (makes the directory) first when the directory is
    /// missing. An existing directory is not built: building would reset the mode and owner
    /// of a pool an admin made.
    async fn start_pool(&self) -> Result<(), StorageError> {
        let pool = self.pool();
        match self.run(&["pool-start", pool]).await {
            Ok(_) => return Ok(()),
            Err(e) if parse::is_already_active(message(&e)) => return Ok(()),
            Err(e) if e.is_connection() => return Err(self.pool_error("start", e)),
            Err(_) => {}
        }
        match self.run(&["pool-build", pool]).await {
            Ok(_) => {}
            Err(e) if parse::is_already_active(message(&e)) => return Ok(()),
            Err(e) => return Err(self.pool_error("build", e)),
        }
        match self.run(&["pool-start", pool]).await {
            Ok(_) => Ok(()),
            Err(e) if parse::is_already_active(message(&e)) => Ok(()),
            Err(e) => Err(self.pool_error("start", e)),
        }
    }

    async fn dump_pool(&self) -> Result<parse::PoolDump, StorageError> {
        let text = self
            .run(&["pool-dumpxml", self.pool()])
            .await
            .map_err(|e| self.pool_error("look at", e))?;
        self.parsed("pool-dumpxml", &text, parse::pool_dump(&text))
    }

    /// The pool's directory (asked of libvirt once per `Storage`).
    pub async fn target(&self) -> Result<PathBuf, StorageError> {
        self.inner
            .target
            .get_or_try_init(|| async { Ok(self.dump_pool().await?.target) })
            .await
            .cloned()
    }

    /// The volume's path: the pool's directory and its name, as libvirt's directory backend
    /// places it.
    pub async fn path_of(&self, name: &str) -> Result<PathBuf, StorageError> {
        check_name("volume", name)?;
        Ok(self.target().await?.join(name))
    }

    /// The size of volume `name`'s file in bytes (after a refresh, so that files libvirt did
    /// not create count too); None when there is no such volume.
    pub async fn file_size(&self, name: &str) -> Result<Option<u64>, StorageError> {
        check_name("volume", name)?;
        self.refresh().await?;
        Ok(self.vol_info(name, true).await?.and_then(|i| i.physical))
    }

    /// Rescans the pool's directory, so that files libvirt did not create become volumes.
    pub async fn refresh(&self) -> Result<(), StorageError> {
        let _held = self.inner.lock.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<(), StorageError> {
        let mut tries = 0;
        loop {
            match self.run(&["pool-refresh", self.pool()]).await {
                Ok(_) => return Ok(()),
                // Another client is building a volume in this pool.
                Err(e) if parse::is_pool_busy(message(&e)) && tries < BUSY_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                Err(e) => return Err(self.pool_error("refresh", e)),
            }
        }
    }

    /// Every volume in the pool, as libvirt knows them (see [`Storage::refresh`]).
    pub async fn volumes(&self) -> Result<Vec<Volume>, StorageError> {
        let text = self
            .run(&["vol-list", "--details", self.pool()])
            .await
            .map_err(|e| self.pool_error("list the volumes of", e))?;
        Ok(parse::vol_list_details(&text))
    }

    /// `vol-info --bytes` of a volume (`physical`: its file's size rather than its
    /// allocation); None when there is no such volume.
    async fn vol_info(
        &self,
        name: &str,
        physical: bool,
    ) -> Result<Option<parse::VolInfo>, StorageError> {
        let mut args = vec!["vol-info", "--bytes", "--pool", self.pool(), name];
        if physical {
            args.push("--physical");
        }
        match self.run(&args).await {
            Ok(text) => Ok(Some(self.parsed(
                "vol-info",
                &text,
                parse::vol_info(&text),
            )?)),
            Err(e) => match self.volume_error("look at", name, e) {
                StorageError::NoVolume { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// The complete base image with this sha256 (hex), if present: its marker is there and the
    /// volume has the size the marker records.
    pub async fn base(&self, digest: &str) -> Result<Option<PathBuf>, StorageError> {
        check_digest(digest)?;
        let Some(marker) = self.vol_info(&ready_marker_name(digest), false).await? else {
            return Ok(None);
        };
        let name = base_volume_name(digest);
        let size = self.vol_info(&name, true).await?.and_then(|i| i.physical);
        if size != Some(marker.capacity) {
            return Ok(None);
        }
        Ok(Some(self.path_of(&name).await?))
    }

    /// A qcow2 overlay volume backed by `backing` (a path on the host, a qcow2 image),
    /// `capacity` bytes. An existing volume of that name is an error.
    pub async fn create_overlay(
        &self,
        name: &str,
        backing: &Path,
        capacity: u64,
    ) -> Result<PathBuf, StorageError> {
        check_name("volume", name)?;
        utf8(backing)?;
        let xml = VolumeXml::overlay(name, capacity, backing).render();
        self.create_volume(name, &xml).await?;
        self.path_of(name).await
    }

    /// Creates a volume from its XML; `Exists` when one of that name is there.
    async fn create_volume(&self, name: &str, xml: &str) -> Result<(), StorageError> {
        let _held = self.inner.lock.lock().await;
        self.create_volume_locked(name, xml).await
    }

    async fn create_volume_locked(&self, name: &str, xml: &str) -> Result<(), StorageError> {
        match self.run_xml(&["vol-create", self.pool()], xml).await? {
            Ok(_) => Ok(()),
            Err(e) if parse::is_volume_exists(message(&e)) => {
                if parse::is_unlisted_file(message(&e)) {
                    // Make the file a volume, so that it can be looked at and deleted.
                    self.refresh_locked().await?;
                }
                Err(StorageError::Exists {
                    host: self.host().to_string(),
                    pool: self.pool().to_string(),
                    volume: name.to_string(),
                })
            }
            Err(e) => Err(self.volume_error("create", name, e)),
        }
    }

    /// Uploads a local file (a seed ISO) as a raw volume `name` (mode 0600: a seed holds the
    /// node's keys; libvirt hands it to qemu when the domain starts), replacing one of that name.
    /// A failed upload leaves no volume.
    pub async fn upload(&self, name: &str, local: &Path) -> Result<PathBuf, StorageError> {
        check_name("volume", name)?;
        let local_str = utf8(local)?;
        let size = local_size(local)?;
        let xml = VolumeXml::upload_target(name, 0o600).render();
        {
            let _held = self.inner.lock.lock().await;
            self.delete_locked(name).await?;
            self.create_volume_locked(name, &xml).await?;
        }
        let cleanup = push::Cleanup::new(self, vec![name.to_string()]);
        let uploaded = self
            .run(&[
                "vol-upload",
                "--sparse",
                "--pool",
                self.pool(),
                name,
                local_str,
            ])
            .await
            .map_err(|e| self.volume_error("upload", name, e));
        let checked = match uploaded {
            Ok(_) => self.check_size(name, size).await,
            Err(e) => Err(e),
        };
        match checked {
            Ok(()) => {
                cleanup.disarm();
                self.path_of(name).await
            }
            Err(e) => {
                cleanup.run().await;
                Err(e)
            }
        }
    }

    /// The volume's file has `size` bytes.
    async fn check_size(&self, name: &str, size: u64) -> Result<(), StorageError> {
        let got = self.vol_info(name, true).await?.and_then(|i| i.physical);
        match got {
            Some(got) if got == size => Ok(()),
            got => Err(StorageError::Short {
                host: self.host().to_string(),
                pool: self.pool().to_string(),
                volume: name.to_string(),
                expected: size,
                got: got.unwrap_or(0),
            }),
        }
    }

    /// Downloads volume `name` to `to` (written aside and renamed, so `to` is whole or
    /// untouched), refreshing the pool first: files libvirt did not create, like a console log
    /// that virtlogd writes into the pool's directory, appear only after a refresh.
    pub async fn download(&self, name: &str, to: &Path) -> Result<(), StorageError> {
        check_name("volume", name)?;
        self.refresh().await?;
        let local = |action, source| StorageError::Local {
            action,
            path: to.to_path_buf(),
            source,
        };
        let dir = match to.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".vnode-download-")
            .tempfile_in(dir)
            .map_err(|e| local("write", e))?;
        let tmp_path = utf8(tmp.path())?.to_string();
        self.run(&["vol-download", "--pool", self.pool(), name, &tmp_path])
            .await
            .map_err(|e| self.volume_error("download", name, e))?;
        tmp.persist(to).map_err(|e| local("write", e.error))?;
        Ok(())
    }

    /// Deletes volume `name`; fine when it is not there. A file libvirt has not seen yet (the
    /// pool not refreshed since it appeared) is found by a refresh and deleted too.
    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        check_name("volume", name)?;
        let _held = self.inner.lock.lock().await;
        if self.delete_locked(name).await? {
            return Ok(());
        }
        self.refresh_locked().await?;
        self.delete_locked(name).await.map(drop)
    }

    /// Deletes the base image with this sha256 and its marker (the marker first, so that no
    /// one takes the base for complete meanwhile); fine when they are not there.
    pub async fn delete_base(&self, digest: &str) -> Result<(), StorageError> {
        check_digest(digest)?;
        self.delete(&ready_marker_name(digest)).await?;
        self.delete(&base_volume_name(digest)).await
    }

    /// `vol-delete`; false when there was no such volume.
    async fn delete_locked(&self, name: &str) -> Result<bool, StorageError> {
        match self.run(&["vol-delete", "--pool", self.pool(), name]).await {
            Ok(_) => Ok(true),
            Err(e) => match self.volume_error("delete", name, e) {
                StorageError::NoVolume { .. } => Ok(false),
                e => Err(e),
            },
        }
    }

    async fn run(&self, args: &[&str]) -> Result<String, LibvirtError> {
        self.inner.virsh.run(args).await
    }

    /// Runs `virsh ARGS FILE` with `xml` in a temporary FILE (virsh reads the XML of
    /// `pool-define` and `vol-create` from a file on this machine and sends it to the host).
    /// The outer error is this machine's; the inner result is virsh's.
    async fn run_xml(
        &self,
        args: &[&str],
        xml: &str,
    ) -> Result<Result<String, LibvirtError>, StorageError> {
        use std::io::Write;
        let tmp_err = |source| StorageError::Local {
            action: "write a temporary XML file in",
            path: std::env::temp_dir(),
            source,
        };
        let mut file = tempfile::Builder::new()
            .prefix("vnode-storage-")
            .suffix(".xml")
            .tempfile()
            .map_err(tmp_err)?;
        file.write_all(xml.as_bytes()).map_err(tmp_err)?;
        let path = utf8(file.path())?.to_string();
        let mut args = args.to_vec();
        args.push(&path);
        Ok(self.run(&args).await)
    }

    fn parsed<T>(
        &self,
        command: &'static str,
        text: &str,
        value: Option<T>,
    ) -> Result<T, StorageError> {
        value.ok_or_else(|| StorageError::Unparsed {
            host: self.host().to_string(),
            command,
            output: text.to_string(),
        })
    }

    fn pool_error(&self, step: &'static str, e: LibvirtError) -> StorageError {
        let (host, pool) = (self.host().to_string(), self.pool().to_string());
        if e.is_connection() {
            StorageError::Unreachable {
                host,
                source: Box::new(e),
            }
        } else if parse::is_no_pool(message(&e)) {
            StorageError::NoPool { host, pool }
        } else {
            StorageError::Pool {
                host,
                pool,
                step,
                source: Box::new(e),
            }
        }
    }

    fn volume_error(&self, step: &'static str, volume: &str, e: LibvirtError) -> StorageError {
        if parse::is_no_volume(message(&e)) {
            return StorageError::NoVolume {
                host: self.host().to_string(),
                pool: self.pool().to_string(),
                volume: volume.to_string(),
            };
        }
        match self.pool_error(step, e) {
            StorageError::Pool {
                host,
                pool,
                step,
                source,
            } => StorageError::Volume {
                host,
                pool,
                volume: volume.to_string(),
                step,
                source,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_vnode_may_give_volumes() {
        for ok in [
            "vnode03.qcow2",
            "base-ab.qcow2.ready",
            "seed_1+a@b:c",
            "A-1",
        ] {
            check_name("volume", ok).unwrap();
        }
        for bad in [
            "",
            "-rf",
            ".ready",
            "..",
            "a/b",
            "a b",
            "ä",
            "x;y",
            &"a".repeat(241),
        ] {
            assert!(
                matches!(check_name("volume", bad), Err(StorageError::BadName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digests_are_lowercase_sha256_hex() {
        let d = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        check_digest(d).unwrap();
        assert_eq!(base_volume_name(d), format!("base-{d}.qcow2"));
        assert_eq!(ready_marker_name(d), format!("base-{d}.qcow2.ready"));
        check_name("volume", &ready_marker_name(d)).unwrap();
        for bad in [&d[1..], &d.to_uppercase(), &format!("{}g", &d[1..])] {
            assert!(check_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_host_and_say_what_next() {
        let s = Storage::new(
            Virsh::new("qemu+ssh://root@h1/system"),
            "vnode",
            Path::new("/var/lib/libvirt/vnode"),
        );
        let e = s.volume_error(
            "delete",
            "x",
            LibvirtError::Virsh {
                args: "vol-delete".into(),
                message: "failed to get vol 'x' Storage volume not found: no storage vol with matching path 'x'".into(),
            },
        );
        assert!(matches!(e, StorageError::NoVolume { .. }), "{e:?}");
        let e = s.volume_error(
            "create",
            "x",
            LibvirtError::Virsh {
                args: "vol-create".into(),
                message: "Failed to connect socket to '/var/run/libvirt/libvirt-sock'".into(),
            },
        );
        assert!(e.is_connection());
        assert!(e.to_string().contains("qemu+ssh://root@h1/system"), "{e}");
        let e = s.pool_error(
            "refresh",
            LibvirtError::Virsh {
                args: "pool-refresh vnode".into(),
                message: "failed to get pool 'vnode' Storage pool not found: no storage pool with matching name 'vnode'".into(),
            },
        );
        assert!(
            e.to_string()
                .starts_with("storage pool vnode is not defined on qemu+ssh://root@h1/system"),
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::exit::EXIT_FAILED);
        let e = check_name("volume", "a b").unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::EXIT_BAD_INPUT);
    }
}
