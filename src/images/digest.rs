//! Incremental sha256/sha512 over a stream of chunks, and over files.
//!
//! sha2 picks its SHA-NI code path at run time (cpufeatures), so sha256 runs at the speed of
//! `openssl dgst -sha256` on CPUs that have the extension; sha512 has no such instructions on
//! most x86 CPUs and uses sha2's AVX2 code.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256, Sha512};

use crate::images::catalog::DigestAlgo;

/// Large reads: fewer syscalls, and sha2 gets long runs of whole blocks.
pub const READ_BUF: usize = 4 << 20;

#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algo: DigestAlgo) -> Hasher {
        match algo {
            DigestAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgo::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest as lowercase hex.
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Hashes a whole file; `progress` gets the byte count of each read. Returns the hasher (to go on
/// hashing what is appended, for a resumed download) and the number of bytes read.
pub fn hash_file(
    path: &Path,
    algo: DigestAlgo,
    mut progress: impl FnMut(u64),
) -> io::Result<(Hasher, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::new(algo);
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok((hasher, total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        progress(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let mut h = Hasher::new(DigestAlgo::Sha256);
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Hasher::new(DigestAlgo::Sha512);
        h.update(b"abc");
        assert!(h.finish().starts_with("ddaf35a193617aba"));
    }

    #[test]
    fn files_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..READ_BUF + 12345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut seen = 0;
        let (h, n) = hash_file(&path, DigestAlgo::Sha256, |k| seen += k).unwrap();
        let mut direct = Hasher::new(DigestAlgo::Sha256);
        direct.update(&data);
        assert_eq!((n, seen), (data.len() as u64, data.len() as u64));
        assert_eq!(h.finish(), direct.finish());
    }
}
