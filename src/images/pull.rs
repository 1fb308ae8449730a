//! `vnode images pull`: catalog images into the cache, verified and resumable.
//!
//! For each image: the expected digest (from the distribution's checksum file, or inline in the
//! catalog); the body streamed into `NAME.qcow2.part` and hashed on the way (one pass, see
//! [`super::sink`]); the digest compared; the qcow2 header checked; the file renamed into place.
//! An interrupted download keeps its `.part`. The next pull hashes what is there and asks for
//! the rest with a Range request. It trusts only a `206` whose `Content-Range` starts exactly
//! there, and otherwise starts again from zero.
//!
//! A pull that is stopped (Ctrl-C: the command drops this future) keeps its `.part` too, and adds
//! nothing to the cache: an image enters it only by the rename in [`Cache::commit`]. A `.part`
//! whose write failed (a full disk above all) is removed instead: it would hold the space the
//! user has to free, and the bytes are easily fetched again.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::HumanBytes;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Client, Response, StatusCode};

use super::cache::{Cache, CachedImage};
use super::checksum_file;
use super::digest::{Hasher, hash_file};
use super::error::{ChecksumFileProblem, ImageError};
use super::fetch_error::{CHECKSUM_FILE_LIMIT, FetchError, HttpError};
use super::meta::{self, ImageMeta, Origin, Trust};
use super::progress::{Bar, Progress, rate};
use super::redirect;
use super::signature;
use super::sink::Sink;
use super::validate::check_base_image;
use crate::images::catalog::{CatalogEntry, Checksum, DigestAlgo};
use crate::images::qcow2::HeaderProblem;
use crate::process::unix::{self, TryLockError};

/// Pulls catalog entries into the cache, all at once, each with its own progress bar. Images
/// already cached are kept unless `force`. Every image that could be pulled is in the cache
/// afterwards, even when others failed; the error then lists each failure.
pub async fn pull(
    cache: &Cache,
    entries: &[CatalogEntry],
    force: bool,
    max_image_mib: u64,
    progress: &Progress,
) -> Result<Vec<CachedImage>, ImageError> {
    let options = PullOptions {
        force,
        check_signatures: true,
        max_image_mib,
    };
    pull_with(cache, entries, options, progress).await
}

/// How `vnode images pull` treats the images it is given.
#[derive(Clone, Copy, Debug)]
pub struct PullOptions {
    /// Download again even when cached.
    pub force: bool,
    /// Trust a checksum file only with a good signature by a pinned key (`--no-signature`
    /// turns it off, and the image's metadata says so).
    pub check_signatures: bool,
    /// No image body may be larger (the config's `max_image_mib`): a mirror cannot fill the disk.
    pub max_image_mib: u64,
}

impl PullOptions {
    fn max_bytes(&self) -> u64 {
        self.max_image_mib.saturating_mul(1 << 20)
    }
}

/// [`pull`] with all options.
pub async fn pull_with(
    cache: &Cache,
    entries: &[CatalogEntry],
    options: PullOptions,
    progress: &Progress,
) -> Result<Vec<CachedImage>, ImageError> {
    let mut unique: Vec<&CatalogEntry> = Vec::new();
    for e in entries {
        if !unique.iter().any(|u| u.name == e.name) {
            unique.push(e);
        }
    }
    if let Some(warning) = cache.prepare()? {
        progress.note(&format!("warning: {warning}"));
    }
    let client = client()?;
    let pulls = unique.into_iter().map(|entry| {
        let bar = progress.bar(&entry.name);
        let client = &client;
        async move {
            let result = pull_one(cache, client, entry, options, &bar)
                .await
                .map_err(|e| e.of_image(&entry.name));
            if result.is_err() {
                bar.failed("failed (see below)");
            }
            result
        }
    });
    let mut images = Vec::new();
    let mut errors = Vec::new();
    for result in futures_util::future::join_all(pulls).await {
        match result {
            Ok(image) => images.push(image),
            Err(e) => errors.push(e),
        }
    }
    match ImageError::from_many(errors) {
        Some(e) => Err(e),
        None => Ok(images),
    }
}

/// The error for a pull of `entries` stopped by Ctrl-C: which `.part` files it leaves for resume.
pub fn interrupted(cache: &Cache, entries: &[CatalogEntry]) -> ImageError {
    let (mut names, mut parts) = (Vec::new(), Vec::new());
    for e in entries {
        let part = cache.part_path(&e.name);
        if part.is_file() && !names.contains(&e.name) {
            names.push(e.name.clone());
            parts.push(
                part.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    ImageError::PullInterrupted {
        names,
        parts,
        dir: cache.dir().to_path_buf(),
    }
}

/// reqwest honours `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` (either case) by
/// default. No compression is requested: Range offsets must count bytes of the file.
fn client() -> Result<Client, ImageError> {
    Client::builder()
        .user_agent(concat!("vnode/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // A stalled mirror fails the pull (which can then resume) instead of hanging it.
        .read_timeout(Duration::from_secs(60))
        .redirect(redirect::policy())
        .build()
        .map_err(|e| ImageError::HttpClient {
            reason: describe(e),
        })
}

async fn pull_one(
    cache: &Cache,
    client: &Client,
    entry: &CatalogEntry,
    options: PullOptions,
    bar: &Bar,
) -> Result<CachedImage, ImageError> {
    if !options.force
        && let Some(image) = cache.find(&entry.name)
    {
        bar.done("already in the cache");
        return Ok(image);
    }
    let (algo, expected, trust) =
        expected_digest(client, entry, options.check_signatures, bar).await?;
    let part = cache.part_path(&entry.name);
    let limit = Limit::of(&options);
    let mut got = download(client, entry, &part, algo, limit, bar).await?;
    if got.digest != expected && got.resumed_from > 0 {
        // The partial file was damaged, or from an earlier version of the image at this URL.
        discard(&part);
        bar.status("the resumed download does not match; downloading it again from zero");
        got = download(client, entry, &part, algo, limit, bar).await?;
    }
    if got.digest != expected {
        discard(&part);
        return Err(ImageError::DigestMismatch {
            name: entry.name.clone(),
            url: entry.url.clone(),
            algo,
            expected,
            actual: got.digest,
        });
    }
    let info = check_base_image(&entry.name, &entry.url, &part).inspect_err(|_| discard(&part))?;
    let meta = ImageMeta {
        name: entry.name.clone(),
        origin: Origin::Pulled,
        source: entry.url.clone(),
        version: Some(entry.version.clone()),
        algo,
        digest: expected,
        size: got.size,
        virtual_size: info.virtual_size,
        created: meta::now(),
        osinfo: Some(entry.osinfo.clone()),
        parent: None,
        trust: trust.clone(),
    };
    let image = cache.commit(&part, &meta)?;
    let (bytes, took) = bar.transferred();
    let vouched = match &trust {
        Trust::Signed { signer, .. } => format!("signature by {signer} verified"),
        Trust::Unsigned { reason } => format!("NO signature checked: {reason}"),
        Trust::Unrecorded => unreachable!("a pull records how it checked"),
    };
    bar.done(&format!(
        "{} in {:.1} s ({}), {algo} verified, {vouched}",
        HumanBytes(got.size),
        took.as_secs_f64(),
        rate(bytes, took)
    ));
    Ok(image)
}

/// The digest the image must have, and what vouches for it. With `check_signatures`, the digest
/// comes only from a checksum file whose signature by a pinned key verified; nothing of the
/// image is fetched before that.
async fn expected_digest(
    client: &Client,
    entry: &CatalogEntry,
    check_signatures: bool,
    bar: &Bar,
) -> Result<(DigestAlgo, String, Trust), ImageError> {
    let (url, algo, signature_url, signing_keys) = match &entry.checksum {
        Checksum::Inline { algo, digest } => {
            let trust = Trust::Unsigned {
                reason: "inline digest in the catalog".into(),
            };
            return Ok((*algo, digest.clone(), trust));
        }
        Checksum::File {
            url,
            algo,
            signature_url,
            signing_keys,
        } => (url, *algo, signature_url, signing_keys),
    };
    let keyring = check_signatures
        .then(|| signature::keyring_for(&entry.name, url, signing_keys))
        .transpose()?;
    bar.status("fetching the checksum file");
    let unusable = |reason: ChecksumFileProblem| ImageError::ChecksumFile {
        name: entry.name.clone(),
        url: url.clone(),
        reason,
    };
    let body = fetch_small(client, url)
        .await
        .map_err(|e| unusable(e.into()))?;
    let (text, trust) = match &keyring {
        None => (
            String::from_utf8_lossy(&body).into_owned(),
            Trust::Unsigned {
                reason: "--no-signature".into(),
            },
        ),
        Some(keyring) => {
            let detached = match signature_url {
                Some(sig_url) => {
                    bar.status("fetching the signature");
                    let fetched = fetch_small(client, sig_url).await.map_err(Into::into);
                    Some((sig_url.as_str(), fetched))
                }
                None => None,
            };
            let verified = signature::SignedChecksums {
                name: &entry.name,
                file: url,
                text: &body,
                detached,
            }
            .verify(keyring)?;
            let trust = Trust::Signed {
                signer: verified.signer,
                checksums: url.clone(),
            };
            (verified.content, trust)
        }
    };
    let lines = checksum_file::parse(&text).map_err(|e| unusable(e.into()))?;
    let file = checksum_file::url_file_name(&entry.url);
    match checksum_file::find(&lines, &file, algo) {
        Some(digest) => Ok((algo, digest.to_string(), trust)),
        None => Err(ImageError::ChecksumNotListed {
            name: entry.name.clone(),
            url: url.clone(),
            file,
            algo,
            listed: lines.into_iter().map(|l| l.file).collect(),
        }),
    }
}

/// A checksum file or signature: small, whole, as bytes (a detached signature may be binary).
async fn fetch_small(client: &Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let resp = client.get(url).send().await.map_err(HttpError::from)?;
    if resp.status() != StatusCode::OK {
        return Err(FetchError::Status(resp.status()));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(HttpError::from)?);
        if body.len() > CHECKSUM_FILE_LIMIT {
            return Err(FetchError::TooLarge);
        }
    }
    Ok(body)
}

/// The most bytes an image may have, and the config value that says so (for the message).
#[derive(Clone, Copy, Debug)]
struct Limit {
    bytes: u64,
    mib: u64,
}

impl Limit {
    fn of(options: &PullOptions) -> Limit {
        Limit {
            bytes: options.max_bytes(),
            mib: options.max_image_mib,
        }
    }

    fn exceeded(self, entry: &CatalogEntry, announced: Option<u64>) -> ImageError {
        ImageError::TooLarge {
            name: entry.name.clone(),
            url: entry.url.clone(),
            limit_mib: self.mib,
            announced,
        }
    }
}

/// A `.part` file holding the whole body.
struct Fetched {
    size: u64,
    digest: String,
    /// Bytes that were already there (0: a fresh download).
    resumed_from: u64,
}

/// Brings `part` to the complete body of the image (resuming what is there) and returns its
/// digest. On failure the `.part` stays only if it holds bytes worth resuming.
async fn download(
    client: &Client,
    entry: &CatalogEntry,
    part: &Path,
    algo: DigestAlgo,
    limit: Limit,
    bar: &Bar,
) -> Result<Fetched, ImageError> {
    let file = open_locked(part, &entry.name)?;
    let at = Target { part, file: &file };
    let result = transfer(client, entry, at, algo, limit, bar).await;
    if let Err(e) = &result {
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        // A failed write, a body that is not qcow2 or one past the size cap leaves nothing
        // worth resuming.
        let useless = matches!(
            e,
            ImageError::Io { .. } | ImageError::NotQcow2 { .. } | ImageError::TooLarge { .. }
        );
        if empty || useless {
            discard(part);
        }
    }
    result
}

/// Opens (creating) the `.part` file and locks it, so that two vnode processes never write the
/// same download. The lock goes with the file descriptor.
fn open_locked(part: &Path, name: &str) -> Result<File, ImageError> {
    // Never through a symlink planted at the name, nor into a file linked elsewhere.
    let file =
        crate::files::open_or_create(part, 0o644).map_err(|e| ImageError::io("create", part, e))?;
    unix::try_lock_exclusive(&file).map_err(|e| match e {
        TryLockError::Held => ImageError::Busy {
            name: name.to_string(),
        },
        TryLockError::Failed(e) => ImageError::io("lock", part, e),
    })?;
    Ok(file)
}

/// The `.part` file a download writes, locked.
#[derive(Clone, Copy)]
struct Target<'a> {
    part: &'a Path,
    file: &'a File,
}

async fn transfer(
    client: &Client,
    entry: &CatalogEntry,
    at: Target<'_>,
    algo: DigestAlgo,
    limit: Limit,
    bar: &Bar,
) -> Result<Fetched, ImageError> {
    let Target { part, file } = at;
    let held = file
        .metadata()
        .map_err(|e| ImageError::io("read", part, e))?
        .len();
    if held > limit.bytes {
        return Err(limit.exceeded(entry, Some(held)));
    }
    let (existing, mut hasher) = hash_existing(part, file, algo, bar).await?;
    let Some((resp, offset)) = respond(client, entry, existing, bar).await? else {
        return Ok(Fetched {
            size: existing,
            digest: hasher.finish(),
            resumed_from: existing,
        });
    };
    if offset == 0 {
        hasher = Hasher::new(algo);
    }
    let out = output_at(file, part, offset)?;
    let total = resp.content_length().map(|len| offset.saturating_add(len));
    // Refused before a byte of the body is written when the server says how long it is.
    if let Some(t) = total.filter(|t| *t > limit.bytes) {
        return Err(limit.exceeded(entry, Some(t)));
    }
    let what = if offset > 0 {
        format!("resuming at {}", HumanBytes(offset))
    } else {
        "downloading".to_string()
    };
    bar.start(total, offset, &what);
    let sink = Sink::start(hasher, out);
    let body = receive(resp, &sink, offset, limit.bytes, bar).await;
    let complete = body.broke.is_none()
        && body.not_qcow2.is_none()
        && !body.too_large
        && total.is_none_or(|t| body.got == t);
    let (hasher, written) = tokio::task::spawn_blocking(move || sink.finish(complete))
        .await
        .expect("sink task");
    written.map_err(|e| ImageError::io("write", part, e))?;
    let got = body.got;
    body.check(entry, total, limit)?;
    Ok(Fetched {
        size: got,
        digest: hasher.finish(),
        resumed_from: offset,
    })
}

/// The size of what a `.part` file holds already, and the hash of it (with progress).
async fn hash_existing(
    part: &Path,
    file: &File,
    algo: DigestAlgo,
    bar: &Bar,
) -> Result<(u64, Hasher), ImageError> {
    let io_err = |action| move |e| ImageError::io(action, part, e);
    let existing = file.metadata().map_err(io_err("read"))?.len();
    if existing == 0 {
        return Ok((0, Hasher::new(algo)));
    }
    bar.start(Some(existing), 0, "checking the partial download");
    let (path, b) = (part.to_path_buf(), bar.clone());
    let (h, n) = tokio::task::spawn_blocking(move || hash_file(&path, algo, |n| b.advance(n)))
        .await
        .expect("hashing task")
        .map_err(io_err("read"))?;
    if n != existing {
        return Err(ImageError::io(
            "read",
            part,
            io::Error::other("it changed while it was read"),
        ));
    }
    Ok((existing, h))
}

/// The server's answer to a request from `existing` bytes on: the response and the offset its
/// body starts at, or `None` when the `.part` file holds the whole image already.
async fn respond(
    client: &Client,
    entry: &CatalogEntry,
    existing: u64,
    bar: &Bar,
) -> Result<Option<(Response, u64)>, ImageError> {
    let resp = get(client, entry, existing).await?;
    let status = resp.status();
    let range = header(&resp, CONTENT_RANGE);
    Ok(Some(
        match decide(existing, status, range.as_deref(), resp.content_length()) {
            Decision::Fresh => {
                if existing > 0 {
                    bar.status("the server ignored the range request; downloading from zero");
                }
                (resp, 0)
            }
            Decision::Resume => (resp, existing),
            Decision::Complete => return Ok(None),
            Decision::Restart(why) => {
                bar.status(&format!("{why}; downloading from zero"));
                let resp = get(client, entry, 0).await?;
                if resp.status() != StatusCode::OK {
                    return Err(bad_status(entry, resp.status()));
                }
                (resp, 0)
            }
            Decision::Failed => return Err(bad_status(entry, status)),
        },
    ))
}

/// The `.part` file cut at `offset`, positioned there for the body.
fn output_at(file: &File, part: &Path, offset: u64) -> Result<File, ImageError> {
    let io_err = |action| move |e| ImageError::io(action, part, e);
    let mut out = file.try_clone().map_err(io_err("open"))?;
    out.set_len(offset).map_err(io_err("truncate"))?;
    out.seek(SeekFrom::Start(offset))
        .map_err(io_err("seek in"))?;
    Ok(out)
}

/// How a response body's transfer ended.
struct Received {
    /// Bytes of the image there are now (the offset included).
    got: u64,
    /// The body is not a qcow2 image (seen at its first bytes).
    not_qcow2: Option<HeaderProblem>,
    /// The connection broke.
    broke: Option<String>,
    /// The body went on past the size cap (it was cut there).
    too_large: bool,
}

/// Streams the body into `sink` until it ends, breaks, turns out not to be qcow2, goes past
/// `max_bytes`, or the sink fails.
async fn receive(resp: Response, sink: &Sink, offset: u64, max_bytes: u64, bar: &Bar) -> Received {
    let mut body = Received {
        got: offset,
        not_qcow2: None,
        broke: None,
        too_large: false,
    };
    let mut head = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                body.broke = Some(describe(e));
                break;
            }
        };
        // Refuse a web page or a compressed image at the first bytes, not after gigabytes.
        if body.got == 0 && head.len() < 4 {
            head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
            if head.len() == 4 && head != b"QFI\xfb" {
                let start = &chunk[..chunk.len().min(24)];
                body.not_qcow2 = Some(HeaderProblem::StartsWith(start.escape_ascii().to_string()));
                break;
            }
        }
        if body.got.saturating_add(chunk.len() as u64) > max_bytes {
            body.too_large = true;
            break;
        }
        body.got += chunk.len() as u64;
        bar.advance(chunk.len() as u64);
        if !sink.push(chunk).await {
            break;
        }
    }
    body
}

impl Received {
    /// A body that is not qcow2, or shorter than announced or broken off, is an error.
    fn check(
        self,
        entry: &CatalogEntry,
        total: Option<u64>,
        limit: Limit,
    ) -> Result<(), ImageError> {
        if let Some(reason) = self.not_qcow2 {
            return Err(ImageError::NotQcow2 {
                name: entry.name.clone(),
                from: entry.url.clone(),
                reason,
            });
        }
        if self.too_large {
            return Err(limit.exceeded(entry, None));
        }
        let short = total.is_some_and(|t| self.got != t);
        if self.broke.is_some() || short {
            return Err(ImageError::Interrupted {
                name: entry.name.clone(),
                url: entry.url.clone(),
                got: self.got,
                total,
                reason: self
                    .broke
                    .unwrap_or_else(|| "the server sent a different length than announced".into()),
            });
        }
        Ok(())
    }
}

async fn get(client: &Client, entry: &CatalogEntry, from: u64) -> Result<Response, ImageError> {
    let mut req = client.get(&entry.url);
    if from > 0 {
        req = req.header(RANGE, format!("bytes={from}-"));
    }
    req.send().await.map_err(|e| ImageError::Request {
        name: entry.name.clone(),
        url: entry.url.clone(),
        reason: describe(e),
    })
}

fn header(resp: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn bad_status(entry: &CatalogEntry, status: StatusCode) -> ImageError {
    ImageError::HttpStatus {
        name: entry.name.clone(),
        url: entry.url.clone(),
        status: status.to_string(),
    }
}

/// What to do with the answer to a request for the bytes from `existing` on.
#[derive(Debug, PartialEq)]
enum Decision {
    /// A whole body: (re)start from zero.
    Fresh,
    /// Exactly the rest of the file.
    Resume,
    /// The `.part` already holds the whole file (`416` with `bytes */SIZE` where SIZE is its length).
    Complete,
    /// A range answer that cannot be trusted: ask again for the whole file.
    Restart(&'static str),
    Failed,
}

fn decide(
    existing: u64,
    status: StatusCode,
    content_range: Option<&str>,
    content_length: Option<u64>,
) -> Decision {
    if status == StatusCode::OK {
        return Decision::Fresh;
    }
    if existing == 0 {
        return Decision::Failed;
    }
    let range = content_range.and_then(ContentRange::parse);
    match status {
        StatusCode::PARTIAL_CONTENT => match range {
            Some(ContentRange::Bytes { start, end, total })
                if start == existing
                    && total.is_none_or(|t| end + 1 == t)
                    && content_length.is_none_or(|l| l == end + 1 - start) =>
            {
                Decision::Resume
            }
            _ => Decision::Restart("the server's range answer does not fit the partial download"),
        },
        StatusCode::RANGE_NOT_SATISFIABLE => match range {
            Some(ContentRange::Unsatisfied { total }) if total == existing => Decision::Complete,
            _ => Decision::Restart("the partial download is longer than the file"),
        },
        _ => Decision::Failed,
    }
}

/// A `Content-Range` header (RFC 9110 §14.4).
#[derive(Debug, PartialEq)]
enum ContentRange {
    /// `bytes START-END/TOTAL`, TOTAL may be `*`.
    Bytes {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    /// `bytes */TOTAL`, with a 416.
    Unsatisfied { total: u64 },
}

impl ContentRange {
    fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        if range == "*" {
            return Some(ContentRange::Unsatisfied {
                total: total.parse().ok()?,
            });
        }
        let (start, end) = range.split_once('-')?;
        let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
        let total = match total {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange::Bytes {
            start,
            end,
            total,
        })
    }
}

/// A reqwest error with its causes, without the URL (see [`HttpError`]).
fn describe(e: reqwest::Error) -> String {
    HttpError::from(e).to_string()
}

fn discard(part: &Path) {
    let _ = fs::remove_file(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            ContentRange::parse("bytes 100-199/200"),
            Some(ContentRange::Bytes {
                start: 100,
                end: 199,
                total: Some(200)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 0-9/*"),
            Some(ContentRange::Bytes {
                start: 0,
                end: 9,
                total: None
            })
        );
        assert_eq!(
            ContentRange::parse("bytes */200"),
            Some(ContentRange::Unsatisfied { total: 200 })
        );
        for bad in [
            "bytes 9-0/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes x-1/2",
            "",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_matching_206_resumes() {
        let partial = StatusCode::PARTIAL_CONTENT;
        assert_eq!(
            decide(100, partial, Some("bytes 100-199/200"), Some(100)),
            Decision::Resume
        );
        assert_eq!(
            decide(100, partial, Some("bytes 100-199/*"), None),
            Decision::Resume
        );
        for (range, len) in [
            (Some("bytes 0-199/200"), Some(200)),
            (Some("bytes 100-149/200"), Some(50)),
            (Some("bytes 100-199/200"), Some(99)),
            (None, Some(100)),
        ] {
            assert!(
                matches!(decide(100, partial, range, len), Decision::Restart(_)),
                "{range:?}"
            );
        }
        assert_eq!(
            decide(100, StatusCode::OK, None, Some(200)),
            Decision::Fresh
        );
        assert_eq!(
            decide(0, partial, Some("bytes 0-1/2"), None),
            Decision::Failed
        );
        assert_eq!(
            decide(100, StatusCode::NOT_FOUND, None, None),
            Decision::Failed
        );
    }

    #[test]
    fn a_416_for_exactly_the_length_means_complete() {
        let unsat = StatusCode::RANGE_NOT_SATISFIABLE;
        assert_eq!(
            decide(200, unsat, Some("bytes */200"), None),
            Decision::Complete
        );
        assert!(matches!(
            decide(300, unsat, Some("bytes */200"), None),
            Decision::Restart(_)
        ));
    }

    /// The spawn pipeline may run a pull on a multi-threaded runtime (`tokio::spawn`).
    #[test]
    fn the_pull_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let cache = Cache::open(Path::new("/nonexistent")).unwrap();
        let progress = Progress::hidden();
        assert_send(&pull(&cache, &[], false, 1, &progress));
    }

    #[test]
    fn a_symlink_planted_at_the_part_name_is_refused_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (victim, link) = crate::files::create::tests::plant(dir.path(), "a.qcow2.part");
        assert!(matches!(
            open_locked(&link, "a"),
            Err(ImageError::Io { .. })
        ));
        assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }
}
