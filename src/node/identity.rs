//! What makes a node the same node across its runs: its ssh host key and cloud-init instance id.
//! A fresh state keeps them, so a node restored from it is the node that was saved.

use serde::{Deserialize, Serialize};

/// A node's host key (both halves) and instance id.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// OpenSSH private key file contents.
    pub host_key_private: String,
    /// `ssh-ed25519 AAAA...`
    pub host_key_public: String,
    pub instance_id: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("host_key_private", &"..")
            .field("host_key_public", &self.host_key_public)
            .field("instance_id", &self.instance_id)
            .finish()
    }
}
