//! `vnode images verify`: re-hash cached images against the digests they were verified with
//! when they entered the cache. Catches bit rot and files changed behind vnode's back.

use serde::Serialize;

use super::cache::{Cache, CachedImage};
use super::digest::hash_file;
use super::error::ImageError;
use super::progress::Progress;
use crate::images::catalog::DigestAlgo;

/// The verdict on one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    pub name: String,
    pub algo: DigestAlgo,
    pub expected: String,
    pub actual: String,
    pub ok: bool,
}

/// Verifies the named images (every complete image when `names` is empty). Unknown names are an
/// error before anything is hashed.
pub fn verify(
    cache: &Cache,
    names: &[String],
    progress: &Progress,
) -> Result<Vec<Verified>, ImageError> {
    let images: Vec<CachedImage> = if names.is_empty() {
        local_images(cache)?
    } else {
        names
            .iter()
            .map(|n| {
                cache.find(n).ok_or_else(|| ImageError::NotInCache {
                    name: n.clone(),
                    dir: cache.dir().to_path_buf(),
                })
            })
            .collect::<Result<_, _>>()?
    };
    images.iter().map(|image| check(image, progress)).collect()
}

fn local_images(cache: &Cache) -> Result<Vec<CachedImage>, ImageError> {
    Ok(cache
        .list()?
        .into_iter()
        .filter_map(|l| cache.find(&l.name).filter(|i| i.path == l.path))
        .collect())
}

fn check(image: &CachedImage, progress: &Progress) -> Result<Verified, ImageError> {
    let bar = progress.bar(&image.name);
    let meta = &image.meta;
    bar.start(Some(meta.size), 0, "hashing");
    let (hasher, _) = hash_file(&image.path, meta.algo, |n| bar.advance(n))
        .map_err(|e| ImageError::io("read", &image.path, e))?;
    let actual = hasher.finish();
    let ok = actual == meta.digest;
    if ok {
        bar.done(&format!("ok ({} matches)", meta.algo));
    } else {
        bar.failed(&format!("MISMATCH ({} differs)", meta.algo));
    }
    Ok(Verified {
        name: image.name.clone(),
        algo: meta.algo,
        expected: meta.digest.clone(),
        actual,
        ok,
    })
}
