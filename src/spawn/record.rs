//! What spawn learned about a ready node, kept in its state directory (`ready.json`) for the
//! verbs that come later: list, ssh, ssh-config, inventory.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyRecord {
    pub name: String,
    pub image: String,
    pub private_ip: Option<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub os: Option<String>,
    /// Seconds since the epoch when the node became ready.
    pub ready_at: u64,
}

pub fn path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(name).join("ready.json")
}

impl ReadyRecord {
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let path = path(state_dir, &self.name);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializes"))?;
        std::fs::rename(tmp, path)
    }

    pub fn load(state_dir: &Path, name: &str) -> Option<ReadyRecord> {
        serde_json::from_slice(&std::fs::read(path(state_dir, name)).ok()?).ok()
    }

    /// The address vnode reaches the node on: private if known, else public.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.private_ip.or(self.public_ip)
    }
}
