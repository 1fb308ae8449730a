//! `vnode images import FILE --name NAME`: a local qcow2 file into the cache, for offline labs
//! and images carried in on a disk. Validated like a pulled image, copied (so the cache does not
//! depend on the original staying put) while it is hashed, and verified against `--sha256` when
//! given, or against a signed checksum file (`--checksums FILE --signature FILE`, or a
//! clear-signed `--checksums` alone), checked exactly as a pull checks it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use super::cache::{Cache, CachedImage};
use super::checksum_file;
use super::digest::{Hasher, READ_BUF};
use super::error::ImageError;
use super::error::SignatureUnavailable;
use super::meta::{self, ImageMeta, Origin, Trust};
use super::progress::Progress;
use super::signature::{self, KeySource};
use super::sink::Sink;
use super::validate::check_base_image;
use crate::images::catalog::{DigestAlgo, check_name};

/// What to import.
#[derive(Clone, Debug)]
pub struct Import {
    pub file: PathBuf,
    pub name: String,
    /// Expected sha256, hex.
    pub sha256: Option<String>,
    /// The distribution's checksum file for the image, and its detached signature.
    pub checksums: Option<PathBuf>,
    pub signature: Option<PathBuf>,
    /// Keys the checksum file must be signed by.
    pub signing_keys: Vec<KeySource>,
    /// Names the checksum file may list the image under besides the file's own name (the
    /// catalog entry's download name).
    pub listed_as: Vec<String>,
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
        let sha256 = self.sha256.as_deref().map(parse_sha256).transpose()?;
        let source =
            fs::canonicalize(&self.file).map_err(|e| ImageError::io("read", &self.file, e))?;
        // A refused signature leaves nothing: it is checked before the copy.
        let expected = match &self.checksums {
            Some(checksums) => Some(self.signed_digest(checksums, &source)?),
            None => sha256.map(|d| Expected {
                algo: DigestAlgo::Sha256,
                digest: d,
                against: "--sha256".into(),
                trust: Trust::Unsigned {
                    reason: "imported with --sha256 only".into(),
                },
            }),
        };
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
        result.map_err(|e| e.of_image(name))
    }

    /// The digest a signed checksum file gives for the image.
    fn signed_digest(&self, checksums: &Path, source: &Path) -> Result<Expected, ImageError> {
        let shown = checksums.display().to_string();
        let keyring = signature::keyring_for(&self.name, &shown, &self.signing_keys)?;
        let text = fs::read(checksums).map_err(|e| ImageError::io("read", checksums, e))?;
        let signature_shown = self.signature.as_ref().map(|p| p.display().to_string());
        let detached = self
            .signature
            .as_ref()
            .zip(signature_shown.as_deref())
            .map(|(p, shown)| (shown, fs::read(p).map_err(SignatureUnavailable::Read)));
        let verified = signature::SignedChecksums {
            name: &self.name,
            file: &shown,
            text: &text,
            detached,
        }
        .verify(&keyring)?;
        let lines =
            checksum_file::parse(&verified.content).map_err(|e| ImageError::ChecksumFile {
                name: self.name.clone(),
                url: shown.clone(),
                reason: e.into(),
            })?;
        let own = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let names = std::iter::once(&own).chain(&self.listed_as);
        for file in names {
            for algo in [DigestAlgo::Sha512, DigestAlgo::Sha256] {
                if let Some(digest) = checksum_file::find(&lines, file, algo) {
                    return Ok(Expected {
                        algo,
                        digest: digest.to_string(),
                        against: format!("the {algo} line for {file} in {shown}"),
                        trust: Trust::Signed {
                            signer: verified.signer.clone(),
                            checksums: shown.clone(),
                        },
                    });
                }
            }
        }
        Err(ImageError::ImportNotListed {
            name: self.name.clone(),
            checksums: shown,
            file: own,
            listed: lines.into_iter().map(|l| l.file).collect(),
        })
    }
}

/// The digest an import must match.
struct Expected {
    algo: DigestAlgo,
    digest: String,
    /// What gave it, for messages.
    against: String,
    trust: Trust,
}

fn copy_and_commit(
    cache: &Cache,
    req: &Import,
    source: &Path,
    from: &str,
    staged: &Path,
    expected: Option<Expected>,
    progress: &Progress,
) -> Result<CachedImage, ImageError> {
    let bar = progress.bar(&req.name);
    let algo = expected.as_ref().map_or(DigestAlgo::Sha256, |e| e.algo);
    let (size, digest) = copy_hashing(
        source,
        staged,
        algo,
        |total| bar.start(Some(total), 0, &format!("importing {from}")),
        |n| bar.advance(n),
    )?;
    if let Some(e) = &expected
        && e.digest != digest
    {
        bar.failed(&format!("does not match {}", e.against));
        return Err(ImageError::ImportMismatch {
            file: source.to_path_buf(),
            against: e.against.clone(),
            expected: e.digest.clone(),
            actual: digest,
        });
    }
    let trust = expected.map_or_else(
        || Trust::Unsigned {
            reason: "imported without a checksum".into(),
        },
        |e| e.trust,
    );
    // The copy is what counts: the original may have changed since it was first checked.
    let info = check_base_image(&req.name, from, staged)?;
    let meta = ImageMeta {
        name: req.name.clone(),
        origin: Origin::Imported,
        source: from.to_string(),
        version: None,
        algo,
        digest,
        size,
        virtual_size: info.virtual_size,
        created: meta::now(),
        osinfo: req.osinfo.clone(),
        parent: None,
        trust: trust.clone(),
    };
    let image = cache.commit(staged, &meta)?;
    match trust {
        Trust::Signed { signer, .. } => bar.done(&format!(
            "imported, {algo} verified, signature by {signer} verified"
        )),
        _ => bar.done(&format!("imported, {algo} recorded")),
    }
    Ok(image)
}

/// Copies `from` to `to` (fsynced), hashing with `algo` on the way.
fn copy_hashing(
    from: &Path,
    to: &Path,
    algo: DigestAlgo,
    start: impl FnOnce(u64),
    mut advance: impl FnMut(u64),
) -> Result<(u64, String), ImageError> {
    let mut input = File::open(from).map_err(|e| ImageError::io("read", from, e))?;
    let len = input
        .metadata()
        .map_err(|e| ImageError::io("read", from, e))?
        .len();
    // A leftover or a symlink planted at the staged name is removed, never followed.
    let output =
        crate::files::create_fresh(to, 0o600).map_err(|e| ImageError::io("create", to, e))?;
    start(len);
    let sink = Sink::start(Hasher::new(algo), output);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::create::tests::plant;
    use std::os::unix::fs::PermissionsExt;

    fn qcow2(path: &Path) {
        let st = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg("1M")
            .status()
            .expect("qemu-img is needed for this test (Debian package qemu-utils)");
        assert!(st.success());
    }

    fn import(file: &Path, name: &str) -> Import {
        Import {
            file: file.to_path_buf(),
            name: name.into(),
            sha256: None,
            checksums: None,
            signature: None,
            signing_keys: Vec::new(),
            listed_as: Vec::new(),
            osinfo: None,
            force: false,
        }
    }

    #[test]
    fn symlinks_planted_at_the_staged_names_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src.qcow2");
        qcow2(&source);
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        cache.prepare().unwrap();
        let (victim, _) = plant(cache.dir(), ".a.qcow2.import");
        std::os::unix::fs::symlink(&victim, cache.dir().join(".a.meta.json.tmp")).unwrap();
        let image = import(&source, "a")
            .run(&cache, &Progress::hidden())
            .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        let mode = fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert!(!fs::symlink_metadata(&image.path).unwrap().is_symlink());
        assert_eq!(cache.find("a"), Some(image));
    }
}
