//! What virsh prints about pools and volumes (with `-q` and `LC_ALL=C`, as [`Virsh`] runs it),
//! and which of its error messages mean "not there" or "already there".
//!
//! [`Virsh`]: crate::libvirt::virsh::Virsh

use std::path::PathBuf;

use super::Volume;

/// `virsh pool-info POOL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    /// "running", "inactive", "building", "degraded", "inaccessible".
    pub state: String,
    pub persistent: bool,
    pub autostart: bool,
}

/// `virsh pool-info`: `Key:   value` lines.
pub fn pool_info(text: &str) -> Option<PoolInfo> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    Some(PoolInfo {
        state: field("State")?,
        persistent: field("Persistent")? == "yes",
        autostart: field("Autostart")? == "yes",
    })
}

/// What `virsh pool-dumpxml` says of the pool's type and directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDump {
    /// `dir`, `fs`, `netfs`, `logical`, ...
    pub kind: String,
    pub target: PathBuf,
}

/// `virsh pool-dumpxml POOL`: `<pool type='KIND'>` and `<target><path>PATH</path>`. libvirt
/// writes this XML itself in one layout, so two anchored lookups read it; the target's path is
/// the first `<path>` after `<target>` (a `<source>` names its paths in attributes).
pub fn pool_dump(xml: &str) -> Option<PoolDump> {
    let open = &xml[xml.find("<pool ")?..];
    let open = &open[..open.find('>')?];
    let kind = attribute(open, "type")?;
    let target = &xml[xml.find("<target>")?..];
    let target = &target[..target.find("</target>")?];
    let path = &target[target.find("<path>")? + "<path>".len()..];
    let path = &path[..path.find("</path>")?];
    Some(PoolDump {
        kind: unescape(&kind)?,
        target: PathBuf::from(unescape(path.trim())?),
    })
}

/// `name='value'` or `name="value"` in a start tag, still escaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}="))? + name.len() + 2;
    // Only `'` or `"` opens a value: anything else is not libvirt's XML (and may be more than
    // one byte long).
    let quote = tag[at..]
        .chars()
        .next()
        .filter(|q| matches!(q, '\'' | '"'))?;
    let rest = &tag[at + 1..];
    Some(rest[..rest.find(quote)?].to_string())
}

/// XML's five entities and character references; None for anything else after a `&`.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = match entity.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `virsh vol-info --bytes VOL` (with `--physical`, the last line says `Physical:` instead of
/// `Allocation:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolInfo {
    pub capacity: u64,
    pub allocation: Option<u64>,
    pub physical: Option<u64>,
}

pub fn vol_info(text: &str) -> Option<VolInfo> {
    let bytes = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if k.trim() != key {
                return None;
            }
            v.trim().strip_suffix("bytes")?.trim().parse().ok()
        })
    };
    Some(VolInfo {
        capacity: bytes("Capacity")?,
        allocation: bytes("Allocation"),
        physical: bytes("Physical"),
    })
}

/// `virsh -q vol-list --details POOL`: ` NAME   PATH   TYPE   CAPACITY UNIT   ALLOCATION UNIT`,
/// columns padded with spaces. Names and paths may hold spaces; in a directory pool a name
/// holds no `/` and the path starts with one, so the path begins at the line's first `/`, and
/// the last five words are the type and the two sizes. Sizes are as virsh rounds them (two
/// decimals of the unit). Lines that do not fit are left out.
pub fn vol_list_details(text: &str) -> Vec<Volume> {
    text.lines().filter_map(vol_list_line).collect()
}

fn vol_list_line(line: &str) -> Option<Volume> {
    let slash = line.find('/')?;
    let name = line[..slash].trim();
    let rest = &line[slash..];
    // The last five words, from the right; what is left of them is the path.
    let mut end = rest.len();
    let mut words = Vec::with_capacity(5);
    for _ in 0..5 {
        let head = rest[..end].trim_end();
        let start = head.rfind(' ').map_or(0, |i| i + 1);
        words.push(&head[start..]);
        end = start;
    }
    let path = rest[..end].trim_end();
    let (alloc_unit, alloc, cap_unit, cap, _kind) =
        (words[0], words[1], words[2], words[3], words[4]);
    if name.is_empty() || path.is_empty() {
        return None;
    }
    Some(Volume {
        name: name.to_string(),
        path: PathBuf::from(path),
        capacity: scaled(cap, cap_unit)?,
        allocation: scaled(alloc, alloc_unit)?,
    })
}

/// `64.00 MiB` as virsh prints sizes (vshPrettyCapacity): bytes, rounded to the nearest.
pub fn scaled(number: &str, unit: &str) -> Option<u64> {
    let shift = match unit {
        "B" | "bytes" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        "PiB" => 50,
        "EiB" => 60,
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * (1u64 << shift) as f64).round() as u64)
}

/// libvirt's "no storage pool with matching name" (VIR_ERR_NO_STORAGE_POOL).
pub fn is_no_pool(message: &str) -> bool {
    message.contains("Storage pool not found") || message.contains("no storage pool with matching")
}

/// libvirt's "no storage vol with matching name/key/path" (VIR_ERR_NO_STORAGE_VOL).
pub fn is_no_volume(message: &str) -> bool {
    message.contains("Storage volume not found") || message.contains("no storage vol with matching")
}

/// A volume of that name exists (`storage volume 'X' exists already`, VIR_ERR_STORAGE_VOL_EXIST),
/// or a file of that name is in the pool's directory without libvirt knowing it yet (`volume
/// target path '...' already exists`).
pub fn is_volume_exists(message: &str) -> bool {
    message.contains("exists already") || is_unlisted_file(message)
}

/// The file is there, the pool has not been refreshed since it appeared.
pub fn is_unlisted_file(message: &str) -> bool {
    message.contains("target path") && message.contains("already exists")
}

/// `pool-start` / `pool-build` of a running pool.
/// `pool-destroy` of a pool that is not running.
pub fn is_not_active(message: &str) -> bool {
    message.contains("is not active")
}

pub fn is_already_active(message: &str) -> bool {
    message.contains("is already active")
}

/// `pool-define` of a pool another process has just defined.
pub fn is_pool_exists(message: &str) -> bool {
    message.contains("already exists") || message.contains("is already defined")
}

/// `pool-define` of a directory that another pool has: `Storage source conflict with pool:
/// 'NAME'`; that pool's name.
pub fn conflicting_pool(message: &str) -> Option<&str> {
    let rest = &message[message.find("conflict with pool: '")? + "conflict with pool: '".len()..];
    Some(&rest[..rest.find('\'')?])
}

/// libvirt refuses to refresh a pool while a volume of it is being built or opened for a stream.
pub fn is_pool_busy(message: &str) -> bool {
    message.contains("asynchronous jobs running")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_info_fields() {
        let text = "Name:           vnode\nUUID:           5e63\nState:          running\n\
                    Persistent:     yes\nAutostart:      no\nCapacity:       251.97 GiB\n";
        assert_eq!(
            pool_info(text),
            Some(PoolInfo {
                state: "running".into(),
                persistent: true,
                autostart: false
            })
        );
        assert_eq!(pool_info("Name: x\n"), None);
    }

    #[test]
    fn pool_dump_type_and_target_path() {
        let xml = "<pool type='dir'>\n  <name>explore</name>\n  <uuid>5e63</uuid>\n  \
                   <capacity unit='bytes'>270553174016</capacity>\n  <source>\n  </source>\n  \
                   <target>\n    <path>/var/lib/libvirt/a &amp; b</path>\n    <permissions>\n      \
                   <mode>0755</mode>\n    </permissions>\n  </target>\n</pool>\n";
        assert_eq!(
            pool_dump(xml),
            Some(PoolDump {
                kind: "dir".into(),
                target: "/var/lib/libvirt/a & b".into()
            })
        );
        let netfs = "<pool type=\"netfs\">\n <source>\n  <host name='nfs'/>\n  \
                     <dir path='/export/path'/>\n </source>\n <target>\n  <path>/mnt/x</path>\n \
                     </target>\n</pool>";
        let d = pool_dump(netfs).unwrap();
        assert_eq!((d.kind.as_str(), d.target), ("netfs", "/mnt/x".into()));
        assert_eq!(pool_dump("<pool type='dir'><name>x</name></pool>"), None);
    }

    #[test]
    fn unescapes_entities_and_refuses_unknown_ones() {
        assert_eq!(
            unescape("a&lt;b&gt;&apos;&quot;&amp;&#65;&#x42;").as_deref(),
            Some("a<b>'\"&AB")
        );
        assert_eq!(unescape("plain").as_deref(), Some("plain"));
        assert_eq!(unescape("&nbsp;"), None);
        assert_eq!(unescape("a & b"), None);
    }

    #[test]
    fn vol_info_in_bytes() {
        let text = "Name:           base-x\nType:           file\nCapacity:       67108864 bytes\n\
                    Allocation:     3411968 bytes\n";
        assert_eq!(
            vol_info(text),
            Some(VolInfo {
                capacity: 67108864,
                allocation: Some(3411968),
                physical: None
            })
        );
        let physical =
            "Name: x\nType: file\nCapacity:       0 bytes\nPhysical:       3473408 bytes\n";
        assert_eq!(vol_info(physical).unwrap().physical, Some(3473408));
        assert_eq!(vol_info("Capacity: 64.00 MiB\n"), None, "not --bytes");
    }

    #[test]
    fn vol_list_details_with_spaces_in_names() {
        let text = " base-x       /var/lib/libvirt/explore/base-x       file   64.00 MiB   3.25 MiB\n \
                    big          /var/lib/libvirt/explore/big          file   3.00 GiB    0.00 B\n \
                    empty file   /var/lib/libvirt/explore/empty file   file   0.00 B      0.00 B\n \
                    sub dir      /var/lib/libvirt/explore/sub dir      dir    0.00 B      0.00 B\n\n";
        let v = vol_list_details(text);
        assert_eq!(v.len(), 4);
        assert_eq!(
            v[0],
            Volume {
                name: "base-x".into(),
                path: "/var/lib/libvirt/explore/base-x".into(),
                capacity: 64 << 20,
                allocation: (3.25 * 1048576.0) as u64,
            }
        );
        assert_eq!(v[1].capacity, 3 << 30);
        assert_eq!(v[2].name, "empty file");
        assert_eq!(
            v[2].path,
            PathBuf::from("/var/lib/libvirt/explore/empty file")
        );
        assert_eq!(v[3].name, "sub dir");
        assert!(vol_list_details("garbage\n no path here 1 B 2 B\n").is_empty());
    }

    #[test]
    fn scaled_sizes() {
        assert_eq!(scaled("0.00", "B"), Some(0));
        assert_eq!(scaled("1.50", "KiB"), Some(1536));
        assert_eq!(scaled("2.00", "TiB"), Some(2 << 40));
        assert_eq!(scaled("1", "parsecs"), None);
        assert_eq!(scaled("-1", "B"), None);
    }

    #[test]
    fn error_messages() {
        assert!(is_no_pool(
            "failed to get pool 'nope' Storage pool not found: no storage pool with matching name 'nope'"
        ));
        assert!(is_no_volume(
            "failed to get vol 'nope' Storage volume not found: no storage vol with matching path 'nope'"
        ));
        assert!(is_volume_exists(
            "Failed to create vol from /tmp/x.xml storage volume 'base-x' exists already"
        ));
        let unlisted = "Failed to create vol from /tmp/x.xml Requested operation is not valid: \
                        volume target path '/var/lib/libvirt/explore/ghost' already exists";
        assert!(is_volume_exists(unlisted) && is_unlisted_file(unlisted));
        assert!(!is_unlisted_file("storage volume 'base-x' exists already"));
        assert!(is_already_active(
            "Failed to start pool explore Requested operation is not valid: storage pool 'explore' is already active"
        ));
        assert!(!is_no_volume("Failed to connect socket"));
        assert!(is_pool_exists(
            "Failed to define pool from /tmp/p.xml operation failed: pool 'explore' already exists with uuid 5e63"
        ));
        assert_eq!(
            conflicting_pool(
                "Failed to define pool from /tmp/p.xml operation failed: Storage source conflict with pool: 'explore'"
            ),
            Some("explore")
        );
        assert_eq!(conflicting_pool("pool 'x' already exists"), None);
    }

    mod hostile {
        use super::super::*;
        use proptest::prelude::*;

        // The other hostile answers are in tests/hostile_answers.rs.
        proptest! {
            #[test]
            fn a_multi_byte_quote_in_a_start_tag(c in any::<char>(), rest in ".{0,8}") {
                let xml = format!("<pool type={c}{rest}><target><path>/p</path></target></pool>");
                let _ = pool_dump(&xml);
            }
        }
    }
}
