//! OpenPGP signatures of the distributions' checksum files: a digest is trusted only when the file
//! that gives it carries a good signature by a key pinned for the image. The download host (a
//! mirror that `download.fedoraproject.org` picked, or anything between for http mirrors) can then
//! no longer hand out a forged image with a matching checksum file.
//!
//! Two forms: Fedora's `CHECKSUM` is clear-signed; Ubuntu's `SHA256SUMS` has a detached
//! `SHA256SUMS.gpg`, Debian's `SHA512SUMS` a detached `SHA512SUMS.sign`. For the clear-signed form
//! the digest is read from the *signed* text only: lines a mirror adds outside the signed part
//! are never looked at.
//!
//! Why rPGP (the `pgp` crate): it is pure Rust (no gpg, gpgv or C library on the host, nothing
//! to install in CI), maintained (the OpenPGP implementation of Delta Chat and others, regular
//! releases, an external audit), builds here on stable with our MSRV, and parses and verifies
//! both forms plus the distributions' RSA-4096 keys with the default features off. Sequoia was
//! the other candidate: more complete policy machinery, but it pulls in nettle or another
//! crypto backend as a C dependency by default.
//!
//! What is checked of the key, as far as rPGP exposes it: the signature must be made by the
//! pinned primary key or one of its subkeys; a key (or subkey) with a revocation signature is
//! refused; a signature made after the key's expiration time (from its self-signatures) is
//! refused, and so is one made by a subkey after that subkey expired (from its binding
//! signatures), with its own message. A signature must state its creation time in its hashed
//! area (RFC 9580 requires it); one that does not is refused, since no expiry could be judged.
//! Expiry is judged at the signature's creation time, not now: the Fedora 33 key signed
//! Fedora 33's CHECKSUM in its lifetime, and that stays true after the key is retired.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{ImageError, KeyProblem, SignatureUnavailable, Unreadable};
use pgp::composed::{
    CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey,
};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Timestamp};

/// The keys vnode ships: name (as `signing_keys` in images.toml names it) and the key file.
/// Each file starts with comment lines giving the fingerprint and the page that publishes it.
pub const BUILTIN_KEYS: &[(&str, &str)] = &[
    ("fedora-33", include_str!("keys/fedora-33.asc")),
    ("fedora-34", include_str!("keys/fedora-34.asc")),
    ("fedora-35", include_str!("keys/fedora-35.asc")),
    ("fedora-41", include_str!("keys/fedora-41.asc")),
    ("fedora-42", include_str!("keys/fedora-42.asc")),
    ("fedora-43", include_str!("keys/fedora-43.asc")),
    (
        "ubuntu-cloud-uec",
        include_str!("keys/ubuntu-cloud-uec.asc"),
    ),
    (
        "ubuntu-cloud-builder",
        include_str!("keys/ubuntu-cloud-builder.asc"),
    ),
    ("debian-cd-2009", include_str!("keys/debian-cd-2009.asc")),
    ("debian-cd-2011", include_str!("keys/debian-cd-2011.asc")),
];

/// Where a pinned key comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// One of [`BUILTIN_KEYS`].
    Builtin(String),
    /// A key file a user catalog names (armored or binary).
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Builtin(name) => write!(f, "built-in key {name}"),
            KeySource::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

impl KeySource {
    /// `signing_keys` entry of a catalog: a built-in key's name, or a path (relative paths are
    /// relative to the catalog file's directory). Paths are told apart by a `/` or a key file
    /// extension.
    pub fn parse(value: &str, catalog_dir: &Path) -> Result<KeySource, UnknownKey> {
        let is_path = value.contains('/')
            || [".asc", ".gpg", ".pgp", ".key"]
                .iter()
                .any(|ext| value.ends_with(ext));
        if is_path {
            return Ok(KeySource::File(catalog_dir.join(value)));
        }
        if BUILTIN_KEYS.iter().any(|(n, _)| *n == value) {
            return Ok(KeySource::Builtin(value.to_string()));
        }
        Err(UnknownKey(value.to_string()))
    }
}

/// A `signing_keys` entry that is neither a built-in key nor a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither a built-in key ({names}) nor a key file path", names = builtin_names())]
pub struct UnknownKey(pub String);

fn builtin_names() -> String {
    let names: Vec<&str> = BUILTIN_KEYS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

/// One pinned key, parsed.
#[derive(Clone, Debug)]
pub struct PinnedKey {
    pub key: SignedPublicKey,
    /// Uppercase hex, as `gpg --with-colons` prints it.
    pub fingerprint: String,
    pub source: KeySource,
}

/// The keys an image's checksum file may be signed by.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<PinnedKey>,
}

impl Keyring {
    pub fn load(sources: &[KeySource]) -> Result<Keyring, (KeySource, KeyProblem)> {
        let mut keys = Vec::new();
        for source in sources {
            let parsed = match source {
                KeySource::Builtin(name) => {
                    let text = BUILTIN_KEYS
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| *t)
                        .expect("checked when the catalog was read");
                    parse_keys(text.as_bytes())
                }
                KeySource::File(path) => std::fs::read(path)
                    .map_err(KeyProblem::Read)
                    .and_then(|bytes| parse_keys(&bytes)),
            }
            .map_err(|reason| (source.clone(), reason))?;
            keys.extend(parsed.into_iter().map(|key| PinnedKey {
                fingerprint: format!("{:X}", key.fingerprint()),
                key,
                source: source.clone(),
            }));
        }
        Ok(Keyring { keys })
    }

    pub fn keys(&self) -> &[PinnedKey] {
        &self.keys
    }

    /// "FINGERPRINT (built-in key fedora-43)", one per key, for messages.
    pub fn describe(&self) -> String {
        self.keys
            .iter()
            .map(|k| format!("{} ({})", k.fingerprint, k.source))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// Public keys from an armored (leading `#` comment lines allowed) or binary key file. Each key's
/// self-signatures must verify.
pub fn parse_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, KeyProblem> {
    const BEGIN: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let keys: Vec<SignedPublicKey> = match bytes.windows(BEGIN.len()).position(|w| w == BEGIN) {
        Some(at) => {
            let text = String::from_utf8_lossy(&bytes[at..]).into_owned();
            let (keys, _) = SignedPublicKey::from_string_many(&text)
                .map_err(|e| KeyProblem::NotAKey(e.into()))?;
            keys.collect::<Result<_, _>>()
        }
        None => SignedPublicKey::from_bytes_many(bytes)
            .map_err(|e| KeyProblem::NotAKey(e.into()))?
            .collect::<Result<_, _>>(),
    }
    .map_err(|e| KeyProblem::NotAKey(e.into()))?;
    if keys.is_empty() {
        return Err(KeyProblem::NoKey);
    }
    for key in &keys {
        key.verify_bindings()
            .map_err(|source| KeyProblem::Bindings {
                fingerprint: format!("{:X}", key.fingerprint()),
                source: source.into(),
            })?;
    }
    Ok(keys)
}

/// Why a signed checksum file is not trusted. The caller adds the image, the file and the
/// expected keys to the message.
#[derive(Debug)]
pub enum Refusal {
    /// A clear-signed file was expected, and this is plain text.
    NotClearSigned,
    /// The signature data cannot be parsed.
    Unreadable(Unreadable),
    /// Signed, but by none of the pinned keys (issuer as the signature names it).
    OtherKey { signer: String },
    /// By a pinned key, but the signature does not match the content.
    Mismatch { key: String },
    /// The pinned key that made the signature is revoked.
    Revoked { key: String },
    /// The signature was made after the pinned key expired.
    Expired { key: String },
    /// The signature was made by a subkey of a pinned key after that subkey expired.
    SubkeyExpired { subkey: String, key: String },
    /// The signature by a pinned key states no creation time (in its hashed area), so its
    /// key's expiry cannot be judged.
    Undated { key: String },
}

/// A verified signature: the signed content and the key that signed it.
#[derive(Debug)]
pub struct Verified {
    pub content: String,
    /// Fingerprint of the pinned (primary) key.
    pub signer: String,
}

/// Checks a clear-signed document; the result's content is the signed text only.
pub fn verify_clear(text: &str, keyring: &Keyring) -> Result<Verified, Refusal> {
    if !text
        .lines()
        .any(|l| l.trim_end() == "-----BEGIN PGP SIGNED MESSAGE-----")
    {
        return Err(Refusal::NotClearSigned);
    }
    let (message, _) = CleartextSignedMessage::from_string(text.trim_start())
        .map_err(|e| Refusal::Unreadable(Unreadable::Parse(e.into())))?;
    let signed = message.signed_text();
    let signer = check_any(message.signatures(), signed.as_bytes(), keyring)?;
    Ok(Verified {
        // The signed text has CRLF line ends (RFC 9580 §7.1); the checksum parser takes both.
        content: signed,
        signer,
    })
}

/// Checks a detached signature (armored or binary) over `content`.
pub fn verify_detached(
    content: &[u8],
    signature: &[u8],
    keyring: &Keyring,
) -> Result<Verified, Refusal> {
    let signatures = parse_detached(signature).map_err(Refusal::Unreadable)?;
    let signer = check_any(&signatures, content, keyring)?;
    Ok(Verified {
        content: String::from_utf8_lossy(content).into_owned(),
        signer,
    })
}

fn parse_detached(bytes: &[u8]) -> Result<Vec<Signature>, Unreadable> {
    let parse = |e: pgp::errors::Error| Unreadable::Parse(e.into());
    let (sigs, _) = DetachedSignature::from_reader_many(bytes).map_err(parse)?;
    let sigs: Vec<Signature> = sigs
        .map(|s| s.map(|s| s.signature))
        .collect::<Result<_, _>>()
        .map_err(parse)?;
    if sigs.is_empty() {
        return Err(Unreadable::NoSignature);
    }
    Ok(sigs)
}

/// Good when one of the signatures is a good one by a pinned key. Otherwise the most telling
/// refusal: a mismatch or a key problem of a pinned key before "another key".
fn check_any(sigs: &[Signature], content: &[u8], keyring: &Keyring) -> Result<String, Refusal> {
    let mut worst: Option<Refusal> = None;
    for sig in sigs {
        if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
            continue;
        }
        let refusal = match check_one(sig, content, keyring) {
            Ok(signer) => return Ok(signer),
            Err(r) => r,
        };
        let rank = |r: &Refusal| match r {
            Refusal::OtherKey { .. } | Refusal::Unreadable(_) | Refusal::NotClearSigned => 0,
            _ => 1,
        };
        if worst.as_ref().is_none_or(|w| rank(&refusal) > rank(w)) {
            worst = Some(refusal);
        }
    }
    Err(worst.unwrap_or(Refusal::Unreadable(Unreadable::NoDataSignature)))
}

fn check_one(sig: &Signature, content: &[u8], keyring: &Keyring) -> Result<String, Refusal> {
    let fingerprints: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    let key_ids: Vec<String> = sig
        .issuer_key_id()
        .iter()
        .map(|id| hex::encode_upper(id.as_ref()))
        .collect();
    let issued = |k: &dyn KeyDetails| {
        let fp = format!("{:X}", k.fingerprint());
        let id = hex::encode_upper(k.legacy_key_id().as_ref());
        fingerprints.contains(&fp) || key_ids.contains(&id)
    };
    for pinned in keyring.keys() {
        let key = &pinned.key;
        let mismatch = || Refusal::Mismatch {
            key: pinned.fingerprint.clone(),
        };
        let dated = || {
            sig.created().ok_or_else(|| Refusal::Undated {
                key: pinned.fingerprint.clone(),
            })
        };
        if issued(&key.primary_key) {
            let created = dated()?;
            key_usable(key, created, &pinned.fingerprint)?;
            sig.verify(&key.primary_key, content)
                .map_err(|_| mismatch())?;
            return Ok(pinned.fingerprint.clone());
        }
        for sub in &key.public_subkeys {
            if !issued(&sub.key) {
                continue;
            }
            let created = dated()?;
            key_usable(key, created, &pinned.fingerprint)?;
            subkey_usable(sub, created, &pinned.fingerprint)?;
            sig.verify(&sub.key, content).map_err(|_| mismatch())?;
            return Ok(pinned.fingerprint.clone());
        }
    }
    let signer = fingerprints
        .first()
        .or(key_ids.first())
        .cloned()
        .unwrap_or_else(|| "(the signature names no issuer)".into());
    Err(Refusal::OtherKey { signer })
}

/// Revocation and expiry of the primary key, as of the signature's creation.
fn key_usable(
    key: &SignedPublicKey,
    signed_at: Timestamp,
    fingerprint: &str,
) -> Result<(), Refusal> {
    if !key.details.revocation_signatures.is_empty() {
        return Err(Refusal::Revoked {
            key: fingerprint.to_string(),
        });
    }
    let self_signatures = key
        .details
        .users
        .iter()
        .flat_map(|u| &u.signatures)
        .chain(&key.details.direct_signatures);
    if expired(self_signatures, key.primary_key.created_at(), signed_at) {
        return Err(Refusal::Expired {
            key: fingerprint.to_string(),
        });
    }
    Ok(())
}

/// Revocation and expiry of a subkey (from its binding signatures), as of the signature's
/// creation.
fn subkey_usable(
    sub: &SignedPublicSubKey,
    signed_at: Timestamp,
    fingerprint: &str,
) -> Result<(), Refusal> {
    let subkey = format!("{:X}", sub.key.fingerprint());
    let revoked = sub
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
    if revoked {
        return Err(Refusal::Revoked {
            key: format!("{subkey} (subkey of {fingerprint})"),
        });
    }
    let bindings = sub
        .signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding));
    if expired(bindings, sub.key.created_at(), signed_at) {
        return Err(Refusal::SubkeyExpired {
            subkey,
            key: fingerprint.to_string(),
        });
    }
    Ok(())
}

/// Had a key made at `made` expired at `at`? The newest of `signatures` (self-signatures or
/// bindings) decides: its key expiration time, counted from `made` (none or 0: never).
fn expired<'a>(
    signatures: impl Iterator<Item = &'a Signature>,
    made: Timestamp,
    at: Timestamp,
) -> bool {
    let expiry = signatures
        .filter_map(|s| Some((s.created()?, s.key_expiration_time())))
        .max_by_key(|(created, _)| created.as_secs())
        .and_then(|(_, expiry)| expiry);
    expiry.is_some_and(|e| {
        let ends = u64::from(made.as_secs()) + u64::from(e.as_secs());
        e.as_secs() > 0 && u64::from(at.as_secs()) > ends
    })
}

/// A checksum file as fetched or read, and its detached signature if the entry names one.
pub struct SignedChecksums<'a> {
    /// The image, for messages.
    pub name: &'a str,
    /// URL or path of the checksum file.
    pub file: &'a str,
    pub text: &'a [u8],
    /// URL or path of the detached signature, and its bytes (or why there are none).
    pub detached: Option<(&'a str, Result<Vec<u8>, SignatureUnavailable>)>,
}

impl SignedChecksums<'_> {
    /// The signed checksum text and the signer's fingerprint, or the refusal as the image error
    /// that names the image, the file and the keys expected.
    pub fn verify(self, keyring: &Keyring) -> Result<Verified, ImageError> {
        let name = self.name.to_string();
        let file = self.file.to_string();
        let expected = keyring.describe();
        let signature = self.detached.as_ref().map(|(s, _)| s.to_string());
        let result = match self.detached {
            None => verify_clear(&String::from_utf8_lossy(self.text), keyring),
            Some((signature, fetched)) => {
                let bytes = fetched.map_err(|reason| ImageError::SignatureMissing {
                    name: name.clone(),
                    file: file.clone(),
                    signature: signature.to_string(),
                    expected: expected.clone(),
                    reason,
                })?;
                verify_detached(self.text, &bytes, keyring)
            }
        };
        result.map_err(|refusal| match refusal {
            Refusal::NotClearSigned => ImageError::NotSigned {
                name,
                file,
                expected,
            },
            Refusal::Unreadable(reason) => ImageError::SignatureUnreadable {
                name,
                signature: signature.unwrap_or_else(|| file.clone()),
                file,
                reason,
            },
            Refusal::OtherKey { signer } => ImageError::SignedByOtherKey {
                name,
                file,
                signer,
                expected,
            },
            Refusal::Mismatch { key } => match signature {
                None => ImageError::ClearSignatureMismatch {
                    name,
                    file,
                    expected: key,
                },
                Some(signature) => ImageError::DetachedSignatureMismatch {
                    name,
                    file,
                    signature,
                    expected: key,
                },
            },
            Refusal::Revoked { key } => ImageError::SigningKeyUnusable {
                name,
                file,
                key,
                state: "revoked",
            },
            Refusal::Expired { key } => ImageError::SigningKeyUnusable {
                name,
                file,
                key,
                state: "expired at the time of the signature",
            },
            Refusal::SubkeyExpired { subkey, key } => ImageError::SigningSubkeyExpired {
                name,
                file,
                subkey,
                key,
            },
            Refusal::Undated { key } => ImageError::SignatureUndated { name, file, key },
        })
    }
}

/// The keyring of an image, or the error that says none is pinned or a key is unusable.
pub fn keyring_for(name: &str, file: &str, keys: &[KeySource]) -> Result<Keyring, ImageError> {
    if keys.is_empty() {
        return Err(ImageError::NoSigningKey {
            name: name.to_string(),
            file: file.to_string(),
        });
    }
    Keyring::load(keys).map_err(|(source, reason)| ImageError::SigningKey {
        name: name.to_string(),
        key: source.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each built-in key parses, its self-signatures verify, and its fingerprint is the one
    /// written in its file's comment (which is the one the distribution publishes).
    #[test]
    fn the_pinned_keys_are_the_published_ones() {
        for (name, text) in BUILTIN_KEYS {
            let written = text
                .lines()
                .find_map(|l| l.strip_prefix("# fingerprint: "))
                .unwrap_or_else(|| panic!("{name}: no '# fingerprint:' comment"))
                .replace(' ', "");
            let keys = parse_keys(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(keys.len(), 1, "{name}");
            assert_eq!(format!("{:X}", keys[0].fingerprint()), written, "{name}");
        }
    }

    /// The fingerprints as the distributions publish them (fedoraproject.org/security,
    /// the Ubuntu public-images docs, debian.org/CD/verify), typed here a second time so that a
    /// swapped key file cannot pass by rewriting its comment.
    #[test]
    fn the_fingerprints_match_the_distributions_pages() {
        let published = [
            ("fedora-33", "963A2BEB02009608FE67EA4249FD77499570FF31"),
            ("fedora-34", "8C5BA6990BDB26E19F2A1A801161AE6945719A39"),
            ("fedora-35", "787EA6AE1147EEE56C40B30CDB4639719867C58F"),
            ("fedora-41", "466CF2D8B60BC3057AA9453ED0622462E99D6AD1"),
            ("fedora-42", "B0F4950458F69E1150C6C5EDC8AC4916105EF944"),
            ("fedora-43", "C6E7F081CF80E13146676E88829B606631645531"),
            (
                "ubuntu-cloud-uec",
                "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",
            ),
            (
                "ubuntu-cloud-builder",
                "4A3CE3CD565D7EB5C810E2B97FF3F408476CF100",
            ),
            ("debian-cd-2009", "10460DAD76165AD81FBC0CE9988021A964E6EA7D"),
            ("debian-cd-2011", "DF9B9C49EAA9298432589D76DA87E80D6294BE9B"),
        ];
        assert_eq!(published.len(), BUILTIN_KEYS.len());
        for (name, fingerprint) in published {
            let ring = Keyring::load(&[KeySource::Builtin(name.into())]).unwrap();
            assert_eq!(ring.keys()[0].fingerprint, fingerprint, "{name}");
        }
    }

    #[test]
    fn key_sources_are_names_or_paths() {
        let dir = Path::new("/etc/vnode");
        assert_eq!(
            KeySource::parse("fedora-43", dir),
            Ok(KeySource::Builtin("fedora-43".into()))
        );
        assert_eq!(
            KeySource::parse("keys/mine.asc", dir),
            Ok(KeySource::File("/etc/vnode/keys/mine.asc".into()))
        );
        assert_eq!(
            KeySource::parse("/k/x", dir),
            Ok(KeySource::File("/k/x".into()))
        );
        let e = KeySource::parse("fedora-99", dir).unwrap_err().to_string();
        assert!(e.contains("fedora-43"), "{e}");
    }

    #[test]
    fn plain_text_is_not_clear_signed() {
        let ring = Keyring::load(&[KeySource::Builtin("fedora-43".into())]).unwrap();
        assert!(matches!(
            verify_clear("SHA256 (a) = 00\n", &ring).unwrap_err(),
            Refusal::NotClearSigned
        ));
        assert!(matches!(
            verify_detached(b"x", b"not a signature", &ring).unwrap_err(),
            Refusal::Unreadable(_)
        ));
    }
}
