//! What makes a file a usable base image: a qcow2 header qcow2-rs accepts, and no backing file
//! (a base image must stand alone; nodes' overlays are backed by it).

use std::path::Path;

use super::error::ImageError;
use crate::images::qcow2::{self, Qcow2Error, Qcow2Info};

/// Checks the qcow2 file at `path`, which holds image `name` from `from` (a URL or a path).
pub fn check_base_image(name: &str, from: &str, path: &Path) -> Result<Qcow2Info, ImageError> {
    let info = qcow2::inspect(path).map_err(|e| match e {
        Qcow2Error::Io { path, source } => ImageError::io("read", &path, source),
        Qcow2Error::Invalid { reason, .. } => ImageError::NotQcow2 {
            name: name.to_string(),
            from: from.to_string(),
            reason,
        },
    })?;
    if let Some(backing) = &info.backing_file {
        return Err(ImageError::HasBackingFile {
            name: name.to_string(),
            from: from.to_string(),
            backing: backing.clone(),
        });
    }
    Ok(info)
}
