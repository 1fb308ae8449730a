//! Reading qcow2 headers (through the qcow2-rs crate): is a file a qcow2 image, how large is its
//! virtual disk, and does it have a backing file. Used to validate downloaded and imported base
//! images and to size overlays.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use qcow2_rs::meta::Qcow2Header;
use serde::Serialize;

/// What vnode needs to know about a qcow2 file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Qcow2Info {
    pub version: u32,
    pub virtual_size: u64,
    pub cluster_bits: u32,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a usable qcow2 image: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The header cluster is at most 2 MiB; the fixed header, its extensions and the backing file name
/// sit in the first cluster, and real images use 64 KiB clusters. Read up to this much.
const HEADER_READ: usize = 2 << 20;

/// Reads and checks the header of the qcow2 file at `path`.
pub fn inspect(path: &Path) -> Result<Qcow2Info, Qcow2Error> {
    let io = |source| Qcow2Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::with_capacity(64 << 10);
    File::open(path)
        .map_err(io)?
        .take(HEADER_READ as u64)
        .read_to_end(&mut buf)
        .map_err(io)?;
    inspect_bytes(&buf).map_err(|reason| Qcow2Error::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Checks a header held in memory (the start of a file).
pub fn inspect_bytes(buf: &[u8]) -> Result<Qcow2Info, String> {
    // qcow2-rs slices the fixed header without checking the length first.
    if buf.len() < 104 || buf[..4] != [b'Q', b'F', b'I', 0xfb] {
        return Err(
            "no qcow2 signature (the file is not a qcow2 image, or it is truncated)".into(),
        );
    }
    let header = Qcow2Header::from_buf(buf).map_err(|e| format!("bad qcow2 header: {e:?}"))?;
    if header.crypt_method() != 0 {
        return Err("the image is encrypted".into());
    }
    Ok(Qcow2Info {
        version: header.version(),
        virtual_size: header.size(),
        cluster_bits: header.cluster_bits(),
        backing_file: header.backing_filename().cloned(),
        backing_format: header.backing_format().cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reads_what_qemu_img_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let ovl = dir.path().join("ovl.qcow2");
        let ok = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1G")
            .status();
        let Ok(status) = ok else {
            panic!("qemu-img is needed for this test (Debian package qemu-utils)");
        };
        assert!(status.success());
        let info = inspect(&base).unwrap();
        assert_eq!(
            (info.virtual_size, info.backing_file.as_deref()),
            (1 << 30, None)
        );
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&base)
            .arg(&ovl)
            .arg("2G")
            .status()
            .unwrap();
        assert!(status.success());
        let info = inspect(&ovl).unwrap();
        assert_eq!(info.virtual_size, 2 << 30);
        assert_eq!(info.backing_file.as_deref(), base.to_str());
        assert_eq!(info.backing_format.as_deref(), Some("qcow2"));
    }

    #[test]
    fn refuses_other_files() {
        assert!(inspect_bytes(b"").is_err());
        assert!(inspect_bytes(&[0u8; 4096]).is_err());
        let mut truncated = vec![b'Q', b'F', b'I', 0xfb];
        truncated.extend([0u8; 50]);
        assert!(inspect_bytes(&truncated).is_err());
    }
}
