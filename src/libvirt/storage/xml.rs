//! The XML vnode gives libvirt's storage driver: a directory pool and its volumes (a base image,
//! its marker, an overlay, an uploaded file), as typed structs rendered with every text and
//! attribute escaped.

use std::fmt::Write;
use std::path::Path;

/// A directory pool (`virsh pool-define`): libvirt makes the directory on `pool-build`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolXml<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    /// The directory's mode: 0755 lets qemu (libvirt-qemu) reach the volumes in it.
    pub mode: u32,
}

impl PoolXml<'_> {
    pub fn render(&self) -> String {
        let mut x = String::new();
        x.push_str("<pool type='dir'>\n");
        element(&mut x, 1, "name", self.name);
        x.push_str("  <target>\n");
        element(&mut x, 2, "path", &self.path.to_string_lossy());
        permissions(&mut x, 2, self.mode);
        x.push_str("  </target>\n</pool>\n");
        x
    }
}

/// The format libvirt writes (and qemu reads) a volume in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// A volume to create (`virsh vol-create`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeXml<'a> {
    pub name: &'a str,
    /// Bytes; the guest's disk size for an overlay.
    pub capacity: u64,
    pub format: Format,
    pub mode: u32,
    /// A qcow2 image on the host this volume is an overlay of.
    pub backing: Option<&'a Path>,
}

impl<'a> VolumeXml<'a> {
    /// An empty raw file, for content that `vol-upload` writes afterwards (a base image, a seed).
    pub fn upload_target(name: &'a str, mode: u32) -> VolumeXml<'a> {
        VolumeXml {
            name,
            capacity: 0,
            format: Format::Raw,
            mode,
            backing: None,
        }
    }

    /// A qcow2 overlay of `backing` (qemu-img create -b backing -F qcow2, run by libvirt).
    pub fn overlay(name: &'a str, capacity: u64, backing: &'a Path) -> VolumeXml<'a> {
        VolumeXml {
            name,
            capacity,
            format: Format::Qcow2,
            mode: 0o600,
            backing: Some(backing),
        }
    }

    pub fn render(&self) -> String {
        let mut x = String::new();
        x.push_str("<volume>\n");
        element(&mut x, 1, "name", self.name);
        element_unit(&mut x, "capacity", self.capacity);
        // Without an allocation libvirt allocates the whole capacity of a raw volume (it writes
        // zeros); 0 keeps the file sparse, and is ignored for qcow2.
        element_unit(&mut x, "allocation", 0);
        x.push_str("  <target>\n");
        format(&mut x, 2, self.format);
        permissions(&mut x, 2, self.mode);
        x.push_str("  </target>\n");
        if let Some(backing) = self.backing {
            x.push_str("  <backingStore>\n");
            element(&mut x, 2, "path", &backing.to_string_lossy());
            format(&mut x, 2, Format::Qcow2);
            x.push_str("  </backingStore>\n");
        }
        x.push_str("</volume>\n");
        x
    }
}

fn indent(x: &mut String, level: usize) {
    x.extend(std::iter::repeat_n("  ", level));
}

fn element(x: &mut String, level: usize, tag: &str, text: &str) {
    indent(x, level);
    let _ = writeln!(x, "<{tag}>{}</{tag}>", escape(text));
}

fn element_unit(x: &mut String, tag: &str, bytes: u64) {
    let _ = writeln!(x, "  <{tag} unit='bytes'>{bytes}</{tag}>");
}

fn format(x: &mut String, level: usize, format: Format) {
    indent(x, level);
    let _ = writeln!(x, "<format type='{}'/>", format.as_str());
}

fn permissions(x: &mut String, level: usize, mode: u32) {
    indent(x, level);
    x.push_str("<permissions>\n");
    indent(x, level + 1);
    let _ = writeln!(x, "<mode>{mode:04o}</mode>");
    indent(x, level);
    x.push_str("</permissions>\n");
}

/// Text and attribute values: the five characters XML gives a meaning.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_a_directory_qemu_can_enter() {
        let xml = PoolXml {
            name: "vnode",
            path: Path::new("/var/lib/libvirt/vnode"),
            mode: 0o755,
        }
        .render();
        assert_eq!(
            xml,
            "<pool type='dir'>\n  <name>vnode</name>\n  <target>\n    \
             <path>/var/lib/libvirt/vnode</path>\n    <permissions>\n      <mode>0755</mode>\n    \
             </permissions>\n  </target>\n</pool>\n"
        );
    }

    #[test]
    fn paths_are_escaped() {
        let xml = PoolXml {
            name: "p",
            path: Path::new("/srv/a&b <c> 'd' \"e\""),
            mode: 0o755,
        }
        .render();
        assert!(
            xml.contains("<path>/srv/a&amp;b &lt;c&gt; &apos;d&apos; &quot;e&quot;</path>"),
            "{xml}"
        );
        let xml = VolumeXml::overlay("n", 1 << 30, Path::new("/p/&x")).render();
        assert!(xml.contains("<path>/p/&amp;x</path>"), "{xml}");
    }

    #[test]
    fn an_upload_target_is_an_empty_sparse_raw_file() {
        let xml = VolumeXml::upload_target("base-ab.qcow2", 0o644).render();
        assert_eq!(
            xml,
            "<volume>\n  <name>base-ab.qcow2</name>\n  <capacity unit='bytes'>0</capacity>\n  \
             <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='raw'/>\n    \
             <permissions>\n      <mode>0644</mode>\n    </permissions>\n  </target>\n</volume>\n"
        );
    }

    #[test]
    fn an_overlay_names_its_backing_file_and_format() {
        let xml = VolumeXml::overlay("vnode03.qcow2", 10 << 30, Path::new("/pool/base-ab.qcow2"))
            .render();
        assert_eq!(
            xml,
            "<volume>\n  <name>vnode03.qcow2</name>\n  <capacity unit='bytes'>10737418240</capacity>\n  \
             <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='qcow2'/>\n    \
             <permissions>\n      <mode>0600</mode>\n    </permissions>\n  </target>\n  \
             <backingStore>\n    <path>/pool/base-ab.qcow2</path>\n    <format type='qcow2'/>\n  \
             </backingStore>\n</volume>\n"
        );
    }
}
