//! The host seam: everything the pipeline and the node verbs need from the hypervisor host a node
//! runs on — its libvirt connection, where a node's artifacts are stored, how a guest's ssh port
//! is reached, and how a node is taken apart again.
//!
//! Today there is one kind: this host, with node files in `state_dir` and guests reached directly
//! on their private address. A remote libvirt host (reached through libvirt's own remote
//! protocol, its artifacts in one of its storage pools, its guests through its sshd) is a second
//! kind behind the same methods; the stages do not change.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::Virsh;
use crate::node::paths::{self, NodePaths};
use crate::node::{self, NodeError};
use crate::planned::HostName;

/// One hypervisor host.
#[derive(Clone, Debug)]
pub struct Hypervisor {
    name: HostName,
    uri: String,
    virsh: Virsh,
    state_dir: PathBuf,
}

/// Why a node could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{node}: cannot remove its domain: {source}")]
    Domain {
        node: String,
        #[source]
        source: LibvirtError,
    },
    #[error(transparent)]
    Files(#[from] NodeError),
}

/// What to keep of a removed node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    Nothing,
    /// `destroy --keep-disk`: the overlay stays, the rest goes.
    Disk,
}

impl Hypervisor {
    /// This host, as the config describes it.
    pub fn local(config: &Config) -> Hypervisor {
        Hypervisor {
            name: HostName::local(),
            uri: config.libvirt_uri.clone(),
            virsh: Virsh::new(&config.libvirt_uri),
            state_dir: config.state_dir.clone(),
        }
    }

    pub fn name(&self) -> &HostName {
        &self.name
    }

    /// The libvirt URI virt-install and virsh connect to.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn virsh(&self) -> &Virsh {
        &self.virsh
    }

    /// Where vnode keeps node directories and its own files for this host's nodes.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where the artifacts of node `name` are stored.
    pub fn node_paths(&self, name: &str) -> NodePaths {
        NodePaths::new(&self.state_dir, name)
    }

    /// vnode's known_hosts for this host's nodes.
    pub fn known_hosts(&self) -> PathBuf {
        paths::known_hosts(&self.state_dir)
    }

    /// vnode's ssh client key, authorized in every node of this host.
    pub fn client_key(&self) -> PathBuf {
        paths::client_key(&self.state_dir)
    }

    /// Names of the node directories vnode has on this host.
    pub fn node_names(&self) -> Vec<String> {
        paths::node_dirs(&self.state_dir)
    }

    /// Where to connect to reach the ssh port of a guest that has `address`: the address itself,
    /// since this host's guests are on networks this process can reach.
    pub fn guest_ssh(&self, address: Ipv4Addr) -> SocketAddr {
        SocketAddr::from((address, 22))
    }

    /// Takes a node apart: its domain is destroyed and undefined, then its files and known_hosts
    /// lines go (all but the disk with [`Keep::Disk`]). Whatever is already gone is fine.
    pub async fn remove_node(&self, name: &str, keep: Keep) -> Result<(), RemoveError> {
        let domain = |source| RemoveError::Domain {
            node: name.to_string(),
            source,
        };
        self.virsh.destroy(name).await.map_err(domain)?;
        self.virsh.undefine(name).await.map_err(domain)?;
        match keep {
            Keep::Nothing => node::remove_if_present(&self.state_dir, name)?,
            Keep::Disk => node::remove_keeping_disk(&self.state_dir, name)?,
        }
        Ok(())
    }

    /// Removes the files of a node whose domain was never defined.
    pub fn remove_files(&self, name: &str) -> Result<(), NodeError> {
        node::remove_if_present(&self.state_dir, name)
    }
}
