//! `state.json`: what `lab up` started and created, written after every step so that `lab down`
//! can undo exactly that, also after a crash halfway through `up`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::paths::LabDir;
use super::process::Proc;
use super::{LabError, LabName};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub name: LabName,
    pub dir: PathBuf,
    /// The `ip netns` name.
    pub netns: String,
    /// Its inode, to find the lab's processes even when the holder is gone.
    pub netns_inode: Option<u64>,
    /// The process that keeps the namespaces (sleeps in them); its namespaces are the lab.
    pub holder: Option<Proc>,
    pub virtlogd: Option<Proc>,
    pub libvirtd: Option<Proc>,
    /// The site DHCP/DNS on the public bridges.
    pub dnsmasq: Option<Proc>,
    /// The public subnets the lab serves, one per pool.
    pub public: Vec<PublicNet>,
    /// `up` ran to the end.
    pub complete: bool,
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
            netns: name.netns(),
            netns_inode: None,
            holder: None,
            virtlogd: None,
            libvirtd: None,
            dnsmasq: None,
            public: Vec::new(),
            complete: false,
        }
    }

    /// The lab's processes by role, in the order they were started.
    pub fn processes(&self) -> Vec<(&'static str, Proc)> {
        [
            ("holder", self.holder),
            ("virtlogd", self.virtlogd),
            ("libvirtd", self.libvirtd),
            ("dnsmasq", self.dnsmasq),
        ]
        .into_iter()
        .filter_map(|(role, p)| Some((role, p?)))
        .collect()
    }

    /// Why this lab is not fully up; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.complete {
            out.push("`lab up` did not finish".to_string());
        }
        for (role, p) in self.processes() {
            if !p.is_alive() {
                out.push(format!("{role} (pid {}) is not running", p.pid));
            }
        }
        if !super::netns_path(&self.name).exists() {
            out.push(format!("network namespace {} is missing", self.netns));
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
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
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
