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
    Invalid {
        path: PathBuf,
        #[source]
        reason: HeaderProblem,
    },
}

/// What is wrong with a qcow2 header.
#[derive(Debug, thiserror::Error)]
pub enum HeaderProblem {
    #[error("no qcow2 signature (the file is not a qcow2 image, or it is truncated)")]
    NoSignature,
    #[error("bad qcow2 header: {0:?}")]
    Bad(#[source] qcow2_rs::error::Qcow2Error),
    #[error("the image is encrypted")]
    Encrypted,
    /// A download whose first bytes are something else (an HTML page, say), shown escaped.
    #[error("it starts with \"{0}\"")]
    StartsWith(String),
}

/// The header, its extensions and the backing file name sit in the image's first cluster
/// (512 B to 2 MiB; real images use 64 KiB). Read that cluster and no more: reading a fixed 2 MiB
/// read 2 MiB of disk data into memory for every node at once (the 31-node batch peaked at
/// 72 MiB of vnode's RSS, most of it these buffers).
const FIRST_READ: usize = 64 << 10;
const MAX_CLUSTER_BITS: u32 = 21;

/// Reads and checks the header of the qcow2 file at `path`.
pub fn inspect(path: &Path) -> Result<Qcow2Info, Qcow2Error> {
    let io = |source| Qcow2Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut buf = Vec::with_capacity(FIRST_READ);
    (&mut file)
        .take(FIRST_READ as u64)
        .read_to_end(&mut buf)
        .map_err(io)?;
    // The cluster size (bytes 20..24, big-endian log2): a larger first cluster is read whole.
    if buf.len() == FIRST_READ && buf.starts_with(&[b'Q', b'F', b'I', 0xfb]) {
        let bits = u32::from_be_bytes(buf[20..24].try_into().expect("4 bytes"));
        if bits <= MAX_CLUSTER_BITS && (1usize << bits) > FIRST_READ {
            let rest = (1u64 << bits) - FIRST_READ as u64;
            file.take(rest).read_to_end(&mut buf).map_err(io)?;
        }
    }
    inspect_bytes(&buf).map_err(|reason| Qcow2Error::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Checks a header held in memory (the start of a file).
pub fn inspect_bytes(buf: &[u8]) -> Result<Qcow2Info, HeaderProblem> {
    // qcow2-rs slices the fixed header without checking the length first.
    if buf.len() < 104 || buf[..4] != [b'Q', b'F', b'I', 0xfb] {
        return Err(HeaderProblem::NoSignature);
    }
    let header = Qcow2Header::from_buf(buf).map_err(HeaderProblem::Bad)?;
    if header.crypt_method() != 0 {
        return Err(HeaderProblem::Encrypted);
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
    fn reads_the_backing_name_of_large_and_small_clusters() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let status = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1G")
            .status()
            .expect("qemu-img is needed for this test (Debian package qemu-utils)");
        assert!(status.success());
        for cluster in ["512", "2M"] {
            let ovl = dir.path().join(format!("ovl-{cluster}.qcow2"));
            let status = Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(&base)
                .args(["-o", &format!("cluster_size={cluster}")])
                .arg(&ovl)
                .arg("3G")
                .status()
                .unwrap();
            assert!(status.success());
            let info = inspect(&ovl).unwrap();
            assert_eq!(info.virtual_size, 3 << 30, "{cluster}");
            assert_eq!(info.backing_file.as_deref(), base.to_str(), "{cluster}");
            assert_eq!(info.backing_format.as_deref(), Some("qcow2"), "{cluster}");
        }
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
