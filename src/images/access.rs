//! Can libvirt's qemu open the cached images? The system instance runs qemu as an unprivileged
//! user (`libvirt-qemu` on Debian and Ubuntu, `qemu` on Fedora), which must be able to enter every
//! directory on the way to the cache and read the images. A cache under a home directory of mode
//! 0700 is the usual way to get this wrong; the error then comes from qemu, late and obscure, so
//! vnode checks the mode bits itself. (ACLs are not considered.)

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::process::unix;

/// Directories vnode creates: everyone may enter and list them.
pub const DIR_MODE: u32 = 0o755;
/// Images and their metadata: everyone may read them.
pub const FILE_MODE: u32 = 0o644;

/// The account qemu runs as.
#[derive(Clone, Debug, PartialEq)]
pub struct QemuUser {
    pub name: String,
    uid: u32,
    gids: Vec<u32>,
}

/// Something on the way to an image that the qemu user cannot pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Denied {
    pub path: PathBuf,
    pub mode: u32,
    pub is_dir: bool,
}

impl QemuUser {
    /// `libvirt-qemu` or `qemu`, whichever exists; `None` when neither does (no libvirt system
    /// instance on this host).
    pub fn find() -> Option<QemuUser> {
        ["libvirt-qemu", "qemu"].into_iter().find_map(lookup)
    }

    /// Whether this user may do `want` (4 read, 1 execute/enter) on a file with these attributes.
    fn may(&self, mode: u32, uid: u32, gid: u32, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let bits = if uid == self.uid {
            mode >> 6
        } else if self.gids.contains(&gid) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// The first directory on the way to `target` (itself included) the user cannot enter, or
    /// `target` if it is a file the user cannot read.
    pub fn check(&self, target: &Path) -> Result<(), Denied> {
        let mut chain: Vec<&Path> = target.ancestors().collect();
        chain.reverse();
        for path in chain {
            let Ok(meta) = fs::metadata(path) else {
                // Not there (yet): nothing to say about it.
                return Ok(());
            };
            let want = if meta.is_dir() { 1 } else { 4 };
            if !self.may(meta.mode(), meta.uid(), meta.gid(), want) {
                return Err(Denied {
                    path: path.to_path_buf(),
                    mode: meta.mode() & 0o7777,
                    is_dir: meta.is_dir(),
                });
            }
        }
        Ok(())
    }
}

fn lookup(name: &str) -> Option<QemuUser> {
    let pwd = unix::user_by_name(name).ok().flatten()?;
    Some(QemuUser {
        name: name.to_string(),
        uid: pwd.uid,
        gids: unix::groups_of(&pwd),
    })
}

/// Creates `dir` and its missing parents with mode 0755 whatever the umask, so that the qemu
/// user can enter them.
pub fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for path in missing.into_iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))?,
            // Another process made it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu() -> QemuUser {
        QemuUser {
            name: "libvirt-qemu".into(),
            uid: 64055,
            gids: vec![107, 36],
        }
    }

    #[test]
    fn owner_group_and_other_bits() {
        let q = qemu();
        assert!(q.may(0o755, 0, 0, 1));
        assert!(!q.may(0o750, 0, 0, 1));
        assert!(q.may(0o750, 0, 36, 1), "member of the directory's group");
        assert!(q.may(0o700, 64055, 0, 1), "owner");
        assert!(!q.may(0o077, 64055, 0, 1), "owner bits win over others");
        assert!(q.may(0o644, 0, 0, 4));
        assert!(!q.may(0o600, 0, 0, 4));
    }

    #[test]
    fn finds_the_first_closed_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outer = dir.path().join("home");
        let cache = outer.join("cache");
        create_dirs(&cache).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!((mode(&outer), mode(&cache)), (0o755, 0o755));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&outer, fs::Permissions::from_mode(0o700)).unwrap();
        let denied = qemu().check(&cache).unwrap_err();
        assert_eq!(
            (denied.path, denied.mode, denied.is_dir),
            (outer, 0o700, true)
        );
    }
}
