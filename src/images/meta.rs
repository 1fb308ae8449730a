//! The metadata file beside each cached image (`NAME.meta.json`): where the image came from and
//! the digest it was verified against. Written last, just before the image gets its final name.

use serde::{Deserialize, Serialize};

use crate::images::catalog::DigestAlgo;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub name: String,
    pub origin: Origin,
    /// The URL it was downloaded from, or the path it was imported from.
    pub source: String,
    /// The catalog entry's version, for pulled images.
    #[serde(default)]
    pub version: Option<String>,
    pub algo: DigestAlgo,
    /// Lowercase hex.
    pub digest: String,
    /// Bytes of the qcow2 file.
    pub size: u64,
    /// Bytes of the virtual disk.
    pub virtual_size: u64,
    /// When it entered the cache, RFC 3339 UTC.
    pub created: String,
    #[serde(default)]
    pub osinfo: Option<String>,
    /// The image a derived image was made from.
    #[serde(default)]
    pub parent: Option<String>,
    /// Whether the digest came from a signature-checked checksum file.
    #[serde(default)]
    pub trust: Trust,
}

/// What vouches for the recorded digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Trust {
    /// A checksum file whose OpenPGP signature by a pinned key verified.
    Signed {
        /// Fingerprint of the key that signed it.
        signer: String,
        /// The checksum file (URL or path).
        checksums: String,
    },
    /// No signature was checked, and why (`--no-signature`, an inline digest, a local import).
    Unsigned { reason: String },
    /// Metadata written before vnode checked signatures.
    #[default]
    Unrecorded,
}

impl Trust {
    /// A short cell for `vnode images list`.
    pub fn summary(&self) -> String {
        match self {
            Trust::Signed { signer, .. } => {
                format!(
                    "signed {}",
                    signer
                        .get(signer.len().saturating_sub(16)..)
                        .unwrap_or(signer)
                )
            }
            Trust::Unsigned { reason } => format!("UNSIGNED ({reason})"),
            Trust::Unrecorded => "-".into(),
        }
    }
}

/// How an image entered the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `vnode images pull` from the catalog.
    Pulled,
    /// `vnode images import`.
    Imported,
    /// `vnode images derive`.
    Derived,
}

impl ImageMeta {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metadata serializes") + "\n"
    }

    pub fn from_json(text: &str) -> Result<ImageMeta, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Now, as RFC 3339 UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_missing_optional_fields() {
        let meta = ImageMeta {
            name: "fedora-43".into(),
            origin: Origin::Pulled,
            source: "https://example.org/f.qcow2".into(),
            version: Some("43".into()),
            algo: DigestAlgo::Sha256,
            digest: "ab".repeat(32),
            size: 10,
            virtual_size: 1 << 30,
            created: now(),
            osinfo: Some("fedora43".into()),
            parent: None,
            trust: Trust::Signed {
                signer: "C6E7F081CF80E13146676E88829B606631645531".into(),
                checksums: "https://example.org/CHECKSUM".into(),
            },
        };
        assert_eq!(ImageMeta::from_json(&meta.to_json()).unwrap(), meta);
        let minimal = r#"{"name":"x","origin":"imported","source":"/x","algo":"sha256",
            "digest":"00","size":1,"virtual_size":2,"created":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(ImageMeta::from_json(minimal).unwrap().osinfo, None);
        assert_eq!(
            ImageMeta::from_json(minimal).unwrap().trust,
            Trust::Unrecorded
        );
        assert_eq!(now().len(), "2026-01-01T00:00:00Z".len());
    }
}
