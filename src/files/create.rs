//! The one way vnode creates a file in its cache and state directories.
//!
//! Every file is opened with `O_NOFOLLOW` and, when new, `O_CREAT|O_EXCL`: a symlink (or any file)
//! planted at the name is never followed, truncated or chmod-ed. Whole files are written to a
//! temporary sibling and renamed into place, so a reader never sees half of one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A new regular file with `mode` from the start (never briefly readable by others); fails if
/// anything, a symlink included, is at `path`.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A new empty file at a fixed staging name: a leftover (or a planted symlink) there is removed,
/// never followed, then the file is created with [`create_new`].
pub fn create_fresh(path: &Path, mode: u32) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_new(path, mode)
}

/// An existing regular file of its own (one link) opened for reading and writing, or a new one
/// with `mode`. A symlink at `path` is refused (`ELOOP`), and so is a hard link to another
/// file, which writing would change too.
pub fn open_or_create(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::other(
            "it is not a regular file of its own (another file is linked to it); remove it",
        ));
    }
    Ok(file)
}

/// A sibling name for temporary files and directories: `.NAME.TAG-RANDOM`.
pub fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "x".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{tag}-{:016x}", rand::random::<u64>()))
}

/// Writes `contents` to a new temporary sibling (mode `mode`), then renames it over `path`.
pub fn write_atomic(path: &Path, contents: impl AsRef<[u8]>, mode: u32) -> io::Result<()> {
    let tmp = sibling(path, "tmp");
    let result = create_new(&tmp, mode)
        .and_then(|mut f| f.write_all(contents.as_ref()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A 0600 file that must stay as it is, and a symlink to it at `name` in the same directory.
    pub(crate) fn plant(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let target = dir.join("victim");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        (target, link)
    }

    fn untouched(target: &Path) {
        assert_eq!(std::fs::read(target).unwrap(), b"secret");
        let mode = std::fs::metadata(target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let (target, link) = plant(d.path(), "staged");
        assert!(create_new(&link, 0o644).is_err());
        assert_eq!(
            open_or_create(&link, 0o644).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        untouched(&target);
        let mut f = create_fresh(&link, 0o644).unwrap();
        f.write_all(b"image").unwrap();
        untouched(&target);
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"image");
    }

    #[test]
    fn a_hard_link_is_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, b"secret").unwrap();
        std::fs::hard_link(&target, d.path().join("part")).unwrap();
        assert!(open_or_create(&d.path().join("part"), 0o644).is_err());
        let f = open_or_create(&d.path().join("new"), 0o640).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn atomic_writes_get_their_mode_and_leave_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, "one", 0o600).unwrap();
        write_atomic(&p, "two", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_writes_replace_a_planted_symlink_without_following_it() {
        let d = tempfile::tempdir().unwrap();
        let (target, link) = plant(d.path(), "f");
        write_atomic(&link, "mine", 0o644).unwrap();
        untouched(&target);
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "mine");
    }
}
