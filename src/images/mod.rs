//! The image cache: pull (verified, resumable), list, import, rm, verify.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {name} is not in the cache ({dir}); run `vnode images pull {name}`")]
    NotCached { name: String, dir: String },
}

impl ImageError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}

/// Names of the images in the cache directory.
pub fn local_names(cache_dir: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".qcow2")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

// --- Stand-in until the image cache lands (branch `images`); same names and shapes. ---
use std::path::PathBuf;

use crate::catalog::ImageRef;

pub struct ImageMeta {
    pub osinfo: Option<String>,
    pub digest: String,
}

pub struct CachedImage {
    pub name: String,
    pub path: PathBuf,
    pub meta: ImageMeta,
}

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, ImageError> {
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    pub fn require(&self, image: &ImageRef) -> Result<CachedImage, ImageError> {
        let path = self.dir.join(format!("{}.qcow2", image.name));
        if !path.exists() {
            return Err(ImageError::NotCached {
                name: image.name.clone(),
                dir: self.dir.display().to_string(),
            });
        }
        Ok(CachedImage {
            name: image.name.clone(),
            path,
            meta: ImageMeta {
                osinfo: None,
                digest: String::new(),
            },
        })
    }
}
