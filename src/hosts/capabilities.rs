//! What a host has, asked through libvirt: whether it answers, its libvirt and hypervisor
//! versions, the virt types it offers, CPUs, free memory, vnode's nodes on it and the base images
//! in its vnode storage pool. `vnode hosts` shows it; placement reads it.

use serde::Serialize;

use crate::hosts::hypervisor::Hypervisor;
use crate::libvirt::storage::base_volume_name;
use crate::plan::planned_node::NodeIdentity;
use crate::plan::pool::Pools;

/// One host as it answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostFacts {
    pub name: String,
    pub uri: String,
    /// `None` when it answered; else why not.
    pub unreachable: Option<String>,
    pub libvirt_version: Option<String>,
    pub hypervisor: Option<String>,
    /// `kvm`, `qemu`: the domain types its capabilities list for x86_64 guests.
    pub virt_types: Vec<String>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// Free memory including what the kernel would give back (page cache, buffers).
    pub free_mib: Option<u64>,
    /// vnode's nodes there (domains whose names belong to a pool).
    pub nodes: Vec<String>,
    /// Base images in its vnode storage pool, by digest (`None`: the pool could not be read).
    pub base_images: Option<Vec<String>>,
    pub max_nodes: Option<u32>,
}

impl HostFacts {
    pub fn reachable(&self) -> bool {
        self.unreachable.is_none()
    }
}

/// Asks `host` everything at once; a host that does not answer gets `unreachable` and nothing
/// else.
pub async fn gather(host: &Hypervisor, pools: &Pools) -> HostFacts {
    let virsh = host.virsh();
    let mut facts = HostFacts {
        name: host.name().to_string(),
        uri: host.uri().to_string(),
        unreachable: None,
        libvirt_version: None,
        hypervisor: None,
        virt_types: Vec::new(),
        cpus: None,
        memory_mib: None,
        free_mib: None,
        nodes: Vec::new(),
        base_images: None,
        max_nodes: host.host_config().and_then(|c| c.max_nodes),
    };
    let version = match virsh
        .run_within(
            &["version", "--daemon"],
            crate::libvirt::virsh::PING_TIMEOUT,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            facts.unreachable = Some(e.to_string());
            return facts;
        }
    };
    (facts.libvirt_version, facts.hypervisor) = parse_version(&version);
    let (info, mem, caps, names) = tokio::join!(
        virsh.run(&["nodeinfo"]),
        virsh.run(&["nodememstats"]),
        virsh.run(&["capabilities"]),
        virsh.domains(),
    );
    if let Ok(info) = info {
        (facts.cpus, facts.memory_mib) = parse_nodeinfo(&info);
    }
    facts.free_mib = mem.ok().and_then(|m| parse_free_mib(&m));
    facts.virt_types = caps.map(|c| parse_virt_types(&c)).unwrap_or_default();
    facts.nodes = names
        .unwrap_or_default()
        .into_iter()
        .filter(|n| NodeIdentity::of_name(pools, n).is_some())
        .collect();
    facts.nodes.sort();
    if let Some(storage) = host.storage() {
        facts.base_images = storage
            .volumes()
            .await
            .ok()
            .map(|vols| vols.iter().filter_map(|v| base_digest(&v.name)).collect());
    }
    facts
}

/// The digest of a base-image volume's name (the 64 hex digits [`base_volume_name`] put in it).
fn base_digest(volume: &str) -> Option<String> {
    let bytes = volume.as_bytes();
    (0..bytes.len().saturating_sub(63))
        .map(|i| &volume[i..i + 64])
        .find(|d| d.bytes().all(|b| b.is_ascii_hexdigit()) && base_volume_name(d) == volume)
        .map(String::from)
}

/// Every host at once, in the order given.
pub async fn gather_all(hosts: &[Hypervisor], pools: &Pools) -> Vec<HostFacts> {
    futures_util::future::join_all(hosts.iter().map(|h| gather(h, pools))).await
}

/// (libvirt daemon version, hypervisor) from `virsh version --daemon`.
pub fn parse_version(text: &str) -> (Option<String>, Option<String>) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    (
        field("Running against daemon:").or_else(|| field("Using library: libvirt")),
        field("Running hypervisor:"),
    )
}

/// (CPUs, memory in MiB) from `virsh nodeinfo`.
pub fn parse_nodeinfo(text: &str) -> (Option<u32>, Option<u64>) {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.split_whitespace().next().map(String::from))?
        })
    };
    (
        field("CPU(s)").and_then(|v| v.parse().ok()),
        field("Memory size")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib / 1024),
    )
}

/// Free + buffers + cached, in MiB, from `virsh nodememstats` (KiB).
pub fn parse_free_mib(text: &str) -> Option<u64> {
    let value = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.split_whitespace().next()?.parse().ok())?
        })
    };
    let free = value("free")?;
    Some((free + value("buffers").unwrap_or(0) + value("cached").unwrap_or(0)) / 1024)
}

/// The domain types of `virsh capabilities` (`<domain type='kvm'/>`), each once, sorted.
pub fn parse_virt_types(caps: &str) -> Vec<String> {
    let mut out: Vec<String> = caps
        .split("<domain type=")
        .skip(1)
        .filter_map(|rest| {
            // The attribute's quote, then its value up to the same quote. Anything else (a
            // hypervisor's answer is not trusted) names no type.
            let q = rest.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
            let rest = &rest[q.len_utf8()..];
            Some(rest[..rest.find(q)?].to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_type_that_is_not_quoted_names_nothing() {
        // Once a panic: slicing one byte into a character that takes two.
        assert_eq!(
            parse_virt_types("<domain type=\u{e9}kvm\u{e9}/>"),
            Vec::<String>::new()
        );
        assert_eq!(parse_virt_types("<domain type=kvm/>"), Vec::<String>::new());
        assert_eq!(
            parse_virt_types("<domain type='kvm'/><domain type=\"qemu\"/><domain type="),
            ["kvm", "qemu"]
        );
    }

    #[test]
    fn virsh_answers_are_read() {
        let version = "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n\
                       Using API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.0\nRunning against daemon: 9.0.0\n";
        assert_eq!(
            parse_version(version),
            (Some("9.0.0".into()), Some("QEMU 7.2.0".into()))
        );
        let info = "CPU model:           x86_64\nCPU(s):              2\nCPU frequency:       2095 MHz\n\
                    Memory size:         24609328 KiB\n";
        assert_eq!(parse_nodeinfo(info), (Some(2), Some(24032)));
        let mem = "total  :             24609328 KiB\nfree   :             20000000 KiB\n\
                   buffers:               100000 KiB\ncached :              1000000 KiB\n";
        assert_eq!(
            parse_free_mib(mem),
            Some((20_000_000 + 100_000 + 1_000_000) / 1024)
        );
        let caps = "<capabilities><guest><arch name='x86_64'><domain type='qemu'/>\
                    <domain type=\"kvm\"/></arch></guest><guest><domain type='qemu'/></guest></capabilities>";
        assert_eq!(parse_virt_types(caps), vec!["kvm", "qemu"]);
        assert_eq!(parse_nodeinfo("garbage"), (None, None));
        assert_eq!(parse_free_mib(""), None);
        let digest = "ab".repeat(32);
        assert_eq!(base_digest(&base_volume_name(&digest)), Some(digest));
        assert_eq!(base_digest("vnode03.qcow2"), None);
    }
}
