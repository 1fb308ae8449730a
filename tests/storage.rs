//! `vnode::libvirt::storage` against a real libvirtd (root only): the namespace lab's, reached
//! from here through its unix socket with libvirt's remote protocol (`qemu+unix://`, the same
//! client code as `qemu+ssh://`, no network traffic). One lab serves every step and is taken
//! down at the end, also when a step fails.
//!
//! What each step proves is in its doc comment; `upload_throughput` prints the MB/s of a 300 MiB
//! file (run with `--nocapture` to see it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::gate::{Needs, require_root_or_skip};
use common::lab::Lab;
use sha2::{Digest, Sha256};
use vnode::libvirt::storage::{Storage, StorageError, Timing, base_volume_name, ready_marker_name};
use vnode::libvirt::virsh::Virsh;

/// The test pool, inside the lab's /var/lib/libvirt (the lab's own directory on this side).
const POOL: &str = "vnode-test";
const POOL_PATH: &str = "/var/lib/libvirt/vnode-test";

struct Host<'a> {
    lab: &'a Lab,
    uri: String,
    scratch: tempfile::TempDir,
}

impl Host<'_> {
    fn storage(&self, pool: &str, path: &str) -> Storage {
        Storage::new(Virsh::new(&self.uri), pool, Path::new(path))
    }

    fn pool(&self) -> Storage {
        self.storage(POOL, POOL_PATH)
    }

    /// `virsh -q -c URI ARGS` from this side, expecting success.
    fn virsh(&self, args: &[&str]) -> String {
        let out = Command::new("virsh")
            .env("LC_ALL", "C")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A path inside the lab (its /var/lib/libvirt) as this side sees it.
    fn outside(&self, inside: &Path) -> PathBuf {
        let rest = inside.strip_prefix("/var/lib/libvirt").unwrap();
        self.lab.dir().join("libvirt/lib").join(rest)
    }

    /// `len` random bytes in a scratch file.
    fn random_file(&self, name: &str, len: usize) -> PathBuf {
        let path = self.scratch.path().join(name);
        let mut data = vec![0u8; len];
        let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut urandom, &mut data).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }

    /// A qcow2 image (a disk of 64 MiB) holding `mib` MiB of random data, and its sha256.
    fn qcow2(&self, name: &str, mib: usize) -> (PathBuf, String) {
        let raw = self.random_file(&format!("{name}.raw"), mib << 20);
        let status = Command::new("truncate")
            .args(["-s", "64M"])
            .arg(&raw)
            .status()
            .unwrap();
        assert!(status.success());
        let path = self.scratch.path().join(name);
        let status = Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .args([&raw, &path])
            .status()
            .unwrap();
        assert!(status.success());
        let digest = sha256(&path);
        (path, digest)
    }

    /// The volume's content, fetched back with `Storage::download`.
    async fn fetch(&self, storage: &Storage, name: &str) -> PathBuf {
        let to = self.scratch.path().join(format!("{name}.downloaded"));
        storage.download(name, &to).await.unwrap();
        to
    }

    fn volume_names(&self) -> Vec<String> {
        self.virsh(&["vol-list", POOL])
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    }
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn no_progress(_: u64, _: u64) {}

#[test]
fn storage_pool_through_libvirts_remote_protocol() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    assert!(
        Command::new("qemu-img").arg("--version").output().is_ok(),
        "qemu-img is missing; install qemu-utils"
    );
    let lab = Lab::up("storage");
    let host = Host {
        uri: format!(
            "qemu+unix:///system?socket={}",
            lab.dir().join("libvirt/run/libvirt-sock").display()
        ),
        lab: &lab,
        scratch: tempfile::tempdir().unwrap(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let steps = async {
            ensure_pool_twice(&host).await;
            a_stopped_pool_without_its_directory_comes_back(&host).await;
            two_ensure_pools_at_once(&host).await;
            a_missing_pool_with_an_odd_path_is_created(&host).await;
            push_base_uploads_once(&host).await;
            concurrent_pushes_upload_once(&host).await;
            a_stalled_half_upload_is_taken_over(&host).await;
            failed_and_interrupted_pushes_leave_nothing(&host).await;
            an_overlay_is_backed_by_the_base(&host).await;
            upload_download_round_trip(&host).await;
            delete_is_fine_when_missing(&host).await;
            upload_throughput(&host).await;
        };
        tokio::time::timeout(Duration::from_secs(600), steps)
            .await
            .expect("the storage steps took longer than 10 minutes");
    });
    drop(host);
    lab.down();
}

/// A missing pool is defined, built, started and marked for autostart; a second call changes
/// nothing and reports the same directory, which qemu can enter (0755).
async fn ensure_pool_twice(host: &Host<'_>) {
    let storage = host.pool();
    let first = storage.ensure_pool().await.unwrap();
    assert_eq!(first, Path::new(POOL_PATH));
    let second = storage.ensure_pool().await.unwrap();
    assert_eq!(first, second);
    let info = host.virsh(&["pool-info", POOL]);
    assert!(info.contains("State:          running"), "{info}");
    assert!(info.contains("Autostart:      yes"), "{info}");
    assert_eq!(mode(&host.outside(&first)), 0o755);
    assert!(storage.volumes().await.unwrap().is_empty());
}

/// A pool that was stopped, and whose directory was removed, is built and started again.
async fn a_stopped_pool_without_its_directory_comes_back(host: &Host<'_>) {
    host.virsh(&["pool-destroy", POOL]);
    std::fs::remove_dir(host.outside(Path::new(POOL_PATH))).unwrap();
    let path = host.pool().ensure_pool().await.unwrap();
    assert!(host.outside(&path).is_dir());
    assert!(host.virsh(&["pool-info", POOL]).contains("running"));
}

/// Two processes preparing the same host at once both end with the pool running: each step
/// accepts that the other did it first.
async fn two_ensure_pools_at_once(host: &Host<'_>) {
    let path = "/var/lib/libvirt/vnode-race";
    let (a, b) = (
        host.storage("vnode-race", path),
        host.storage("vnode-race", path),
    );
    let (ra, rb) = tokio::join!(a.ensure_pool(), b.ensure_pool());
    assert_eq!(ra.unwrap(), Path::new(path));
    assert_eq!(rb.unwrap(), Path::new(path));
    assert!(host.virsh(&["pool-info", "vnode-race"]).contains("running"));
}

/// A pool name that is not defined gets created, with a directory whose name XML must escape
/// (and with spaces that `vol-list --details` must survive); a second pool on the same
/// directory is refused with a message naming the first.
async fn a_missing_pool_with_an_odd_path_is_created(host: &Host<'_>) {
    let odd = "/var/lib/libvirt/odd & <'dir'>";
    let storage = host.storage("vnode-odd", odd);
    assert_eq!(storage.ensure_pool().await.unwrap(), Path::new(odd));
    let local = host.random_file("seed-odd", 4096);
    let path = storage.upload("seed.iso", &local).await.unwrap();
    assert_eq!(path, Path::new(odd).join("seed.iso"));
    let volumes = storage.volumes().await.unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(
        (volumes[0].name.as_str(), &volumes[0].path),
        ("seed.iso", &path)
    );
    assert_eq!(volumes[0].capacity, 4096);

    let twin = host.storage("vnode-twin", odd);
    match twin.ensure_pool().await {
        Err(e @ StorageError::PathTaken { .. }) => {
            assert!(e.to_string().contains("vnode-odd"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// The first push uploads the whole image with progress up to its size; the base is complete,
/// readable by qemu (0644), has its marker, and holds the image's bytes; a second push uploads
/// nothing.
async fn push_base_uploads_once(host: &Host<'_>) {
    let storage = host.pool();
    let (image, digest) = host.qcow2("once.qcow2", 8);
    let size = std::fs::metadata(&image).unwrap().len();
    assert_eq!(storage.base(&digest).await.unwrap(), None);
    let seen = Mutex::new(Vec::new());
    let progress = |done, total| seen.lock().unwrap().push((done, total));
    let pushed = storage.push_base(&image, &digest, &progress).await.unwrap();
    assert_eq!(pushed.uploaded_bytes, size);
    assert_eq!(
        pushed.path,
        Path::new(POOL_PATH).join(base_volume_name(&digest))
    );
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&(size, size)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(seen.len() > 2, "progress came once per MiB: {seen:?}");

    assert_eq!(
        storage.base(&digest).await.unwrap(),
        Some(pushed.path.clone())
    );
    assert!(host.volume_names().contains(&ready_marker_name(&digest)));
    assert_eq!(mode(&host.outside(&pushed.path)), 0o644);
    let back = host.fetch(&storage, &base_volume_name(&digest)).await;
    assert_eq!(sha256(&back), digest);

    let again = storage
        .push_base(&image, &digest, &no_progress)
        .await
        .unwrap();
    assert_eq!((again.uploaded_bytes, &again.path), (0, &pushed.path));

    // The base deleted without its marker (by hand): it is not complete, and is pushed again.
    storage.delete(&base_volume_name(&digest)).await.unwrap();
    assert_eq!(storage.base(&digest).await.unwrap(), None);
    let anew = storage
        .push_base(&image, &digest, &no_progress)
        .await
        .unwrap();
    assert_eq!(anew.uploaded_bytes, size);
    assert_eq!(storage.base(&digest).await.unwrap(), Some(pushed.path));
}

/// Two processes (two `Storage`s, each with its own lock) push the same image at once: one
/// uploads, the other waits for it; both get the same path; the content is the image's.
async fn concurrent_pushes_upload_once(host: &Host<'_>) {
    let (image, digest) = host.qcow2("twice.qcow2", 48);
    let size = std::fs::metadata(&image).unwrap().len();
    let (a, b) = (host.pool(), host.pool());
    let (ra, rb) = tokio::join!(
        a.push_base(&image, &digest, &no_progress),
        b.push_base(&image, &digest, &no_progress)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut uploaded = [ra.uploaded_bytes, rb.uploaded_bytes];
    uploaded.sort();
    assert_eq!(uploaded, [0, size], "{ra:?} {rb:?}");
    assert_eq!(ra.path, rb.path);
    let back = host.fetch(&a, &base_volume_name(&digest)).await;
    assert_eq!(sha256(&back), digest);
}

/// A base volume without marker that stopped growing (its uploader died, libvirt kept the
/// partial file) is deleted and uploaded anew after the stall timeout, and only then reported;
/// also when the partial file is one libvirt has not listed (written behind its back).
async fn a_stalled_half_upload_is_taken_over(host: &Host<'_>) {
    take_over(host, "stale.qcow2", false).await;
    take_over(host, "unlisted.qcow2", true).await;
}

async fn take_over(host: &Host<'_>, image: &str, unlisted: bool) {
    let (image, digest) = host.qcow2(image, 8);
    let size = std::fs::metadata(&image).unwrap().len();
    let name = base_volume_name(&digest);
    let head = &std::fs::read(&image).unwrap()[..1 << 20];
    if unlisted {
        let path = host.outside(Path::new(POOL_PATH)).join(&name);
        std::fs::write(path, head).unwrap();
        assert!(!host.volume_names().contains(&name));
    } else {
        let local = host.scratch.path().join("stale.head");
        std::fs::write(&local, head).unwrap();
        host.virsh(&["vol-create-as", POOL, &name, "0", "--format", "raw"]);
        host.virsh(&["vol-upload", "--pool", POOL, &name, local.to_str().unwrap()]);
    }

    let timing = Timing {
        poll: Duration::from_millis(200),
        stall: Duration::from_secs(2),
    };
    let storage = Storage::with_timing(Virsh::new(&host.uri), POOL, Path::new(POOL_PATH), timing);
    assert_eq!(storage.base(&digest).await.unwrap(), None, "half-uploaded");
    let watched = Mutex::new(Vec::new());
    let progress = |done, total| watched.lock().unwrap().push((done, total));
    let t0 = Instant::now();
    let pushed = storage.push_base(&image, &digest, &progress).await.unwrap();
    assert!(t0.elapsed() >= timing.stall, "{:?}", t0.elapsed());
    assert_eq!(pushed.uploaded_bytes, size);
    assert!(
        watched.lock().unwrap().contains(&(1 << 20, size)),
        "the wait reported the stalled upload's size"
    );
    let back = host.fetch(&storage, &name).await;
    assert_eq!(sha256(&back), digest);
}

/// A push whose local file does not match its digest fails and leaves neither volume nor
/// marker; a push dropped mid-upload (Ctrl-C) removes its volume too.
async fn failed_and_interrupted_pushes_leave_nothing(host: &Host<'_>) {
    let storage = host.pool();
    let (image, _) = host.qcow2("liar.qcow2", 4);
    let claimed = "0".repeat(64);
    match storage.push_base(&image, &claimed, &no_progress).await {
        Err(e @ StorageError::DigestMismatch { .. }) => {
            assert!(e.to_string().contains("nothing was left"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let names = host.volume_names();
    assert!(
        !names.iter().any(|n| n.contains(&claimed)),
        "left behind: {names:?}"
    );

    let big = host.random_file("interrupted.img", 300 << 20);
    let digest = sha256(&big);
    let sent = AtomicU64::new(0);
    let progress = |done, _| sent.store(done, Ordering::Relaxed);
    let started = async {
        while sent.load(Ordering::Relaxed) < 8 << 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        r = storage.push_base(&big, &digest, &progress) => panic!("finished before it was interrupted: {r:?}"),
        () = started => {}
    }
    let name = base_volume_name(&digest);
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.volume_names().contains(&name) {
        assert!(Instant::now() < deadline, "{name} is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(storage.base(&digest).await.unwrap(), None);
}

/// An overlay is a qcow2 of the asked size whose backing file is the base (qcow2), as qemu-img
/// in the lab reads it, and `qemu-img check` finds no error; the base is readable by qemu's
/// user (libvirt-qemu); a second overlay of that name is refused.
async fn an_overlay_is_backed_by_the_base(host: &Host<'_>) {
    let storage = host.pool();
    let (image, digest) = host.qcow2("backing.qcow2", 2);
    let base = storage
        .push_base(&image, &digest, &no_progress)
        .await
        .unwrap()
        .path;
    let overlay = storage
        .create_overlay("vnode03.qcow2", &base, 10 << 30)
        .await
        .unwrap();
    assert_eq!(overlay, Path::new(POOL_PATH).join("vnode03.qcow2"));
    let overlay_s = overlay.to_str().unwrap();
    let info = host
        .lab
        .exec_ok(["qemu-img", "info", "--output=json", overlay_s]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "qcow2", "{info:#}");
    assert_eq!(info["virtual-size"], 10u64 << 30, "{info:#}");
    assert_eq!(info["backing-filename"], base.to_str().unwrap(), "{info:#}");
    assert_eq!(info["backing-filename-format"], "qcow2", "{info:#}");
    host.lab.exec_ok(["qemu-img", "check", overlay_s]);
    // qemu's user reads the shared base without libvirt's help (0755 pool, 0644 base).
    let as_qemu = host.lab.exec_ok([
        "runuser",
        "-u",
        "libvirt-qemu",
        "--",
        "qemu-img",
        "info",
        "--output=json",
        base.to_str().unwrap(),
    ]);
    assert!(as_qemu.contains("\"format\": \"qcow2\""), "{as_qemu}");
    match storage
        .create_overlay("vnode03.qcow2", &base, 1 << 30)
        .await
    {
        Err(StorageError::Exists { volume, .. }) => assert_eq!(volume, "vnode03.qcow2"),
        other => panic!("{other:?}"),
    }
}

/// A file uploaded as a volume comes back byte for byte (mode 0600: a seed holds keys); a
/// second upload of the name replaces it; a file written into the pool's directory behind
/// libvirt's back (a console log) can be downloaded.
async fn upload_download_round_trip(host: &Host<'_>) {
    let storage = host.pool();
    let first = host.random_file("seed1.iso", (1 << 20) + 12345);
    let path = storage.upload("vnode03-seed.iso", &first).await.unwrap();
    assert_eq!(mode(&host.outside(&path)), 0o600);
    let back = host.fetch(&storage, "vnode03-seed.iso").await;
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&first).unwrap()
    );

    let second = host.random_file("seed2.iso", 777);
    assert_eq!(
        storage.upload("vnode03-seed.iso", &second).await.unwrap(),
        path
    );
    let back = host.fetch(&storage, "vnode03-seed.iso").await;
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&second).unwrap()
    );

    let log = host.outside(Path::new(POOL_PATH)).join("vnode03.log");
    std::fs::write(&log, "console says hi\n").unwrap();
    let back = host.fetch(&storage, "vnode03.log").await;
    assert_eq!(std::fs::read_to_string(back).unwrap(), "console says hi\n");

    match storage
        .download("nope", &host.scratch.path().join("nope"))
        .await
    {
        Err(StorageError::NoVolume { volume, .. }) => assert_eq!(volume, "nope"),
        other => panic!("{other:?}"),
    }
    assert!(!host.scratch.path().join("nope").exists());
}

/// Deleting a volume that is not there is fine; deleting one removes its file, also a file
/// libvirt had not listed yet.
async fn delete_is_fine_when_missing(host: &Host<'_>) {
    let storage = host.pool();
    storage.delete("nope").await.unwrap();
    storage.delete("vnode03.qcow2").await.unwrap();
    assert!(!host.volume_names().contains(&"vnode03.qcow2".to_string()));
    let unlisted = host.outside(Path::new(POOL_PATH)).join("unlisted.log");
    std::fs::write(&unlisted, "x").unwrap();
    storage.delete("unlisted.log").await.unwrap();
    assert!(!unlisted.exists());
}

/// The MB/s of a 300 MiB file through qemu+unix: `push_base` (a pipe vnode feeds, hashing)
/// and `upload` (`vol-upload --sparse` reading the file itself).
async fn upload_throughput(host: &Host<'_>) {
    let storage = host.pool();
    let file = host.random_file("throughput.img", 300 << 20);
    let digest = sha256(&file);
    let mb = (300u64 << 20) as f64 / 1e6;
    let pushed = storage
        .push_base(&file, &digest, &no_progress)
        .await
        .unwrap();
    assert_eq!(pushed.uploaded_bytes, 300 << 20);
    let t0 = Instant::now();
    storage.upload("throughput.img", &file).await.unwrap();
    let upload = t0.elapsed().as_secs_f64();
    eprintln!(
        "throughput of 300 MiB through qemu+unix: push_base {:.0} MB/s ({:.2} s), upload {:.0} MB/s ({:.2} s)",
        mb / pushed.seconds,
        pushed.seconds,
        mb / upload,
        upload
    );
    storage.delete_base(&digest).await.unwrap();
    storage.delete("throughput.img").await.unwrap();
    assert_eq!(storage.base(&digest).await.unwrap(), None);
}
