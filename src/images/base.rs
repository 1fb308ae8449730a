//! The cached base image a node is made from, resolved once per node before anything is created.

use std::path::PathBuf;

use serde::Serialize;

use super::{Cache, ImageError};
use crate::images::catalog::{Catalog, ImageKind, ImageRef};

/// A cached base image, as the image cache describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseImage {
    pub path: PathBuf,
    /// The catalog's osinfo id (checked against the host's osinfo-db when preparing).
    pub osinfo: String,
    pub digest: String,
}

/// The cached base image of every image, in order. Offline-first: an image that is not cached is
/// an error that says how to get it, and qemu (which runs as its own user) must be able to read
/// it, or the boot would fail late. The osinfo id is the image's own (imported images), else its
/// catalog entry's, else its base's (derived images).
pub fn resolve(
    cache: &Cache,
    catalog: &Catalog,
    images: &[&ImageRef],
) -> Result<Vec<BaseImage>, ImageError> {
    images
        .iter()
        .map(|image| {
            let cached = cache.require(image)?;
            cache.check_qemu_access(Some(&cached))?;
            let catalog_name = match &image.kind {
                ImageKind::Derived { base, .. } => base.as_str(),
                _ => image.name.as_str(),
            };
            let osinfo = cached
                .meta
                .osinfo
                .clone()
                .or_else(|| catalog.get(catalog_name).map(|e| e.osinfo.clone()))
                .or_else(|| {
                    cached
                        .meta
                        .parent
                        .as_deref()
                        .and_then(|p| catalog.get(p))
                        .map(|e| e.osinfo.clone())
                })
                .unwrap_or_default();
            Ok(BaseImage {
                path: cached.path,
                osinfo,
                digest: cached.meta.digest,
            })
        })
        .collect()
}

/// `spawn --pull`: downloads the catalog images among `images` that are not cached yet.
pub async fn pull_missing(
    cache: &Cache,
    catalog: &Catalog,
    images: &[&ImageRef],
    max_image_mib: u64,
) -> Result<(), ImageError> {
    let mut missing: Vec<crate::images::catalog::CatalogEntry> = Vec::new();
    for image in images {
        if image.kind == ImageKind::Catalog
            && cache.find(&image.name).is_none()
            && !missing.iter().any(|e| e.name == image.name)
        {
            missing.extend(catalog.get(&image.name).cloned());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    super::pull(
        cache,
        &missing,
        false,
        max_image_mib,
        &super::Progress::auto(),
    )
    .await?;
    Ok(())
}
