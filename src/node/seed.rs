//! The NoCloud seed: an ISO 9660 image labelled `cidata` holding `meta-data`, `user-data` and
//! `network-config`, written in Rust with hadris-iso (no cloud-localds, genisoimage or xorriso).
//!
//! The image has Rock Ridge and Joliet names, so Linux sees `meta-data` rather than the plain
//! ISO 9660 name `META_DATA;1`. It is written with mode 0600 because `user-data` carries the
//! node's private host key; see [`super`] for how the qemu user gets to read it.

use std::io::{self, Cursor, Write};
use std::path::Path;
use std::sync::Arc;

use hadris_iso::joliet::JolietLevel;
use hadris_iso::read::PathSeparator;
use hadris_iso::rrip::RripOptions;
use hadris_iso::write::options::{BaseIsoLevel, CreationFeatures, IsoFormatOptions};
use hadris_iso::write::{File as IsoFile, InputFiles, IsoImageWriter};

use super::fsutil;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const LABEL: &str = "cidata";

/// The ISO image holding `files` (name, contents), in memory.
pub fn build(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let input = InputFiles {
        path_separator: PathSeparator::ForwardSlash,
        files: files
            .iter()
            .map(|(name, contents)| IsoFile::File {
                name: Arc::new(name.to_string()),
                contents: contents.to_vec(),
            })
            .collect(),
    };
    let options = IsoFormatOptions {
        volume_name: LABEL.into(),
        system_id: None,
        volume_set_id: None,
        publisher_id: None,
        preparer_id: None,
        application_id: Some("vnode".into()),
        sector_size: 2048,
        path_separator: PathSeparator::ForwardSlash,
        features: CreationFeatures {
            filenames: BaseIsoLevel::Level2 {
                supports_lowercase: true,
                supports_rrip: true,
            },
            joliet: Some(JolietLevel::Level3),
            rock_ridge: Some(RripOptions::default()),
            ..CreationFeatures::default()
        },
        strict_charset: false,
    };
    let out = IsoImageWriter::create(Cursor::new(Vec::with_capacity(64 << 10)), input, options)
        .map_err(|e| io::Error::other(format!("hadris-iso could not write the seed: {e:?}")))?;
    Ok(out.into_inner())
}

/// Writes the seed ISO to `path` (mode 0600; the file must not exist).
pub fn write(path: &Path, files: &[(&str, &[u8])]) -> io::Result<()> {
    let image = build(files)?;
    fsutil::create_new(path, 0o600)?.write_all(&image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run(program: &str, args: &[&str], path: &Path) -> String {
        let out = Command::new(program)
            .args(args)
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn isoinfo_and_blkid_see_label_and_files() {
        let d = tempfile::tempdir().unwrap();
        let iso = d.path().join("seed.iso");
        let user_data = b"#cloud-config\n{\"hostname\": \"vnode03\"}\n";
        write(
            &iso,
            &[
                ("meta-data", b"{}\n"),
                ("user-data", user_data),
                ("network-config", b"{\"version\": 2}\n"),
            ],
        )
        .unwrap();
        let info = run("isoinfo", &["-d", "-i"], &iso);
        assert!(info.contains("Volume id: cidata"), "{info}");
        assert!(info.contains("Rock Ridge signatures"), "{info}");
        assert!(info.contains("Joliet"), "{info}");
        let blkid = run("blkid", &["-o", "export"], &iso);
        assert!(blkid.contains("LABEL=cidata"), "{blkid}");
        assert!(blkid.contains("TYPE=iso9660"), "{blkid}");
        let listing = run("isoinfo", &["-R", "-f", "-i"], &iso);
        let mut names: Vec<&str> = listing.lines().collect();
        names.sort();
        assert_eq!(names, ["/meta-data", "/network-config", "/user-data"]);
        let back = Command::new("isoinfo")
            .args(["-R", "-x", "/user-data", "-i"])
            .arg(&iso)
            .output()
            .unwrap();
        assert_eq!(back.stdout, user_data);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&iso).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
