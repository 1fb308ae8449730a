//! What `vnode host check` looks at, gathered from the running system in one place, so that the
//! verdicts ([`super::check`]) are pure functions of these facts.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, VirtType};
use crate::hosts::kvm_probe::KvmError;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::{Virsh, parse_net_info_active};
use crate::node::authorized_keys::KeysError;
use crate::process::unix;

#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkFacts {
    pub name: String,
    /// None: not defined.
    pub active: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BridgeFacts {
    pub name: String,
    pub exists: bool,
    pub up: bool,
    /// Member ports that are not guests' tap devices.
    pub uplinks: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PathFacts {
    pub path: PathBuf,
    pub exists: bool,
    /// The qemu user can reach and read it (None: no qemu user known).
    pub qemu_can_read: Option<bool>,
    pub free_bytes: Option<u64>,
}

#[derive(Debug)]
pub struct HostFacts {
    pub libvirt_uri: String,
    /// libvirt's `virsh version` answer, or its error.
    pub libvirt: Result<String, LibvirtError>,
    pub virt_install: Option<String>,
    pub qemu_img: Option<String>,
    pub networks: Vec<NetworkFacts>,
    pub bridges: Vec<BridgeFacts>,
    pub virt_type: VirtType,
    /// Why KVM cannot be used, or Ok.
    pub kvm: Result<(), KvmError>,
    pub qemu_user: Option<String>,
    pub cache: PathFacts,
    pub state: PathFacts,
    /// /proc/sys/net/bridge/bridge-nf-call-iptables: None when br_netfilter is not loaded.
    pub bridge_nf_call_iptables: Option<bool>,
    /// How many public keys nodes would authorize for root, or why there are none.
    pub ssh_keys: Result<usize, KeysError>,
}

fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or("").trim().to_string())
}

/// The account libvirt runs qemu as on this distribution, if it exists.
fn qemu_user() -> Option<(String, u32, Vec<u32>)> {
    for name in ["libvirt-qemu", "qemu"] {
        let Some(pw) = unix::user_by_name(name).ok().flatten() else {
            continue;
        };
        let mut groups = vec![pw.gid];
        groups.extend(supplementary_groups(name));
        return Some((name.to_string(), pw.uid, groups));
    }
    None
}

fn supplementary_groups(user: &str) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/etc/group") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 4 && f[3].split(',').any(|m| m == user))
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .collect()
}

/// Can (uid, gids) traverse every ancestor of `path` and read `path`?
pub fn readable_by(path: &Path, uid: u32, gids: &[u32]) -> bool {
    if uid == 0 {
        return true;
    }
    let allowed = |meta: &std::fs::Metadata, bit: u32| {
        let mode = meta.mode();
        if meta.uid() == uid {
            mode & (bit << 6) != 0
        } else if gids.contains(&meta.gid()) {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    };
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    ancestors
        .iter()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| allowed(&m, 0o1)))
        && std::fs::metadata(path).is_ok_and(|m| allowed(&m, if m.is_dir() { 0o5 } else { 0o4 }))
}

fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let c = CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string and st a valid out-pointer.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail * st.f_frsize)
}

fn path_facts(path: &Path, qemu: &Option<(String, u32, Vec<u32>)>) -> PathFacts {
    PathFacts {
        path: path.to_path_buf(),
        exists: path.exists(),
        qemu_can_read: qemu
            .as_ref()
            .map(|(_, uid, gids)| readable_by(path, *uid, gids)),
        free_bytes: free_bytes(path),
    }
}

fn bridge_facts(name: &str) -> BridgeFacts {
    let sys = Path::new("/sys/class/net").join(name);
    let exists = sys.join("bridge").exists();
    let up = std::fs::read_to_string(sys.join("operstate")).is_ok_and(|s| s.trim() == "up")
        || std::fs::read_to_string(sys.join("flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & 1 != 0);
    let uplinks = std::fs::read_dir(sys.join("brif"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
                .filter(|n| !n.starts_with("vnet") && !n.starts_with("tap"))
                .collect()
        })
        .unwrap_or_default();
    BridgeFacts {
        name: name.to_string(),
        exists,
        up,
        uplinks,
    }
}

/// A value of every pool (its network, its bridge), each once, in order.
fn distinct(config: &Config, of: impl Fn(&crate::plan::pool::Pool) -> &String) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> = config.pools.all().iter().map(of).collect();
    set.into_iter().cloned().collect()
}

/// Gathers the facts. Blocking: runs virsh, virt-install and the KVM probe.
pub fn gather(config: &Config) -> HostFacts {
    let qemu = qemu_user();
    let runner = Virsh::new(&config.libvirt_uri);
    let virsh =
        |args: &[&str]| runner.run_blocking(Command::new("virsh"), args, Duration::from_secs(30));
    let libvirt = virsh(&["version"]).map(|v| {
        v.lines()
            .filter(|l| l.contains("libvirt") || l.contains("hypervisor"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ")
    });
    let networks = distinct(config, |p| &p.network)
        .into_iter()
        .map(|name| {
            let active = match (&libvirt, virsh(&["net-info", &name])) {
                (Ok(_), Ok(info)) => Some(parse_net_info_active(&info)),
                _ => None,
            };
            NetworkFacts { name, active }
        })
        .collect();
    let bridges = distinct(config, |p| &p.bridge);
    HostFacts {
        libvirt_uri: config.libvirt_uri.clone(),
        libvirt,
        virt_install: tool_version("virt-install", &["--version"]),
        qemu_img: tool_version("qemu-img", &["--version"]),
        networks,
        bridges: bridges.iter().map(|b| bridge_facts(b)).collect(),
        virt_type: config.virt_type,
        kvm: crate::hosts::kvm_probe::kvm_usable(),
        qemu_user: qemu.as_ref().map(|q| q.0.clone()),
        cache: path_facts(&config.cache_dir, &qemu),
        state: path_facts(&config.state_dir, &qemu),
        bridge_nf_call_iptables: std::fs::read_to_string(
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
        )
        .ok()
        .map(|s| s.trim() == "1"),
        ssh_keys: crate::node::authorized_keys::resolve(&config.ssh_keys).map(|k| k.len()),
    }
}
