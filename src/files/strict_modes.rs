//! Who may change what vnode trusts, checked as OpenSSH's StrictModes checks `~/.ssh`.
//!
//! vnode runs as root and obeys its config file (its `runcmd` and `virt_install_args` run as
//! root), its catalog (which says what image a node boots) and its cache and state directories
//! (the images, keys and seeds it hands to libvirt). So each of them, and every directory above
//! them up to `/`, must be owned by the invoking user or root; the file or directory itself must
//! not be writable by group or others. A parent may be writable by others only when it is
//! root's and sticky (`/tmp`): there nobody else can rename or remove what vnode made. Symlinks
//! on the way are resolved and both the written path and the real one are checked.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What vnode trusts, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trusted {
    ConfigFile,
    Catalog,
    CacheDir,
    StateDir,
}

impl Trusted {
    /// What else the user may do instead of fixing the modes.
    fn instead(self) -> &'static str {
        match self {
            Trusted::ConfigFile => "or use a config file of your own (--config)",
            Trusted::Catalog => "or set `catalog` to a file of your own",
            Trusted::CacheDir => "or set `cache_dir` to a directory of your own",
            Trusted::StateDir => "or set `state_dir` to a directory of your own",
        }
    }
}

impl fmt::Display for Trusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trusted::ConfigFile => "the config file",
            Trusted::Catalog => "the image catalog",
            Trusted::CacheDir => "the image cache (cache_dir)",
            Trusted::StateDir => "the state directory (state_dir)",
        })
    }
}

/// Why vnode refuses a file or directory it would trust.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "refusing {what} {checked}: {} is owned by uid {owner}, not by you (uid {me}) or root, \
         so its owner could change what vnode runs as you; fix: `chown {}: {}` ({})",
        .path.display(), owner_name(*.me), .path.display(), .what.instead(),
        checked = .checked.display()
    )]
    Owner {
        what: Trusted,
        checked: PathBuf,
        /// The offending path: `checked` itself or one of its parents.
        path: PathBuf,
        owner: u32,
        me: u32,
    },
    #[error(
        "refusing {what} {checked}: {} is writable by group or others (mode {mode:04o}), so \
         others could change what vnode runs as you; fix: `chmod go-w {}` ({})",
        .path.display(), .path.display(), .what.instead(),
        checked = .checked.display()
    )]
    Writable {
        what: Trusted,
        checked: PathBuf,
        path: PathBuf,
        mode: u32,
    },
    #[error("cannot check who owns {what} {}: {source}", .path.display())]
    Io {
        what: Trusted,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn owner_name(uid: u32) -> String {
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}

/// Checks a directory (which need not exist yet: then the directories it would be made in).
pub fn check_dir(what: Trusted, dir: &Path) -> Result<(), TrustError> {
    check_as(what, dir, crate::process::unix::euid())
}

/// Checks a file (a config file or catalog) and the directories above it.
pub fn check_file(what: Trusted, file: &Path) -> Result<(), TrustError> {
    check_as(what, file, crate::process::unix::euid())
}

/// The check for user `me`.
pub fn check_as(what: Trusted, path: &Path, me: u32) -> Result<(), TrustError> {
    let io_err = |source| TrustError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let absolute = std::path::absolute(path).map_err(io_err)?;
    let checker = Checker {
        what,
        checked: &absolute,
        me,
    };
    // The written path, each existing part of it as it is (a symlink's own directory is the
    // next part up), and then the real path the kernel resolves it to.
    for (i, p) in absolute.ancestors().enumerate() {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_symlink() => {}
            Ok(m) => checker.one(p, &m, i == 0)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    let existing = absolute.ancestors().find(|p| p.exists());
    if let Some(existing) = existing {
        let real = std::fs::canonicalize(existing).map_err(io_err)?;
        let is_self = existing == absolute;
        for (i, p) in real.ancestors().enumerate() {
            let m = std::fs::metadata(p).map_err(io_err)?;
            checker.one(p, &m, is_self && i == 0)?;
        }
    }
    Ok(())
}

struct Checker<'a> {
    what: Trusted,
    checked: &'a Path,
    me: u32,
}

impl Checker<'_> {
    /// `own`: the trusted file or directory itself, which no sticky bit excuses.
    fn one(&self, path: &Path, meta: &std::fs::Metadata, own: bool) -> Result<(), TrustError> {
        let owner = meta.uid();
        if owner != 0 && owner != self.me {
            return Err(TrustError::Owner {
                what: self.what,
                checked: self.checked.to_path_buf(),
                path: path.to_path_buf(),
                owner,
                me: self.me,
            });
        }
        let mode = meta.mode() & 0o7777;
        let sticky_roots = !own && meta.is_dir() && owner == 0 && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_roots {
            return Err(TrustError::Writable {
                what: self.what,
                checked: self.checked.to_path_buf(),
                path: path.to_path_buf(),
                mode,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn chown(p: &Path, uid: u32) {
        std::os::unix::fs::chown(p, Some(uid), None).unwrap();
    }

    /// A directory of root's (or the test's user) with mode 0755 under the test's temp dir.
    fn setup() -> (tempfile::TempDir, PathBuf, u32) {
        let d = tempfile::tempdir().unwrap();
        let me = crate::process::unix::euid();
        let dir = d.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        chmod(d.path(), 0o755);
        chmod(&dir, 0o755);
        (d, dir, me)
    }

    #[test]
    fn a_directory_of_ones_own_is_accepted_also_one_yet_to_be_made() {
        let (_d, dir, me) = setup();
        check_as(Trusted::CacheDir, &dir, me).unwrap();
        check_as(Trusted::CacheDir, &dir.join("a/b"), me).unwrap();
    }

    #[test]
    fn group_or_other_writable_is_refused_with_the_fix() {
        let (_d, dir, me) = setup();
        chmod(&dir, 0o775);
        let e = check_as(Trusted::CacheDir, &dir, me).unwrap_err();
        assert!(matches!(e, TrustError::Writable { mode: 0o775, .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("chmod go-w {}", dir.display())),
            "{text}"
        );
        assert!(text.contains("cache_dir"), "{text}");
        // Sticky does not excuse the directory vnode trusts itself.
        chmod(&dir, 0o1777);
        assert!(check_as(Trusted::CacheDir, &dir, me).is_err());
    }

    #[test]
    fn a_parent_writable_by_others_is_refused_unless_it_is_roots_and_sticky() {
        let (d, dir, me) = setup();
        chmod(d.path(), 0o777);
        let e = check_as(Trusted::StateDir, &dir.join("nodes"), me).unwrap_err();
        assert!(
            matches!(&e, TrustError::Writable { path, .. } if path == d.path()),
            "{e}"
        );
        // Like /tmp: root's and sticky.
        chmod(d.path(), 0o1777);
        // (The temp dir is the test user's: root's only when the test runs as root.)
        let result = check_as(Trusted::StateDir, &dir.join("nodes"), me);
        assert_eq!(result.is_ok(), me == 0, "{result:?}");
        check_as(Trusted::StateDir, Path::new("/tmp/x/y"), me).unwrap();
    }

    #[test]
    fn someone_elses_directory_or_parent_is_refused_with_the_fix() {
        // chown to another user needs root; without it the test is skipped only when asked.
        if crate::process::unix::euid() != 0 {
            assert!(
                std::env::var_os("VNODE_SKIP_VM_TESTS").is_some_and(|v| v == "1"),
                "this test needs root (chown to another user); VNODE_SKIP_VM_TESTS=1 skips it"
            );
            eprintln!(
                "SKIPPED (VNODE_SKIP_VM_TESTS=1): someone_elses_directory_or_parent_is_refused_with_the_fix"
            );
            return;
        }
        let (d, dir, me) = setup();
        chown(&dir, 4242);
        let e = check_as(Trusted::CacheDir, &dir, me).unwrap_err();
        assert!(matches!(e, TrustError::Owner { owner: 4242, .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("chown root: {}", dir.display())),
            "{e}"
        );
        chown(&dir, 0);
        chown(d.path(), 4242);
        let e = check_as(Trusted::CacheDir, &dir, me).unwrap_err();
        assert!(
            matches!(&e, TrustError::Owner { path, .. } if path == d.path()),
            "{e}"
        );
        // The same directory is fine for its owner.
        check_as(Trusted::CacheDir, &dir, 4242).unwrap();
    }

    #[test]
    fn a_config_file_others_may_write_is_refused() {
        let (_d, dir, me) = setup();
        let file = dir.join("config.toml");
        std::fs::write(&file, "").unwrap();
        chmod(&file, 0o644);
        check_as(Trusted::ConfigFile, &file, me).unwrap();
        chmod(&file, 0o666);
        let e = check_as(Trusted::ConfigFile, &file, me).unwrap_err();
        assert!(e.to_string().starts_with("refusing the config file"), "{e}");
    }

    #[test]
    fn symlinks_are_checked_where_they_are_and_where_they_lead() {
        let (d, dir, me) = setup();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let target = open.join("real");
        std::fs::create_dir(&target).unwrap();
        chmod(&target, 0o755);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = check_as(Trusted::CacheDir, &link, me).unwrap_err();
        assert!(
            matches!(&e, TrustError::Writable { path, .. } if *path == open),
            "{e}"
        );
    }
}
