//! `vnode images import FILE --name NAME`: a local qcow2 file into the cache, for offline labs
//! and images carried in on a disk. Validated like a pulled image, copied (so the cache does not
//! depend on the original staying put) while it is hashed, and verified against `--sha256` when
//! given.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::cache::{Cache, CachedImage};
use super::digest::{Hasher, READ_BUF};
use super::error::ImageError;
use super::meta::{self, ImageMeta, Origin};
use super::progress::Progress;
use super::sink::Sink;
use super::validate::check_base_image;
use crate::catalog::{DigestAlgo, check_name};

/// What to import.
#[derive(Clone, Debug)]
pub struct Import {
    pub file: PathBuf,
    pub name: String,
    /// Expected sha256, hex.
    pub sha256: Option<String>,
    pub osinfo: Option<String>,
    /// Replace an image of the same name.
    pub force: bool,
}

impl Import {
    pub fn run(&self, cache: &Cache, progress: &Progress) -> Result<CachedImage, ImageError> {
        let name = &self.name;
        check_name(name).map_err(|reason| ImageError::BadName {
            name: name.clone(),
            reason,
        })?;
        let expected = self.sha256.as_deref().map(parse_sha256).transpose()?;
        let source =
            fs::canonicalize(&self.file).map_err(|e| ImageError::io("read", &self.file, e))?;
        let from = source.display().to_string();
        // Refuse a wrong file before copying gigabytes of it.
        check_base_image(name, &from, &source)?;
        if !self.force && cache.image_path(name).exists() {
            return Err(ImageError::AlreadyCached { name: name.clone() });
        }
        if let Some(warning) = cache.prepare()? {
            progress.note(&format!("warning: {warning}"));
        }
        let staged = cache.import_path(name);
        let result = copy_and_commit(cache, self, &source, &from, &staged, expected, progress);
        if result.is_err() {
            let _ = fs::remove_file(&staged);
        }
        result
    }
}

fn copy_and_commit(
    cache: &Cache,
    req: &Import,
    source: &Path,
    from: &str,
    staged: &Path,
    expected: Option<String>,
    progress: &Progress,
) -> Result<CachedImage, ImageError> {
    let bar = progress.bar(&req.name);
    let (size, digest) = copy_hashing(
        source,
        staged,
        |total| bar.start(Some(total), 0, &format!("importing {from}")),
        |n| bar.advance(n),
    )?;
    if let Some(expected) = expected
        && expected != digest
    {
        bar.failed("does not match --sha256");
        return Err(ImageError::ImportMismatch {
            file: source.to_path_buf(),
            expected,
            actual: digest,
        });
    }
    // The copy is what counts: the original may have changed since it was first checked.
    let info = check_base_image(&req.name, from, staged)?;
    let meta = ImageMeta {
        name: req.name.clone(),
        origin: Origin::Imported,
        source: from.to_string(),
        version: None,
        algo: DigestAlgo::Sha256,
        digest,
        size,
        virtual_size: info.virtual_size,
        created: meta::now(),
        osinfo: req.osinfo.clone(),
        parent: None,
    };
    let image = cache.commit(staged, &meta)?;
    bar.done("imported, sha256 recorded");
    Ok(image)
}

/// Copies `from` to `to` (fsynced), hashing with sha256 on the way.
fn copy_hashing(
    from: &Path,
    to: &Path,
    start: impl FnOnce(u64),
    mut advance: impl FnMut(u64),
) -> Result<(u64, String), ImageError> {
    let mut input = File::open(from).map_err(|e| ImageError::io("read", from, e))?;
    let len = input
        .metadata()
        .map_err(|e| ImageError::io("read", from, e))?
        .len();
    let output = File::create(to).map_err(|e| ImageError::io("create", to, e))?;
    start(len);
    let sink = Sink::start(Hasher::new(DigestAlgo::Sha256), output);
    let mut size = 0u64;
    let read_error = loop {
        let mut buf = BytesMut::zeroed(READ_BUF);
        let n = match input.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        };
        buf.truncate(n);
        size += n as u64;
        advance(n as u64);
        if !sink.push_blocking(buf.freeze()) {
            break None;
        }
    };
    let (hasher, written) = sink.finish(read_error.is_none());
    written.map_err(|e| ImageError::io("write", to, e))?;
    if let Some(e) = read_error {
        return Err(ImageError::io("read", from, e));
    }
    Ok((size, hasher.finish()))
}

fn parse_sha256(value: &str) -> Result<String, ImageError> {
    let hex = value.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ImageError::BadDigest {
            value: value.to_string(),
        })
    }
}
