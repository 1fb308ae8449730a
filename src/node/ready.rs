//! What spawn learned about a ready node, kept in its directory (`ready.json`) for the verbs that
//! come later: list, ssh, ssh-config, inventory.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::files::NodePaths;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadyRecord {
    pub name: String,
    pub image: String,
    pub private_ip: Option<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub os: Option<String>,
    /// The `[[hosts]]` entry it runs on; absent: this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Seconds since the epoch when the node became ready.
    pub ready_at: u64,
}

impl ReadyRecord {
    pub fn save(&self, paths: &NodePaths) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("serializes");
        crate::files::write_atomic(&paths.ready(), json, 0o644)
    }

    pub fn load(paths: &NodePaths) -> Option<ReadyRecord> {
        serde_json::from_slice(&std::fs::read(paths.ready()).ok()?).ok()
    }

    /// The address vnode reaches the node on: private if known, else public.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.private_ip.or(self.public_ip)
    }
}
