//! The cache directory and its layout:
//!
//! ```text
//! NAME.qcow2        a complete, verified image (only ever created by a rename)
//! NAME.meta.json    its metadata; written just before the image is renamed into place
//! NAME.qcow2.part   a download in progress, or interrupted (kept for resume)
//! ```
//!
//! An image counts as cached when both its qcow2 file and its metadata are there.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::access::{self, QemuUser};
use super::error::ImageError;
use super::meta::ImageMeta;
use crate::files::strict_modes::{Trusted, check_dir};
use crate::images::catalog::{ImageRef, check_name};

pub struct Cache {
    dir: PathBuf,
}

/// A complete image in the cache.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CachedImage {
    pub name: String,
    pub path: PathBuf,
    pub meta: ImageMeta,
}

/// One thing `vnode images list` shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    /// Bytes on disk.
    pub size: u64,
    pub state: State,
}

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Complete(Box<ImageMeta>),
    /// A `.part` file: an interrupted download.
    Partial,
    /// A qcow2 file without (readable) metadata: not put there by vnode, or damaged.
    Unverified,
}

impl Cache {
    /// The cache at `dir`, which need not exist yet (pulls and imports create it).
    pub fn open(dir: &Path) -> Result<Cache, ImageError> {
        if dir.exists() && !dir.is_dir() {
            return Err(ImageError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn image_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.qcow2"))
    }

    pub fn part_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.qcow2.part"))
    }

    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.meta.json"))
    }

    /// Where an import is copied before it is verified; hidden, and removed on failure.
    pub(super) fn import_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.qcow2.import"))
    }

    fn meta_tmp_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.meta.json.tmp"))
    }

    /// A complete image (qcow2 file and metadata both present).
    pub fn find(&self, name: &str) -> Option<CachedImage> {
        self.read(name).ok().flatten()
    }

    /// Like `find`, but tells a missing image from one with unreadable metadata.
    fn read(&self, name: &str) -> Result<Option<CachedImage>, ImageError> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        let path = self.image_path(name);
        let meta_path = self.meta_path(name);
        if !path.is_file() || !meta_path.is_file() {
            return Ok(None);
        }
        let bad = |reason: String| ImageError::BadMeta {
            name: name.to_string(),
            path: meta_path.clone(),
            reason,
        };
        let text = fs::read_to_string(&meta_path).map_err(|e| bad(e.to_string()))?;
        let meta = ImageMeta::from_json(&text).map_err(|e| bad(e.to_string()))?;
        if meta.name != name {
            return Err(bad(format!("it describes image {}", meta.name)));
        }
        Ok(Some(CachedImage {
            name: name.to_string(),
            path,
            meta,
        }))
    }

    /// The image a node needs; spawning never downloads, so a missing image is an error that
    /// says how to get it.
    pub fn require(&self, image: &ImageRef) -> Result<CachedImage, ImageError> {
        if let Some(found) = self.read(&image.name)? {
            return Ok(found);
        }
        Err(ImageError::NotCached {
            name: image.name.clone(),
            dir: self.dir.clone(),
            kind: image.kind.clone(),
            partial: self.part_path(&image.name).is_file(),
        })
    }

    /// Complete images, partial downloads and unverified files, by name.
    pub fn list(&self) -> Result<Vec<Listed>, ImageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::io("read", &self.dir, e)),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io("read", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let (name, partial) = if let Some(n) = file_name.strip_suffix(".qcow2.part") {
                (n, true)
            } else if let Some(n) = file_name.strip_suffix(".qcow2") {
                (n, false)
            } else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let state = match (partial, self.find(name)) {
                (true, _) => State::Partial,
                (false, Some(image)) => State::Complete(Box::new(image.meta)),
                (false, None) => State::Unverified,
            };
            listed.push(Listed {
                name: name.to_string(),
                path,
                size,
                state,
            });
        }
        listed.sort_by(|a, b| (&a.name, &a.path).cmp(&(&b.name, &b.path)));
        Ok(listed)
    }

    /// Removes everything the cache holds for `name`; returns the files removed.
    pub fn remove(&self, name: &str) -> Result<Vec<PathBuf>, ImageError> {
        let candidates = [
            self.image_path(name),
            self.meta_path(name),
            self.part_path(name),
            self.import_path(name),
            self.meta_tmp_path(name),
        ];
        let mut removed = Vec::new();
        for path in candidates {
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("remove", &path, e)),
            }
        }
        if removed.is_empty() {
            return Err(ImageError::NotInCache {
                name: name.to_string(),
                dir: self.dir.clone(),
            });
        }
        Ok(removed)
    }

    /// Creates the directory if needed (mode 0755) and checks who may write it
    /// ([`crate::files::strict_modes`]). Returns a warning when the qemu user could
    /// not reach images in it: not an error, because `qemu:///session` runs qemu as the user.
    pub fn prepare(&self) -> Result<Option<ImageError>, ImageError> {
        access::create_dirs(&self.dir).map_err(|source| ImageError::CreateDir {
            dir: self.dir.clone(),
            source,
        })?;
        if !self.dir.is_dir() {
            return Err(ImageError::NotADirectory {
                dir: self.dir.clone(),
            });
        }
        // Checked again now that it exists: someone may have made it first (under /tmp, say).
        check_dir(Trusted::CacheDir, &self.dir)?;
        Ok(self.check_qemu_access(None).err())
    }

    /// Whether the qemu user of libvirt's system instance can enter the cache and read `image`
    /// (or just enter the cache). Fine when there is no such user on this host.
    pub fn check_qemu_access(&self, image: Option<&CachedImage>) -> Result<(), ImageError> {
        let Some(user) = QemuUser::find() else {
            return Ok(());
        };
        let target = image.map_or(self.dir.as_path(), |i| i.path.as_path());
        user.check(target).map_err(|d| ImageError::QemuAccess {
            user: user.name.clone(),
            path: d.path,
            mode: d.mode,
            is_dir: d.is_dir,
        })
    }

    /// Puts a verified file under its final name: metadata first (atomically), then the rename
    /// of `staged` that makes the image appear, then an fsync of the directory so both renames
    /// survive a crash. `staged` must already be fsynced.
    pub(super) fn commit(
        &self,
        staged: &Path,
        meta: &ImageMeta,
    ) -> Result<CachedImage, ImageError> {
        let name = &meta.name;
        let mode = fs::Permissions::from_mode(access::FILE_MODE);
        // Through the file itself, never through a symlink at the staged name.
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(staged)
            .and_then(|f| f.set_permissions(mode.clone()))
            .map_err(|e| ImageError::io("set the mode of", staged, e))?;
        let tmp = self.meta_tmp_path(name);
        let meta_path = self.meta_path(name);
        let write_meta = || -> io::Result<()> {
            let mut f = crate::files::create_fresh(&tmp, access::FILE_MODE)?;
            f.write_all(meta.to_json().as_bytes())?;
            f.set_permissions(mode.clone())?;
            f.sync_all()?;
            fs::rename(&tmp, &meta_path)
        };
        if let Err(e) = write_meta() {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io("write", &meta_path, e));
        }
        let path = self.image_path(name);
        if let Err(e) = fs::rename(staged, &path) {
            let _ = fs::remove_file(&meta_path);
            return Err(ImageError::io("rename into place", staged, e));
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ImageError::io("sync", &self.dir, e))?;
        Ok(CachedImage {
            name: name.clone(),
            path,
            meta: meta.clone(),
        })
    }
}

/// Names of the complete images in the cache directory.
pub fn local_names(cache_dir: &Path) -> Vec<String> {
    let Ok(cache) = Cache::open(cache_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cache
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| matches!(l.state, State::Complete(_)))
        .map(|l| l.name)
        .collect();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::catalog::{DigestAlgo, ImageKind};
    use crate::images::meta::{Origin, now};

    fn meta(name: &str) -> ImageMeta {
        ImageMeta {
            name: name.into(),
            origin: Origin::Imported,
            source: "/somewhere".into(),
            version: None,
            algo: DigestAlgo::Sha256,
            digest: "00".repeat(32),
            size: 5,
            virtual_size: 1 << 20,
            created: now(),
            osinfo: None,
            parent: None,
            trust: Default::default(),
        }
    }

    fn catalog_ref(name: &str) -> ImageRef {
        ImageRef {
            name: name.into(),
            kind: ImageKind::Catalog,
        }
    }

    #[test]
    fn commit_makes_an_image_findable_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        assert!(cache.find("a").is_none());
        assert_eq!(cache.list().unwrap(), []);
        cache.prepare().unwrap();
        let staged = cache.import_path("a");
        fs::write(&staged, b"bytes").unwrap();
        // One metadata value for the commit and the comparison below (`meta` stamps the time:
        // two calls may fall in different seconds).
        let a = meta("a");
        let image = cache.commit(&staged, &a).unwrap();
        assert_eq!(cache.find("a"), Some(image.clone()));
        assert_eq!(cache.require(&catalog_ref("a")).unwrap(), image);
        fs::write(cache.part_path("b"), b"par").unwrap();
        fs::write(cache.image_path("c"), b"no meta").unwrap();
        fs::write(cache.dir().join("notes.txt"), b"").unwrap();
        let states: Vec<(String, State)> = cache
            .list()
            .unwrap()
            .into_iter()
            .map(|l| (l.name, l.state))
            .collect();
        assert_eq!(
            states,
            [
                ("a".into(), State::Complete(Box::new(a))),
                ("b".into(), State::Partial),
                ("c".into(), State::Unverified),
            ]
        );
        assert_eq!(local_names(cache.dir()), ["a"]);
    }

    #[test]
    fn require_says_how_to_get_a_missing_image() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let e = cache.require(&catalog_ref("fedora-43")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "image fedora-43 is not in the cache ({}); run `vnode images pull fedora-43`",
                dir.path().display()
            )
        );
        fs::write(cache.part_path("fedora-43"), b"x").unwrap();
        let e = cache.require(&catalog_ref("fedora-43")).unwrap_err();
        assert!(
            e.to_string().contains("resumes the partial download"),
            "{e}"
        );
        let local = ImageRef {
            name: "mine".into(),
            kind: ImageKind::Local,
        };
        let e = cache.require(&local).unwrap_err();
        assert!(
            e.to_string()
                .contains("vnode images import FILE --name mine"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_metadata_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        fs::write(cache.image_path("a"), b"x").unwrap();
        fs::write(cache.meta_path("a"), b"{").unwrap();
        assert!(cache.find("a").is_none());
        let e = cache.require(&catalog_ref("a")).unwrap_err();
        assert!(matches!(e, ImageError::BadMeta { .. }), "{e}");
    }

    #[test]
    fn names_cannot_leave_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        fs::write(dir.path().join("x.qcow2"), b"x").unwrap();
        fs::write(dir.path().join("x.meta.json"), meta("../x").to_json()).unwrap();
        assert!(cache.find("../x").is_none());
    }

    #[test]
    fn remove_takes_everything_of_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for p in [
            cache.image_path("a"),
            cache.meta_path("a"),
            cache.part_path("a"),
            cache.image_path("ab"),
        ] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(cache.remove("a").unwrap().len(), 3);
        assert!(cache.image_path("ab").exists());
        assert!(matches!(
            cache.remove("a").unwrap_err(),
            ImageError::NotInCache { .. }
        ));
    }

    #[test]
    fn a_file_is_not_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            Cache::open(&file),
            Err(ImageError::NotADirectory { .. })
        ));
    }

    #[test]
    fn a_cache_others_may_write_is_refused_once_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        fs::create_dir(cache.dir()).unwrap();
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = cache.prepare().unwrap_err();
        assert!(matches!(e, ImageError::Untrusted(_)), "{e}");
        assert!(e.to_string().contains("chmod go-w"), "{e}");
    }
}
