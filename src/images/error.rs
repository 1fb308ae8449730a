//! Everything that can go wrong with the image cache, each with one message that names the image,
//! the URL or file, and what to do next.

use std::io;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;

use super::fetch_error::FetchError;
use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED};
use crate::images::catalog::{DigestAlgo, ImageKind};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {name} is not in the cache ({}); {}", dir.display(), not_cached_hint(name, kind, *partial))]
    NotCached {
        name: String,
        dir: PathBuf,
        kind: ImageKind,
        /// A partial download exists.
        partial: bool,
    },

    #[error("no image {name} in the cache ({}); `vnode images list` shows what is there", dir.display())]
    NotInCache { name: String, dir: PathBuf },

    #[error("'{name}' cannot name an image: {reason}")]
    BadName {
        name: String,
        #[source]
        reason: crate::images::catalog::BadImageName,
    },

    #[error("--sha256 {value:?} is not a sha256 digest (64 hex digits)")]
    BadDigest { value: String },

    #[error("image {name} is already in the cache; pass --force to replace it")]
    AlreadyCached { name: String },

    #[error("the image cache {} is not a directory; set cache_dir in the config to a directory", dir.display())]
    NotADirectory { dir: PathBuf },

    /// The cache (or a parent) is someone else's, or others may write it.
    #[error(transparent)]
    Untrusted(#[from] crate::files::TrustError),

    #[error("cannot create the image cache {}: {source}; create it once as root \
             (`sudo install -d -m 0755 -o $USER {}`) or set cache_dir in the config", dir.display(), dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the qemu user {user} cannot {} {} (mode {mode:04o}), so libvirt's qemu cannot open images in the cache; \
             run `chmod {} {}`, or set cache_dir to a directory it can reach (the default /var/lib/vnode/images)",
            if *is_dir { "enter" } else { "read" }, path.display(), if *is_dir { "o+x" } else { "o+r" }, path.display())]
    QemuAccess {
        user: String,
        path: PathBuf,
        mode: u32,
        is_dir: bool,
    },

    #[error("cannot {action} {}: {source}{}", path.display(), io_hint(source, path))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The cache's file system is full (ENOSPC, or the user's quota: EDQUOT) while an image is
    /// written into it.
    #[error(
        "image {name}: no space left on device: cannot {action} {}; nothing was added to the cache \
         and the partial file was removed; free space in {} or set cache_dir in the config to a \
         larger file system, then try again",
        path.display(),
        path.parent().unwrap_or(path).display()
    )]
    NoSpace {
        name: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cannot set up the HTTP client: {reason}; check the proxy variables (https_proxy, http_proxy, no_proxy)"
    )]
    HttpClient { reason: String },

    #[error(
        "cannot download image {name} from {url}: {reason}; check the URL, the network and the proxy \
             variables (https_proxy, no_proxy)"
    )]
    Request {
        name: String,
        url: String,
        reason: String,
    },

    #[error(
        "{url} answered {status} for image {name}; the catalog entry may be out of date \
             (`vnode images list --available`) or the mirror is down: try again later"
    )]
    HttpStatus {
        name: String,
        url: String,
        status: String,
    },

    #[error("the download of image {name} from {url} broke off after {} of {}: {reason}; \
             run `vnode images pull {name}` again to resume", HumanBytes(*got), total.map_or("?".into(), |t| HumanBytes(t).to_string()))]
    Interrupted {
        name: String,
        url: String,
        got: u64,
        total: Option<u64>,
        reason: String,
    },

    #[error(
        "image {name} from {url} is larger than max_image_mib ({limit_mib} MiB){}; if the image \
         really is this large, set max_image_mib in vnode's config (`vnode config show` names the \
         file) to more and pull again",
        match announced {
            Some(size) => format!(
                ": it has {}; nothing of it was kept",
                HumanBytes(*size)
            ),
            None => "; the download was stopped there and the partial file was removed".into(),
        }
    )]
    TooLarge {
        name: String,
        url: String,
        limit_mib: u64,
        /// The size the server announced (or a partial file already held); None: found while
        /// receiving a body of unannounced length.
        announced: Option<u64>,
    },

    #[error(
        "cannot use the checksum file {url} of image {name}: {reason}; fix checksum_url in the catalog, \
             or try again later"
    )]
    ChecksumFile {
        name: String,
        url: String,
        #[source]
        reason: ChecksumFileProblem,
    },

    #[error(
        "the checksum file {url} has no {algo} line for {file} (image {name}; it lists {}); \
             fix url or checksum_url of the catalog entry",
        listed_files(listed)
    )]
    ChecksumNotListed {
        name: String,
        url: String,
        file: String,
        algo: DigestAlgo,
        listed: Vec<String>,
    },

    #[error(
        "image {name}: no signing key is pinned for its checksum file {file}, so the digest in it \
         cannot be trusted; add signing_keys = [\"KEY.asc\"] (the distribution's public key) to \
         its catalog entry, or pass --no-signature to skip the check"
    )]
    NoSigningKey { name: String, file: String },

    #[error(
        "cannot use the {key} pinned for image {name}: {reason}; fix signing_keys in its catalog entry"
    )]
    SigningKey {
        name: String,
        key: String,
        #[source]
        reason: KeyProblem,
    },

    #[error(
        "the checksum file {file} of image {name} is not signed: it is not OpenPGP clear-signed text, \
         and the catalog names no detached signature (expected a signature by {expected}); refused, \
         nothing was downloaded: fix checksum_url or add signature_url, or pass --no-signature to skip the check"
    )]
    NotSigned {
        name: String,
        file: String,
        expected: String,
    },

    #[error(
        "the signature {signature} of the checksum file {file} (image {name}) is missing: {reason}; \
         without it the digest cannot be trusted (expected a signature by {expected}); refused, nothing \
         was downloaded: fix signature_url, or pass --no-signature to skip the check"
    )]
    SignatureMissing {
        name: String,
        file: String,
        signature: String,
        expected: String,
        #[source]
        reason: SignatureUnavailable,
    },

    #[error(
        "the signature {signature} of the checksum file {file} (image {name}) is not an OpenPGP \
         signature: {reason}; refused, nothing was downloaded: fix signature_url, or try again later"
    )]
    SignatureUnreadable {
        name: String,
        file: String,
        signature: String,
        #[source]
        reason: Unreadable,
    },

    #[error(
        "the checksum file {file} of image {name} is signed by key {signer}, not by the key pinned \
         for it ({expected}); refused, nothing was downloaded: the mirror may serve a forged image, \
         or the catalog entry pins the wrong key"
    )]
    SignedByOtherKey {
        name: String,
        file: String,
        signer: String,
        expected: String,
    },

    #[error(
        "the checksum file {file} of image {name} was changed after it was signed: its signature by \
         {expected} does not match its text; refused, nothing was downloaded: the mirror may serve a \
         forged image, try again later or another mirror"
    )]
    ClearSignatureMismatch {
        name: String,
        file: String,
        expected: String,
    },

    #[error(
        "the signature {signature} is not a signature of the checksum file {file} (image {name}): \
         it is by {expected} but over other content (the checksum file was changed after signing, or \
         the signature belongs to another file); refused, nothing was downloaded: check checksum_url \
         and signature_url, or try again later"
    )]
    DetachedSignatureMismatch {
        name: String,
        file: String,
        signature: String,
        expected: String,
    },

    #[error(
        "the checksum file {file} of image {name} is signed by key {key}, which is {state}; refused: \
         update vnode (or signing_keys) to the distribution's current key"
    )]
    SigningKeyUnusable {
        name: String,
        file: String,
        key: String,
        /// "revoked", or "expired at the time of the signature".
        state: &'static str,
    },

    #[error(
        "the checksum file {file} of image {name} is signed by subkey {subkey} of key {key}, which \
         had expired when it made the signature; refused: update vnode (or signing_keys) to the \
         distribution's current key, or a key file in which that subkey is renewed"
    )]
    SigningSubkeyExpired {
        name: String,
        file: String,
        subkey: String,
        key: String,
    },

    #[error(
        "the signature of the checksum file {file} of image {name} (by key {key}) states no \
         creation time, so whether the key was valid when it signed cannot be told; refused \
         (OpenPGP requires one): ask the publisher for a regular signature, or use an inline \
         digest you trust"
    )]
    SignatureUndated {
        name: String,
        file: String,
        key: String,
    },

    #[error(
        "image {name} from {url} does not match its published {algo} digest (expected {expected}, \
             got {actual}); the download was discarded: pull again, or use another mirror if it happens again"
    )]
    DigestMismatch {
        name: String,
        url: String,
        algo: DigestAlgo,
        expected: String,
        actual: String,
    },

    #[error(
        "image {name} from {from} is not a qcow2 image: {reason}; vnode needs qcow2 base images \
             (convert others with `qemu-img convert -O qcow2 IN OUT`)"
    )]
    NotQcow2 {
        name: String,
        from: String,
        #[source]
        reason: crate::images::qcow2::HeaderProblem,
    },

    #[error(
        "image {name} from {from} has a backing file ({backing}); a base image must stand alone: \
             flatten it with `qemu-img convert -O qcow2 IN OUT`"
    )]
    HasBackingFile {
        name: String,
        from: String,
        backing: String,
    },

    #[error("{} does not match {against} (expected {expected}, got {actual}); nothing was imported", file.display())]
    ImportMismatch {
        file: PathBuf,
        /// "--sha256", or the checksum file's line.
        against: String,
        expected: String,
        actual: String,
    },

    #[error(
        "the checksum file {checksums} has no sha256 or sha512 line for {file} (image {name}; it \
         lists {}); nothing was imported: import the file under the name the checksum file gives it",
        listed_files(listed)
    )]
    ImportNotListed {
        name: String,
        checksums: String,
        file: String,
        listed: Vec<String>,
    },

    #[error(
        "image {name} is being pulled by another vnode process right now; wait for it to finish"
    )]
    Busy { name: String },

    #[error("the metadata of image {name} ({}) is unreadable: {reason}; `vnode images rm {name}` and pull \
             or import it again", path.display())]
    BadMeta {
        name: String,
        path: PathBuf,
        reason: String,
    },

    #[error("{} failed verification (listed above); remove and fetch again: `vnode images rm NAME`, then \
             `vnode images pull NAME` or import it again", names.join(", "))]
    VerifyFailed { names: Vec<String> },

    #[error("cannot flatten {} into image {name}: {reason}", overlay.display())]
    Flatten {
        name: String,
        overlay: PathBuf,
        reason: String,
    },

    /// Ctrl-C during `vnode images pull`.
    #[error(
        "interrupted: nothing was added to the cache{}",
        if parts.is_empty() { String::new() } else {
            format!("; the partial download{} {} stay{} in {} and `vnode images pull {}` resumes {}",
                if parts.len() == 1 { "" } else { "s" }, parts.join(", "),
                if parts.len() == 1 { "s" } else { "" }, dir.display(), names.join(" "),
                if parts.len() == 1 { "it" } else { "them" })
        }
    )]
    PullInterrupted {
        /// The images whose `.part` files are kept.
        names: Vec<String>,
        /// Their `.part` files' names.
        parts: Vec<String>,
        dir: PathBuf,
    },

    #[error("{}", several(.0))]
    Several(Vec<ImageError>),
}

/// Why a checksum file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumFileProblem {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Parse(#[from] super::checksum_file::ParseError),
}

impl ImageError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ImageError::NotInCache { .. }
            | ImageError::BadName { .. }
            | ImageError::BadDigest { .. }
            | ImageError::AlreadyCached { .. }
            | ImageError::Untrusted(_) => EXIT_BAD_INPUT,
            ImageError::PullInterrupted { .. } => EXIT_INTERRUPTED,
            ImageError::Several(all) if all.iter().all(|e| e.exit_code() == EXIT_BAD_INPUT) => {
                EXIT_BAD_INPUT
            }
            _ => EXIT_FAILED,
        }
    }

    pub(super) fn io(action: &'static str, path: &Path, source: io::Error) -> ImageError {
        ImageError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The error of a pull or import of image `name`: a full file system names the image.
    pub(super) fn of_image(self, name: &str) -> ImageError {
        match self {
            ImageError::Io {
                action,
                path,
                source,
            } if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
                ImageError::NoSpace {
                    name: name.to_string(),
                    action,
                    path,
                    source,
                }
            }
            other => other,
        }
    }

    /// One error for a batch: itself when alone.
    pub fn from_many(mut errors: Vec<ImageError>) -> Option<ImageError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ImageError::Several(errors)),
        }
    }
}

fn not_cached_hint(name: &str, kind: &ImageKind, partial: bool) -> String {
    match kind {
        ImageKind::Catalog if partial => {
            format!("run `vnode images pull {name}` (it resumes the partial download)")
        }
        ImageKind::Catalog => format!("run `vnode images pull {name}`"),
        ImageKind::Local => format!("add it with `vnode images import FILE --name {name}`"),
        ImageKind::Derived { base, variant } => {
            format!("make it with `vnode images derive {base} {variant} -- COMMAND...`")
        }
    }
}

/// What to do about common I/O failures in the cache.
fn io_hint(e: &io::Error, path: &Path) -> String {
    let dir = path.parent().unwrap_or(path).display();
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            format!("; free space in {dir} (or set cache_dir elsewhere) and try again")
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            format!("; make {dir} writable for you, or run vnode as root")
        }
        _ => String::new(),
    }
}

fn listed_files(listed: &[String]) -> String {
    match listed {
        [] => "no files".into(),
        [a, b, c, _, ..] => format!("{a}, {b}, {c} and {} more", listed.len() - 3),
        _ => listed.join(", "),
    }
}

fn several(errors: &[ImageError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    format!("{} images failed:\n{}", errors.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_cached_says_what_to_run() {
        let e = ImageError::NotCached {
            name: "fedora-43".into(),
            dir: "/var/lib/vnode/images".into(),
            kind: ImageKind::Catalog,
            partial: false,
        };
        assert_eq!(
            e.to_string(),
            "image fedora-43 is not in the cache (/var/lib/vnode/images); run `vnode images pull fedora-43`"
        );
        let e = ImageError::NotCached {
            name: "fedora-43-k8s".into(),
            dir: "/c".into(),
            kind: ImageKind::Derived {
                base: "fedora-43".into(),
                variant: "k8s".into(),
            },
            partial: false,
        };
        assert!(
            e.to_string().contains("vnode images derive fedora-43 k8s"),
            "{e}"
        );
    }

    #[test]
    fn a_full_disk_says_to_free_space() {
        let e = ImageError::io(
            "write",
            Path::new("/c/x.qcow2.part"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(e.to_string().contains("free space in /c"), "{e}");
    }
}

/// Why a pinned key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("not an OpenPGP public key: {0}")]
    NotAKey(#[source] Box<pgp::errors::Error>),
    #[error("it holds no OpenPGP public key")]
    NoKey,
    #[error("the self-signatures of key {fingerprint} do not verify: {source}")]
    Bindings {
        fingerprint: String,
        #[source]
        source: Box<pgp::errors::Error>,
    },
}

/// Why a detached signature's bytes are not there.
#[derive(Debug, thiserror::Error)]
pub enum SignatureUnavailable {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// Why signature data cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Parse(#[source] Box<pgp::errors::Error>),
    #[error("it holds no OpenPGP signature")]
    NoSignature,
    #[error("it holds no data signature")]
    NoDataSignature,
}
