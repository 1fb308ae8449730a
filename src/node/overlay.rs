//! The node's disk: a qcow2 overlay (linked clone) on the cached base image, written in Rust.
//!
//! qcow2-rs's `Qcow2Header::format_qcow2` lays out an empty image (header cluster, refcount
//! table, one refcount block, L1 table) that `qemu-img check` accepts, but it has no setter for a
//! backing file. vnode adds that to the header cluster itself, per the qcow2 specification
//! (docs/interop/qcow2.txt in qemu):
//! - header extensions start right after the header (`header_length`), each as a big-endian
//!   `u32 type`, `u32 length` and its data padded to 8 bytes, closed by an end marker (type 0);
//! - the backing-format extension (type `0xE2792ACA`) holds `qcow2`, so qemu never probes the
//!   base's format (qemu-img refuses `-b` without `-F` for that reason);
//! - the backing file name follows the extensions; its offset and length go into header bytes
//!   8..16 (`backing_file_offset`) and 16..20 (`backing_file_size`). It must stay in the first
//!   cluster and be at most 1023 bytes.

use std::io::{self, Write};
use std::path::Path;

use qcow2_rs::meta::Qcow2Header;

use super::fsutil;

/// 64 KiB clusters and 16-bit refcounts, as `qemu-img create` uses.
const CLUSTER_BITS: usize = 16;
const REFCOUNT_ORDER: u8 = 4;
const BLOCK_SIZE: usize = 512;

const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_END: u32 = 0;
const MAX_BACKING_NAME: usize = 1023;

/// Writes a new qcow2 image at `path` (mode 0600, must not exist) of `size` bytes whose backing
/// file is `backing`, an absolute path to a qcow2 image.
pub fn create(path: &Path, backing: &Path, size: u64) -> io::Result<()> {
    let image = build(backing, size)?;
    let mut file = fsutil::create_new(path, 0o600)?;
    // The tail of the image (the rest of the L1 table) is zeros: leave it sparse.
    let used = image.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    file.write_all(&image[..used])?;
    file.set_len(image.len() as u64)
}

/// The image's bytes, up to the end of its L1 table.
pub fn build(backing: &Path, size: u64) -> io::Result<Vec<u8>> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    if !backing.is_absolute() {
        return Err(invalid(format!(
            "backing file {} is not an absolute path",
            backing.display()
        )));
    }
    let name = backing
        .to_str()
        .ok_or_else(|| invalid(format!("backing file {} is not UTF-8", backing.display())))?;
    if name.len() > MAX_BACKING_NAME {
        return Err(invalid(format!(
            "backing file path is {} bytes long; qcow2 allows {MAX_BACKING_NAME}",
            name.len()
        )));
    }
    if size == 0 || !size.is_multiple_of(BLOCK_SIZE as u64) {
        return Err(invalid(format!(
            "disk size {size} is not a positive multiple of {BLOCK_SIZE}"
        )));
    }
    let (_, _, l1) =
        Qcow2Header::calculate_meta_params(size, CLUSTER_BITS, REFCOUNT_ORDER, BLOCK_SIZE);
    let len = l1.0 as usize + ((l1.1 as usize).max(1) << CLUSTER_BITS);
    let mut image = vec![0u8; len];
    Qcow2Header::format_qcow2(&mut image, size, CLUSTER_BITS, REFCOUNT_ORDER, BLOCK_SIZE)
        .map_err(|e| io::Error::other(format!("qcow2-rs could not format the image: {e:?}")))?;
    add_backing_file(&mut image, name)?;
    // Read the header back with qcow2-rs: what qemu will parse must say what was meant.
    let info = crate::images::qcow2::inspect_bytes(&image).map_err(io::Error::other)?;
    if info.backing_file.as_deref() != Some(name)
        || info.backing_format.as_deref() != Some("qcow2")
        || info.virtual_size != size
    {
        return Err(io::Error::other(format!(
            "the written qcow2 header reads back wrong: {info:?}"
        )));
    }
    Ok(image)
}

fn be32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Appends the backing-format extension, the end marker and the backing file name to the
/// header of a freshly formatted image that has no extensions yet.
fn add_backing_file(image: &mut [u8], name: &str) -> io::Result<()> {
    let header_length = u32::from_be_bytes(image[100..104].try_into().unwrap()) as usize;
    let mut at = header_length;
    let format = b"qcow2";
    be32(image, at, EXT_BACKING_FORMAT);
    be32(image, at + 4, format.len() as u32);
    image[at + 8..at + 8 + format.len()].copy_from_slice(format);
    at += 8 + format.len().next_multiple_of(8);
    be32(image, at, EXT_END);
    be32(image, at + 4, 0);
    at += 8;
    let end = at + name.len();
    if end > 1 << CLUSTER_BITS {
        return Err(io::Error::other(
            "the backing file name does not fit the header cluster",
        ));
    }
    image[at..end].copy_from_slice(name.as_bytes());
    image[8..16].copy_from_slice(&(at as u64).to_be_bytes());
    be32(image, 16, name.len() as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str], path: &Path) -> std::process::Output {
        Command::new("qemu-img")
            .args(args)
            .arg(path)
            .output()
            .expect("qemu-img is needed for this test (Debian package qemu-utils)")
    }

    #[test]
    fn qemu_img_accepts_the_overlay_and_sees_its_backing_file() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.qcow2");
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1G")
            .output()
            .unwrap();
        assert!(out.status.success());
        let ovl = d.path().join("disk.qcow2");
        create(&ovl, &base, 3 << 30).unwrap();
        let check = qemu_img(&["check"], &ovl);
        assert!(
            check.status.success(),
            "qemu-img check: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let info = qemu_img(&["info", "--output=json"], &ovl);
        assert!(info.status.success());
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(v["format"], "qcow2");
        assert_eq!(v["virtual-size"], 3u64 << 30);
        assert_eq!(v["backing-filename"], base.to_str().unwrap());
        assert_eq!(v["full-backing-filename"], base.to_str().unwrap());
        assert_eq!(v["backing-filename-format"], "qcow2");
        assert_eq!(v["cluster-size"], 65536);
    }

    #[test]
    fn refuses_relative_backing_files_and_odd_sizes() {
        assert!(build(Path::new("base.qcow2"), 1 << 30).is_err());
        assert!(build(Path::new("/b.qcow2"), 1000).is_err());
        assert!(build(Path::new("/b.qcow2"), 0).is_err());
        let long = format!("/{}", "x".repeat(1100));
        assert!(build(Path::new(&long), 1 << 30).is_err());
    }

    #[test]
    fn large_disks_get_a_larger_l1_table() {
        // 1 TiB: 2048 L1 entries (16 KiB) fit in one cluster; the image stays small.
        let image = build(Path::new("/b.qcow2"), 1 << 40).unwrap();
        assert_eq!(image.len(), 4 << 16);
        let info = crate::images::qcow2::inspect_bytes(&image).unwrap();
        assert_eq!(info.virtual_size, 1 << 40);
    }
}
