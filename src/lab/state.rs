//! `state.json`: what `lab up` started and created, written after every step so that `lab down`
//! can undo exactly that, also after a crash halfway through `up`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::paths::LabDir;
use super::process::Proc;
use super::{LabError, LabName};
use crate::config::{DEFAULT_POOL_PATH, DEFAULT_STORAGE_POOL, HostConfig};
use crate::process::unix;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub name: LabName,
    pub dir: PathBuf,
    /// The site: the lab's own namespaces. Without hosts it is also the lab's hypervisor (its
    /// libvirtd and virtlogd); with hosts it runs no libvirt daemon. Flattened, so the fields
    /// are where they were before labs had hosts.
    #[serde(flatten)]
    pub site: Machine,
    /// The site DHCP/DNS on the public bridges.
    pub dnsmasq: Option<Proc>,
    /// The public subnets the lab serves, one per pool.
    pub public: Vec<PublicNet>,
    /// The lab's hypervisor hosts (`lab up --hosts N`); empty for a single-host lab, and in
    /// state files older than hosts.
    #[serde(default)]
    pub hosts: Vec<LabHost>,
    /// `up` ran to the end.
    pub complete: bool,
}

/// One machine of a lab: a network namespace, the process holding it and a private mount
/// namespace, and the libvirt daemons in them when the machine is a hypervisor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The `ip netns` name.
    pub netns: String,
    /// Its inode, to find the machine's processes even when the holder is gone.
    pub netns_inode: Option<u64>,
    /// The process that keeps the namespaces (sleeps in them); its namespaces are the machine.
    pub holder: Option<Proc>,
    pub virtlogd: Option<Proc>,
    pub libvirtd: Option<Proc>,
}

impl Machine {
    pub fn new(netns: String) -> Machine {
        Machine {
            netns,
            ..Machine::default()
        }
    }

    /// Where `ip netns add` put the namespace.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

/// One hypervisor host of a lab: a machine of its own with libvirtd and an sshd, on the site
/// LAN through a veth pair per public bridge, reached from the site as `uri`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabHost {
    /// `h1`, `h2`, ...: the name of its `[[hosts]]` entry in the lab.
    pub name: String,
    #[serde(flatten)]
    pub machine: Machine,
    pub sshd: Option<Proc>,
    /// Its address on the default pool's public bridge (where its sshd listens).
    pub address: Ipv4Addr,
    /// `qemu+ssh://root@ADDRESS/system`.
    pub uri: String,
    /// Its sshd's host key, `ssh-ed25519 AAAA...` (the site's known_hosts pins it).
    pub host_key: String,
}

/// Each of `hosts` lab hosts' share of this machine's `cpus` concurrent boots (at least 1).
pub fn lab_boot_share(cpus: usize, hosts: usize) -> u32 {
    (cpus / hosts.max(1)).max(1) as u32
}

impl LabHost {
    /// The host's processes by role, in the order they were started.
    pub fn processes(&self) -> Vec<(&'static str, Proc)> {
        let m = &self.machine;
        [
            ("holder", m.holder),
            ("virtlogd", m.virtlogd),
            ("libvirtd", m.libvirtd),
            ("sshd", self.sshd),
        ]
        .into_iter()
        .filter_map(|(role, p)| Some((role, p?)))
        .collect()
    }

    /// The host as vnode's config names it (what `[[hosts]]` would say for it), booting at most
    /// `parallel_boots` nodes at once.
    pub fn host_config(&self, parallel_boots: u32) -> HostConfig {
        HostConfig {
            name: self.name.clone(),
            uri: self.uri.clone(),
            max_nodes: None,
            parallel_boots: Some(parallel_boots),
            storage_pool: DEFAULT_STORAGE_POOL.into(),
            pool_path: DEFAULT_POOL_PATH.into(),
        }
    }

    /// Why this host is not fully up; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (role, p) in self.processes() {
            if !p.is_alive() {
                out.push(format!(
                    "{} {role} (pid {}) is not running",
                    self.name, p.pid
                ));
            }
        }
        if !self.machine.netns_path().exists() {
            out.push(format!(
                "{}'s network namespace {} is missing",
                self.name, self.machine.netns
            ));
        }
        out
    }
}

/// One pool's public subnet in the lab: the bridge it is on, the lab's own address there
/// (router and DNS server for the nodes), and the DNS domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicNet {
    pub pool: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub host: Ipv4Addr,
    pub domain: Option<String>,
}

impl PublicNet {
    /// The host address with the subnet's prefix, as `ip addr add` takes it.
    pub fn host_cidr(&self) -> String {
        format!("{}/{}", self.host, self.subnet.prefix_len())
    }
}

/// The bridges of `nets`, each once, in the order the pools name them.
pub fn bridges(nets: &[PublicNet]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for net in nets {
        if !out.contains(&net.bridge.as_str()) {
            out.push(&net.bridge);
        }
    }
    out
}

impl LabState {
    pub fn new(name: &LabName, dir: &LabDir) -> LabState {
        LabState {
            name: name.clone(),
            dir: dir.root().into(),
            site: Machine::new(name.netns()),
            dnsmasq: None,
            public: Vec::new(),
            hosts: Vec::new(),
            complete: false,
        }
    }

    /// The site's processes by role, in the order they were started.
    pub fn processes(&self) -> Vec<(&'static str, Proc)> {
        [
            ("holder", self.site.holder),
            ("virtlogd", self.site.virtlogd),
            ("libvirtd", self.site.libvirtd),
            ("dnsmasq", self.dnsmasq),
        ]
        .into_iter()
        .filter_map(|(role, p)| Some((role, p?)))
        .collect()
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The lab's hosts as vnode's `[[hosts]]`, for commands run in the lab (see
    /// `Context::load`); empty for a lab without hosts. The hosts share this machine's CPUs, so
    /// each boots at most its share of them at once (`auto` would let every host boot one per
    /// CPU, and the guests of all hosts would starve each other).
    pub fn host_configs(&self) -> Vec<HostConfig> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = lab_boot_share(cpus, self.hosts.len());
        self.hosts.iter().map(|h| h.host_config(share)).collect()
    }

    /// Why this lab is not fully up, its hosts included; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.site_problems();
        for host in &self.hosts {
            out.extend(host.problems());
        }
        out
    }

    /// Why the lab cannot be entered: `up` did not finish, or the site is broken. A host that is
    /// down is not such a problem: commands in the lab find it unreachable, as they would a
    /// real host (tests stop a host's daemons on purpose).
    pub fn site_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.complete {
            out.push("`lab up` did not finish".to_string());
        }
        for (role, p) in self.processes() {
            if !p.is_alive() {
                out.push(format!("{role} (pid {}) is not running", p.pid));
            }
        }
        if !self.site.netns_path().exists() {
            out.push(format!("network namespace {} is missing", self.site.netns));
        }
        out
    }

    pub fn load(name: &LabName, dir: &LabDir) -> Result<Option<LabState>, LabError> {
        match fs::read_to_string(dir.state()) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                LabError::io(
                    name,
                    "read state.json",
                    io::Error::new(io::ErrorKind::InvalidData, e),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::io(name, "read state.json", e)),
        }
    }

    /// Writes the state atomically (a crash leaves the old or the new file, never half of one).
    pub fn save(&self, dir: &LabDir) -> Result<(), LabError> {
        let path = dir.state();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        fs::write(&tmp, text + "\n")
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| LabError::io(&self.name, "write state.json", e))
    }
}

/// An exclusive lock on one lab, held while a command changes or reads it.
pub struct LabLock {
    _file: File,
}

impl LabLock {
    pub fn acquire(name: &LabName, dir: &LabDir) -> Result<LabLock, LabError> {
        Self::acquire_path(&dir.lock()).map_err(|e| LabError::io(name, "lock the lab", e))
    }

    fn acquire_path(path: &Path) -> io::Result<LabLock> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            unix::lock_exclusive(&file)?;
            // `lab down` removes the lock file while holding it; a waiter that then gets the
            // lock on the removed file must start over with the new one.
            let same =
                fs::metadata(path).is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
            if same {
                return Ok(LabLock { _file: file });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state.json as `lab up` wrote it before labs had hosts.
    const OLD_STATE: &str = r#"{
      "name": "vnode", "dir": "/var/lib/vnode/lab/vnode", "netns": "vnode-vnode",
      "netns_inode": 4026532177,
      "holder": {"pid": 20627, "start_time": 1073814},
      "virtlogd": {"pid": 20636, "start_time": 1073826},
      "libvirtd": {"pid": 20639, "start_time": 1073828},
      "dnsmasq": {"pid": 20750, "start_time": 1073864},
      "public": [], "complete": true
    }"#;

    #[test]
    fn lab_hosts_share_the_machines_cpus_each_at_least_one_boot() {
        assert_eq!(lab_boot_share(2, 3), 1);
        assert_eq!(lab_boot_share(2, 1), 2);
        assert_eq!(lab_boot_share(8, 3), 2);
        assert_eq!(lab_boot_share(1, 0), 1);
    }

    #[test]
    fn a_state_from_before_hosts_loads_and_has_none() {
        let s: LabState = serde_json::from_str(OLD_STATE).unwrap();
        assert_eq!(s.site.netns, "vnode-vnode");
        assert_eq!(s.site.libvirtd.map(|p| p.pid), Some(20639));
        assert!(s.hosts.is_empty() && s.host_configs().is_empty());
        // Written back, the site's fields stay where they were.
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["holder"]["pid"], 20627);
        assert_eq!(v["netns"], "vnode-vnode");
    }

    #[test]
    fn hosts_are_the_labs_config_hosts() {
        let name = LabName::new("t").unwrap();
        let mut s = LabState::new(&name, &LabDir::of(&name));
        let address = Ipv4Addr::new(198, 18, 0, 253);
        s.hosts.push(LabHost {
            name: "h1".into(),
            machine: Machine::new(name.host_netns("h1")),
            sshd: None,
            address,
            uri: crate::lab::site_hosts::host_uri(address),
            host_key: "ssh-ed25519 AAAA".into(),
        });
        let round: LabState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(round, s);
        assert_eq!(
            s.host_configs(),
            [HostConfig {
                name: "h1".into(),
                uri: "qemu+ssh://root@198.18.0.253/system".into(),
                max_nodes: None,
                parallel_boots: Some(lab_boot_share(
                    std::thread::available_parallelism().unwrap().get(),
                    1
                )),
                storage_pool: "vnode".into(),
                pool_path: "/var/lib/libvirt/vnode".into(),
            }]
        );
        // Not started: the host's missing namespace is a problem of the lab, not of its site.
        assert!(s.host("h1").is_some() && s.host("h2").is_none());
        let host_problems = s.hosts[0].problems();
        assert!(
            host_problems[0].contains("h1's network namespace"),
            "{host_problems:?}"
        );
        assert!(!s.site_problems().iter().any(|p| p.contains("h1")));
        assert!(s.problems().iter().any(|p| p.contains("h1")));
    }
}
