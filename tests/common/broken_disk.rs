//! Copies of the test image broken the ways real images break, for the tests that show who
//! notices: tests/image/check.sh (tests/image_builder.rs) and vnode's console watch at boot
//! (tests/vm/spawn.rs). The copy is edited with debugfs's write mode on a raw conversion of the
//! image, so no mount is needed; the test image's one partition starts at sector 2048
//! (tests/image/build.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The byte offset of the test image's root filesystem.
const ROOT_FS_OFFSET: u64 = 2048 * 512;
/// A filesystem UUID that is on no disk.
pub const ABSENT_UUID: &str = "00000000-0000-4000-8000-000000000000";

/// How a copy is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// No /boot/grub/grub.cfg: GRUB stops at its `grub>` prompt.
    NoGrubCfg,
    /// grub.cfg's kernel removed: GRUB says `you need to load the kernel first`.
    NoKernel,
    /// The kernel's `root=UUID=` names a filesystem that is not there: the initramfs gives up
    /// waiting for it (after `rootdelay=5`, so that the test does not wait 180 s for it).
    WrongRootUuid,
    /// /etc/fstab mounts a filesystem that is not there on `/`.
    WrongFstabUuid,
}

impl Breakage {
    pub fn name(self) -> &'static str {
        match self {
            Breakage::NoGrubCfg => "no-grub-cfg",
            Breakage::NoKernel => "no-kernel",
            Breakage::WrongRootUuid => "wrong-root-uuid",
            Breakage::WrongFstabUuid => "wrong-fstab-uuid",
        }
    }
}

/// A copy of `image` in `dir`, broken as `breakage` says; returns its path (`NAME.qcow2`).
pub fn broken_copy(image: &Path, dir: &Path, breakage: Breakage) -> PathBuf {
    let raw = dir.join(format!("{}.raw", breakage.name()));
    let out = dir.join(format!("{}.qcow2", breakage.name()));
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(image)
        .arg(&raw));
    let fs = format!("{}?offset={ROOT_FS_OFFSET}", raw.display());
    let grub_cfg = run(Command::new("debugfs").args(["-R", "cat /boot/grub/grub.cfg", &fs]));
    let replace = |path: &str, content: &str| {
        let file = dir.join(format!("{}.file", breakage.name()));
        std::fs::write(&file, content).unwrap();
        debugfs_write(&fs, &format!("rm {path}"));
        debugfs_write(&fs, &format!("write {} {path}", file.display()));
        std::fs::remove_file(&file).unwrap();
    };
    match breakage {
        Breakage::NoGrubCfg => debugfs_write(&fs, "rm /boot/grub/grub.cfg"),
        Breakage::NoKernel => debugfs_write(&fs, &format!("rm {}", kernel(&grub_cfg))),
        Breakage::WrongRootUuid => {
            let cfg: String = grub_cfg
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with("linux ") {
                        let uuid = l.split("root=UUID=").nth(1).unwrap();
                        let uuid = uuid.split_whitespace().next().unwrap();
                        format!("{} rootdelay=5\n", l.replace(uuid, ABSENT_UUID))
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            replace("/boot/grub/grub.cfg", &cfg);
        }
        Breakage::WrongFstabUuid => replace(
            "/etc/fstab",
            &format!("UUID={ABSENT_UUID} / ext4 defaults 0 1\n"),
        ),
    }
    run(Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&raw)
        .arg(&out));
    std::fs::remove_file(&raw).unwrap();
    out
}

/// The kernel a grub.cfg boots (`linux PATH ...`).
pub fn kernel(grub_cfg: &str) -> String {
    grub_cfg
        .lines()
        .find_map(|l| l.trim().strip_prefix("linux "))
        .and_then(|l| l.split_whitespace().next())
        .expect("grub.cfg names a kernel")
        .to_string()
}

fn debugfs_write(fs: &str, request: &str) {
    run(Command::new("debugfs").args(["-w", "-R", request, fs]));
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
