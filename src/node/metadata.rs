//! `node.json` in a node's directory: what the node was made from, for `vnode list`, `destroy`
//! and people reading the state directory.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::plan::mac::Mac;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMetadata {
    pub name: String,
    pub pool: String,
    pub number: u32,
    pub image: String,
    /// The base image the overlay is backed by, and its digest.
    pub base: PathBuf,
    pub base_digest: String,
    pub public_mac: Mac,
    pub private_mac: Mac,
    pub instance_id: String,
    /// `ssh-ed25519 AAAA...`
    pub host_key: String,
    /// The osinfo id given to virt-install.
    pub osinfo: String,
    pub disk_gib: u32,
    /// UTC, RFC 3339 (`2026-11-25T04:30:00Z`).
    pub created: String,
    pub created_unix: u64,
    /// The `[[hosts]]` entry the node runs on; absent: this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl NodeMetadata {
    /// Reads `node.json` of the node whose directory is `dir`.
    pub fn load(dir: &Path) -> std::io::Result<NodeMetadata> {
        let text = std::fs::read(dir.join(super::files::METADATA))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}

/// Now, as seconds since the epoch and as RFC 3339 UTC.
pub fn now() -> (u64, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs, rfc3339(secs))
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ` (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
