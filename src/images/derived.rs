//! The cache side of `vnode images derive`: a stopped node's disk (an overlay backed by its base
//! image) flattened into a standalone qcow2 and committed into the cache like an import: staged
//! in a private directory in the cache, hashed, validated as a base image (qcow2, no backing
//! file), then metadata and image renamed into place by [`Cache::commit`].

use std::fs;
use std::path::Path;
use std::process::Command;

use super::cache::{Cache, CachedImage};
use super::digest::hash_file;
use super::error::ImageError;
use super::meta::{self, ImageMeta, Origin};
use super::validate::check_base_image;
use crate::images::catalog::{DigestAlgo, check_name};

/// What a derived image is.
#[derive(Clone, Debug)]
pub struct DerivedImage {
    /// The new image's name (`BASE-NAME`).
    pub name: String,
    /// The image it was derived from.
    pub parent: String,
    /// Inherited from the parent.
    pub osinfo: Option<String>,
    /// What was run to make it (the commands, or the script's path and text).
    pub source: String,
}

/// Flattens `overlay` (the stopped node's disk) into image `image.name` of `cache`.
///
/// The flattening is `qemu-img convert -O qcow2 OVERLAY STAGED`: it reads the whole backing chain
/// and writes one standalone qcow2 (unallocated clusters stay unallocated, so the result is about
/// the size of the data the guest holds). Nothing is left in the cache when any step fails.
pub fn commit_flattened(
    cache: &Cache,
    overlay: &Path,
    image: &DerivedImage,
) -> Result<CachedImage, ImageError> {
    let name = &image.name;
    check_name(name).map_err(|reason| ImageError::BadName {
        name: name.clone(),
        reason,
    })?;
    if cache.image_path(name).exists() {
        return Err(ImageError::AlreadyCached { name: name.clone() });
    }
    cache.prepare()?;
    // qemu-img creates its output by name and would follow a symlink planted there: it writes
    // into a directory of vnode's own (mode 0700) in the cache, removed with what is left in it.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.derive-"))
        .tempdir_in(cache.dir())
        .map_err(|e| ImageError::io("create a directory in", cache.dir(), e))?;
    let staged = staging.path().join(format!("{name}.qcow2"));
    flatten_and_commit(cache, overlay, &staged, image)
}

fn flatten_and_commit(
    cache: &Cache,
    overlay: &Path,
    staged: &Path,
    image: &DerivedImage,
) -> Result<CachedImage, ImageError> {
    let fail = |reason: String| ImageError::Flatten {
        name: image.name.clone(),
        overlay: overlay.to_path_buf(),
        reason,
    };
    let out = Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(overlay)
        .arg(staged)
        .output()
        .map_err(|e| fail(format!("cannot run qemu-img: {e}; install qemu-utils")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "qemu-img convert failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| ImageError::io("sync", staged, e))?;
    let from = overlay.display().to_string();
    let info = check_base_image(&image.name, &from, staged)?;
    let (hasher, size) = hash_file(staged, DigestAlgo::Sha256, |_| {})
        .map_err(|e| ImageError::io("read", staged, e))?;
    let meta = ImageMeta {
        name: image.name.clone(),
        origin: Origin::Derived,
        source: image.source.clone(),
        version: None,
        algo: DigestAlgo::Sha256,
        digest: hasher.finish(),
        size,
        virtual_size: info.virtual_size,
        created: meta::now(),
        osinfo: image.osinfo.clone(),
        parent: Some(image.parent.clone()),
        // Made here from a cached image; the parent's metadata says how that one was checked.
        trust: meta::Trust::Unsigned {
            reason: format!("derived from {}", image.parent),
        },
    };
    cache.commit(staged, &meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) {
        let st = Command::new("qemu-img").args(args).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn an_overlay_becomes_a_standalone_cached_image_with_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let overlay = dir.path().join("overlay.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            overlay.to_str().unwrap(),
        ]);
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let d = DerivedImage {
            name: "base-x".into(),
            parent: "base".into(),
            osinfo: Some("debian11".into()),
            source: "true".into(),
        };
        let image = commit_flattened(&cache, &overlay, &d).unwrap();
        assert_eq!(image.meta.origin, Origin::Derived);
        assert_eq!(image.meta.parent.as_deref(), Some("base"));
        assert_eq!(image.meta.osinfo.as_deref(), Some("debian11"));
        assert_eq!(image.meta.virtual_size, 16 << 20);
        assert!(
            crate::images::qcow2::inspect(&image.path)
                .unwrap()
                .backing_file
                .is_none()
        );
        assert_eq!(cache.find("base-x"), Some(image));
        assert!(matches!(
            commit_flattened(&cache, &overlay, &d),
            Err(ImageError::AlreadyCached { .. })
        ));
        // A failing flatten leaves nothing behind.
        let bad = DerivedImage {
            name: "base-y".into(),
            ..d
        };
        assert!(commit_flattened(&cache, &dir.path().join("missing"), &bad).is_err());
        assert!(cache.find("base-y").is_none());
        assert!(!cache.import_path("base-y").exists());
    }
}

#[cfg(test)]
mod staging_tests {
    use super::*;
    use crate::files::create::tests::plant;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_symlink_planted_at_the_staged_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1M")
            .status()
            .unwrap();
        assert!(st.success());
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        cache.prepare().unwrap();
        let (victim, _) = plant(cache.dir(), ".base-x.qcow2.import");
        let d = DerivedImage {
            name: "base-x".into(),
            parent: "base".into(),
            osinfo: None,
            source: "true".into(),
        };
        commit_flattened(&cache, &base, &d).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }
}
