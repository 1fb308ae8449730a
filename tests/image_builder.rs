//! The test image builder (tests/image/build.sh) on a machine that never built an image: the three
//! variants build side by side into an empty cache while the machine makes new mount namespaces
//! all along, as libvirt does for every guest it starts and as the VM tests do beside a build.
//! Only the rootfs tarballs (mmdebstrap: minutes of downloads and package installs) come from the
//! machine's own cache when it has them: `.ci/run` builds them from nothing, side by side, just
//! before the tests on every CI machine, and so does the first build anywhere. Each image then passes tests/image/check.sh, which reads it as its boot will.
//! And check.sh itself catches each way a disk was seen broken: no grub.cfg, a kernel that
//! grub.cfg names but the disk lacks, a root UUID (kernel command line or fstab) that is not the
//! filesystem's.
//!
//! Needs root (loop devices, mount, chroot); `VNODE_SKIP_VM_TESTS=1` skips it, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::broken_disk::{ABSENT_UUID, Breakage, broken_copy};
use common::gate::{Needs, require_root_or_skip};

const VARIANTS: [&str; 3] = ["networkd", "nm", "netplan"];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/image")
        .join(name)
}

/// A scratch directory below /var/tmp (the builds need a few GiB; /tmp may be a small tmpfs).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("vnode-image-builder-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check(image: &Path) -> Output {
    Command::new("bash")
        .arg(script("check.sh"))
        .arg(image)
        .output()
        .unwrap()
}

/// Makes a new mount namespace every half second, each living 20 s, until dropped; every process
/// it started is waited for.
struct NamespaceChurn {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NamespaceChurn {
    fn start() -> NamespaceChurn {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<Child> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let child = Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "--", "sleep", "20"])
                    .spawn()
                    .expect("unshare (util-linux) runs");
                held.push(child);
                std::thread::sleep(Duration::from_millis(500));
            }
            for mut child in held {
                let _ = child.kill();
                let _ = child.wait();
            }
        });
        NamespaceChurn {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NamespaceChurn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn three_variants_build_side_by_side_into_an_empty_cache_and_pass_their_checks() {
    if require_root_or_skip(Needs::Vms) {
        return;
    }
    let dir = scratch();
    let cache = dir.path().join("cache");
    let reused = reuse_rootfs_tarballs(&cache);
    eprintln!("rootfs tarballs from the machine's cache: {reused:?}");
    let churn = NamespaceChurn::start();
    let builds: Vec<(&str, Child)> = VARIANTS
        .iter()
        .map(|v| {
            let child = Command::new("bash")
                .arg(script("build.sh"))
                .arg(v)
                .env("VNODE_TEST_IMAGE_DIR", &cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (*v, child)
        })
        .collect();
    let outputs: Vec<(&str, Output)> = builds
        .into_iter()
        .map(|(v, child)| (v, child.wait_with_output().unwrap()))
        .collect();
    drop(churn);
    for (variant, out) in &outputs {
        assert!(
            out.status.success(),
            "building {variant} failed:\n{}",
            text(out)
        );
        let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            image.starts_with(cache.to_str().unwrap())
                && image.contains(&format!("-{variant}-"))
                && image.ends_with(".qcow2"),
            "build.sh's last line is the image: {image}"
        );
        let checked = check(Path::new(&image));
        assert!(
            checked.status.success(),
            "{variant}: check.sh:\n{}",
            text(&checked)
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("check.sh: ok:"),
            "build.sh checks the image before it caches it:\n{log}"
        );
    }
    // Nothing of a build is left but the images and rootfs tarballs (and the lock files).
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".lock-"))
        .collect();
    left.sort();
    assert_eq!(left.len(), 6, "{left:?}");
    assert!(
        left.iter()
            .all(|n| n.starts_with("debian12-vnode-test-") || n.starts_with("rootfs-bookworm-")),
        "{left:?}"
    );
    // The broken disks below are made from one good image.
    let good = outputs
        .iter()
        .map(|(_, o)| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .next()
        .unwrap();
    check_catches_broken_disks(Path::new(&good), dir.path());
}

/// Links (or copies) the machine cache's rootfs tarballs into `cache` (made here); their names
/// carry their content's key, so build.sh uses one only where it would build the same. Returns
/// their names.
fn reuse_rootfs_tarballs(cache: &Path) -> Vec<String> {
    std::fs::create_dir_all(cache).unwrap();
    let machine = std::env::var_os("VNODE_TEST_IMAGE_DIR").map_or_else(
        || PathBuf::from("/var/cache/vnode-test-image"),
        PathBuf::from,
    );
    let Ok(entries) = std::fs::read_dir(&machine) else {
        return Vec::new();
    };
    let mut reused = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("rootfs-bookworm-") && name.ends_with(".tar")) {
            continue;
        }
        let to = cache.join(&name);
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to).unwrap();
        }
        reused.push(name);
    }
    reused.sort();
    reused
}

fn check_catches_broken_disks(good: &Path, scratch: &Path) {
    let cases = [
        (
            Breakage::NoGrubCfg,
            "/boot/grub/grub.cfg is missing".to_string(),
        ),
        (
            Breakage::NoKernel,
            "grub.cfg's kernel /boot/vmlinuz-".to_string(),
        ),
        (
            Breakage::WrongRootUuid,
            format!("grub.cfg boots with 'root=UUID={ABSENT_UUID}'"),
        ),
        (
            Breakage::WrongFstabUuid,
            format!("/etc/fstab mounts 'UUID={ABSENT_UUID}' on /"),
        ),
    ];
    for (breakage, says) in cases {
        let broken = broken_copy(good, scratch, breakage);
        let out = check(&broken);
        assert_eq!(out.status.code(), Some(1), "{breakage:?}: {}", text(&out));
        assert!(
            text(&out).contains(&says),
            "{breakage:?}: check.sh should say {says:?}:\n{}",
            text(&out)
        );
        std::fs::remove_file(&broken).unwrap();
    }
}
