//! Base images on a host: uploaded once, named by their sha256, never seen half-uploaded, and
//! safe when several vnode processes push the same image to the same host at once.
//!
//! libvirt offers no rename of a volume and no lock, but creating a volume is exclusive: libvirt
//! checks the name and adds the volume to the pool under the pool's lock, and the directory
//! backend creates the file with O_EXCL. So the base volume `base-<sha256>.qcow2` is its own
//! lock, and a second volume, the marker `base-<sha256>.qcow2.ready`, says it is complete:
//!
//! 1. Complete: the marker exists and the base volume's file has the size the marker's capacity
//!    records (the marker is an empty sparse file of that length). [`Storage::base`] reports
//!    only such a base; nothing else hands out its path.
//! 2. Claim: `vol-create` of the base volume, empty. The one process whose create succeeds
//!    uploads; any marker left from an earlier, deleted base is removed first (only a fresh
//!    upload may mark the volume again).
//! 3. Upload: `vol-upload` from a pipe that vnode feeds from the local file, counting and hashing
//!    what it sends. Then: the bytes sent hash to the digest, the volume's file has their size,
//!    and only then the marker is created.
//! 4. Wait: a process whose create failed watches the volume's size (its progress) until the
//!    base is complete. When the size stays the same for [`Timing::stall`] with no marker, the
//!    uploader is taken for gone: the volume is deleted (if it still has that size) and the
//!    process goes back to 2, where again one process wins.
//! 5. A failed or interrupted upload deletes its volume: awaited on an error, and from `Drop`
//!    (a detached `virsh vol-delete`) when the future is dropped (Ctrl-C).
//!
//! Why a half-uploaded base is never used: the upload writes the file in order, with no holes
//! (a pipe, not `--sparse`), so the file reaches the marker's size only with its last byte,
//! and the marker is written only after the size and the sha256 of the sent bytes were checked.
//! An uploader taken for gone that wakes up again (a stall longer than `stall`) wrote into the
//! deleted file; its size check then sees the new upload's file, shorter, and it goes back to
//! waiting instead of marking; should it mark anyway, after the new upload completed, the file
//! it vouches for is complete. Left out on purpose: a process that stops for longer than `stall`
//! between its create and the start of its upload would write into its successor's file the
//! same bytes at the same offsets, which is harmless unless its local file differs from its
//! digest, and that case is deleted when its sha256 check fails.
//!
//! Why progress comes from the pipe: virsh prints none, and polling `vol-info` during the
//! upload costs a round trip per poll (a new ssh connection each over `qemu+ssh`) and reports
//! what reached the disk, late. Feeding the pipe counts exactly what was handed to virsh (at
//! most a few MiB of buffers ahead of the host), costs nothing remote, and hashing the same
//! bytes proves that what went up is the image the digest names. `--sparse` is lost, which
//! costs little for qcow2: its clusters are allocated densely and the file has no holes to skip.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;

use super::xml::VolumeXml;
use super::{Storage, StorageError, base_volume_name, check_digest, local_size, ready_marker_name};
use crate::libvirt::LibvirtError;

/// What [`Storage::push_base`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    /// The base volume on the host.
    pub path: PathBuf,
    /// Bytes this call sent; 0 when the base was there or another process uploaded it.
    pub uploaded_bytes: u64,
    pub seconds: f64,
}

/// How many times one push claims the volume (the first upload, then after each takeover).
const MAX_CLAIMS: u32 = 5;

/// Reads of the local image, and writes into virsh's pipe.
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BaseState {
    /// The marker is there and the volume has the size it records.
    Complete,
    /// No base volume.
    Absent,
    /// A base volume of this size, not (yet) complete.
    Partial(u64),
}

/// How a wait for another process's upload ended.
enum Watched {
    Complete,
    /// The volume went away (its uploader failed and cleaned up).
    Gone,
    /// The volume kept this size for `stall`.
    Stalled(u64),
}

/// How our own upload ended.
enum Uploaded {
    Marked(u64),
    /// Afterwards the volume was not the file we wrote: another process took it over.
    Replaced,
}

enum Feed {
    Read(io::Error),
    Write(io::Error),
}

impl Storage {
    pub(super) async fn base_state(&self, digest: &str) -> Result<BaseState, StorageError> {
        let marker = self.vol_info(&ready_marker_name(digest), false).await?;
        let base = self.vol_info(&base_volume_name(digest), true).await?;
        Ok(match (base.and_then(|b| b.physical), marker) {
            (None, _) => BaseState::Absent,
            (Some(size), Some(m)) if size == m.capacity => BaseState::Complete,
            (Some(size), _) => BaseState::Partial(size),
        })
    }

    /// Uploads a local qcow2 base image once per host, named by its sha256 `digest` (the local
    /// file's; checked on the way) as [`base_volume_name`] says, and returns it once complete.
    /// `progress(done, total)` follows the bytes sent, or another process's upload while this
    /// one waits for it. See this module's documentation for how concurrent pushes agree.
    pub async fn push_base(
        &self,
        local: &Path,
        digest: &str,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Pushed, StorageError> {
        check_digest(digest)?;
        let started = Instant::now();
        let size = local_size(local)?;
        let name = base_volume_name(digest);
        let pushed = |path, uploaded_bytes| Pushed {
            path,
            uploaded_bytes,
            seconds: started.elapsed().as_secs_f64(),
        };
        let mut claims = 0;
        loop {
            match self.base_state(digest).await? {
                BaseState::Complete => {
                    progress(size, size);
                    return Ok(pushed(self.path_of(&name).await?, 0));
                }
                BaseState::Partial(_) => match self.watch(digest, size, progress).await? {
                    Watched::Complete => continue,
                    Watched::Gone => {}
                    Watched::Stalled(seen) => self.take_over(digest, seen).await?,
                },
                BaseState::Absent => {}
            }
            if claims == MAX_CLAIMS {
                return Err(StorageError::GaveUp {
                    host: self.host().to_string(),
                    pool: self.pool().to_string(),
                    volume: name,
                    attempts: claims,
                });
            }
            claims += 1;
            let cleanup = match self.claim(digest).await {
                Ok(cleanup) => cleanup,
                // Another process claimed it first: wait for it (the loop's next turn).
                Err(StorageError::Exists { .. }) => continue,
                Err(e) => return Err(e),
            };
            match self.upload_claimed(local, digest, size, progress).await {
                Ok(Uploaded::Marked(sent)) => {
                    cleanup.disarm();
                    progress(size, size);
                    return Ok(pushed(self.path_of(&name).await?, sent));
                }
                Ok(Uploaded::Replaced) => cleanup.disarm(),
                Err(e) => {
                    cleanup.run().await;
                    return Err(e);
                }
            }
        }
    }

    /// Creates the empty base volume (mode 0644: qemu reads a base that many domains share),
    /// which only one process can do, and removes a marker left from an earlier base.
    async fn claim(&self, digest: &str) -> Result<Cleanup<'_>, StorageError> {
        let name = base_volume_name(digest);
        let xml = VolumeXml::upload_target(&name, 0o644).render();
        let held = self.inner.lock.lock().await;
        self.create_volume_locked(&name, &xml).await?;
        let cleanup = Cleanup::new(self, vec![name]);
        match self.delete_locked(&ready_marker_name(digest)).await {
            Ok(_) => Ok(cleanup),
            Err(e) => {
                drop(held);
                cleanup.run().await;
                Err(e)
            }
        }
    }

    /// Streams the image into the claimed volume, checks it, and marks it complete.
    async fn upload_claimed(
        &self,
        local: &Path,
        digest: &str,
        size: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Uploaded, StorageError> {
        let name = base_volume_name(digest);
        let (sent, sha256) = self.stream(&name, local, size, progress).await?;
        if sha256 != digest {
            return Err(StorageError::DigestMismatch {
                host: self.host().to_string(),
                local: local.to_path_buf(),
                expected: digest.to_string(),
                actual: sha256,
            });
        }
        let on_host = self.vol_info(&name, true).await?.and_then(|i| i.physical);
        if on_host != Some(size) {
            return Ok(Uploaded::Replaced);
        }
        self.mark(digest, size).await?;
        Ok(Uploaded::Marked(sent))
    }

    /// Creates the marker: an empty sparse raw volume whose capacity is the base's size. One
    /// already there with that size (another process's, for the same file) is fine; one with
    /// another size is replaced.
    async fn mark(&self, digest: &str, size: u64) -> Result<(), StorageError> {
        let marker = ready_marker_name(digest);
        let xml = VolumeXml {
            capacity: size,
            ..VolumeXml::upload_target(&marker, 0o644)
        }
        .render();
        for _ in 0..2 {
            match self.create_volume(&marker, &xml).await {
                Ok(()) => return Ok(()),
                Err(StorageError::Exists { .. }) => match self.vol_info(&marker, false).await? {
                    Some(info) if info.capacity == size => return Ok(()),
                    _ => self.delete(&marker).await?,
                },
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::Exists {
            host: self.host().to_string(),
            pool: self.pool().to_string(),
            volume: marker,
        })
    }

    /// Watches another process's upload: its size is our progress.
    async fn watch(
        &self,
        digest: &str,
        total: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Watched, StorageError> {
        let timing = self.inner.timing;
        let mut last = None;
        let mut since = Instant::now();
        loop {
            match self.base_state(digest).await? {
                BaseState::Complete => return Ok(Watched::Complete),
                BaseState::Absent => return Ok(Watched::Gone),
                BaseState::Partial(size) => {
                    progress(size.min(total), total);
                    if last != Some(size) {
                        last = Some(size);
                        since = Instant::now();
                    } else if since.elapsed() >= timing.stall {
                        return Ok(Watched::Stalled(size));
                    }
                }
            }
            tokio::time::sleep(timing.poll).await;
        }
    }

    /// Deletes a stalled upload's volume if it is still incomplete and of the size seen.
    async fn take_over(&self, digest: &str, seen: u64) -> Result<(), StorageError> {
        let name = base_volume_name(digest);
        let _held = self.inner.lock.lock().await;
        if self.base_state(digest).await? == BaseState::Partial(seen) {
            tracing::debug!(
                "{}: the upload of {name} stalled at {seen} bytes; taking it over",
                self.host()
            );
            self.delete_locked(&name).await?;
        }
        Ok(())
    }

    /// `virsh vol-upload --pool POOL NAME /dev/stdin`, fed from `local`; the bytes sent and
    /// their sha256.
    async fn stream(
        &self,
        name: &str,
        local: &Path,
        size: u64,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<(u64, String), StorageError> {
        let args = ["vol-upload", "--pool", self.pool(), name, "/dev/stdin"];
        let mut cmd = tokio::process::Command::from(
            self.inner
                .virsh
                .command_from(std::process::Command::new("virsh"), &args),
        );
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            self.volume_error(
                "upload",
                name,
                LibvirtError::Tool {
                    tool: "virsh".into(),
                    message: format!("cannot run it: {e}; install libvirt-clients"),
                },
            )
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        // A pipe of one chunk rather than 64 KiB: far fewer wake-ups of virsh and of us. A
        // refusal (a lower /proc/sys/fs/pipe-max-size) only costs speed.
        // SAFETY: fcntl on a pipe this process owns, with an integer argument.
        unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let read_stderr = async {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text).await;
            text
        };
        let (fed, stderr) = tokio::join!(feed(local, stdin, size, progress), read_stderr);
        let status = child.wait().await;
        crate::process::exec::log_end(cmd.as_std(), started, &status);
        let failed = |message: String| {
            self.volume_error(
                "upload",
                name,
                LibvirtError::Virsh {
                    args: args.join(" "),
                    message,
                },
            )
        };
        let local_error = |action, source| StorageError::Local {
            action,
            path: local.to_path_buf(),
            source,
        };
        let status = status.map_err(|e| failed(e.to_string()))?;
        match fed {
            // virsh took the end of the pipe for the end of the file; the volume is short.
            Err(Feed::Read(e)) => Err(local_error("read", e)),
            _ if !status.success() => Err(failed(
                String::from_utf8_lossy(&stderr)
                    .trim()
                    .trim_start_matches("error: ")
                    .replace('\n', " "),
            )),
            Err(Feed::Write(e)) => Err(failed(format!("writing to virsh: {e}"))),
            Ok((sent, _)) if sent != size => Err(local_error(
                "upload",
                io::Error::other(format!(
                    "it changed while it was read ({size} bytes before, {sent} read)"
                )),
            )),
            Ok(sent) => Ok(sent),
        }
    }
}

/// Copies the file into virsh's stdin, counting, and closes the pipe at the end; a blocking
/// thread reads and hashes the next chunks meanwhile (sha256 then costs no time of the upload).
/// The bytes sent and their sha256.
async fn feed(
    local: &Path,
    mut stdin: ChildStdin,
    total: u64,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<(u64, String), Feed> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let path = local.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || -> io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            let n = (&mut file).take(CHUNK as u64).read_to_end(&mut chunk)?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk);
            if tx.blocking_send(chunk).is_err() {
                break; // the writer stopped
            }
        }
        Ok(hex::encode(hasher.finalize()))
    });
    let mut sent = 0u64;
    let mut write_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = stdin.write_all(&chunk).await {
            write_error = Some(e);
            break;
        }
        sent += chunk.len() as u64;
        progress(sent.min(total), total);
    }
    drop(rx);
    let hashed = reader
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("the reading thread failed: {e}"))));
    match (hashed, write_error) {
        // Dropping stdin ends the pipe early; the caller deletes the short volume.
        (Err(e), _) => Err(Feed::Read(e)),
        (Ok(_), Some(e)) => Err(Feed::Write(e)),
        (Ok(sha256), None) => {
            stdin.shutdown().await.map_err(Feed::Write)?;
            Ok((sent, sha256))
        }
    }
}

/// Volumes made for an operation that has not succeeded yet: deleted (awaited) by
/// [`Cleanup::run`] on an error, or from `Drop` when the future making them is dropped.
pub(super) struct Cleanup<'a> {
    storage: &'a Storage,
    volumes: Vec<String>,
    armed: bool,
}

impl<'a> Cleanup<'a> {
    pub(super) fn new(storage: &'a Storage, volumes: Vec<String>) -> Cleanup<'a> {
        Cleanup {
            storage,
            volumes,
            armed: true,
        }
    }

    /// The operation succeeded: keep the volumes.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }

    /// Deletes the volumes now; a failure to is logged, the caller's error is the one to tell.
    pub(super) async fn run(mut self) {
        self.armed = false;
        for volume in &self.volumes {
            if let Err(e) = self.storage.delete(volume).await {
                tracing::warn!("cannot remove the unfinished volume {volume}: {e}");
            }
        }
    }
}

impl Drop for Cleanup<'_> {
    /// The future was dropped mid-way (Ctrl-C, a cancelled node): no await is possible here, so
    /// a `virsh vol-delete` is started detached, in its own process group (a second Ctrl-C at
    /// the terminal does not stop it), and a thread reaps it.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for volume in &self.volumes {
            let mut cmd = self.storage.inner.virsh.command_from(
                std::process::Command::new("virsh"),
                &["vol-delete", "--pool", self.storage.pool(), volume],
            );
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            match cmd.spawn() {
                Ok(mut child) => {
                    std::thread::spawn(move || child.wait());
                }
                Err(e) => tracing::warn!("cannot remove the unfinished volume {volume}: {e}"),
            }
        }
    }
}
