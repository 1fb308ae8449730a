//! The host seam: everything the pipeline and the node verbs need from the hypervisor host a node
//! runs on — its libvirt connection, where a node's artifacts are stored, how a guest's ssh port
//! is reached, and how a node is taken apart again.
//!
//! Two kinds behind the same methods:
//! - **this host** (no `[[hosts]]` in the config): node files in `state_dir`, the domain's disks
//!   are those files, guests reached directly on their private address;
//! - **a `[[hosts]]` host**, reached through libvirt's own remote protocol (`qemu+ssh://`): the
//!   node's files are built here in `state_dir` as ever, then its disks go up as volumes of the
//!   host's storage pool (the base image once per host, by digest), and guests are reached through
//!   the host's sshd (an ssh channel to `guest:22`), since their private address is only routable
//!   there. vnode runs nothing of its own on the host.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, HostConfig};
use crate::fresh_state::on_host;
use crate::fresh_state::store::{self, StatePaths, StateRecord};
use crate::libvirt::LibvirtError;
use crate::libvirt::dir_pools::{self, PoolRemovalError};
use crate::libvirt::storage::{Storage, StorageError};
use crate::libvirt::virsh::Virsh;
use crate::libvirt::virt_install::DomainFiles;
use crate::node::files::{self, NodePaths};
use crate::node::{self, NodeArtifacts, NodeError};
use crate::plan::planned_node::{HostName, PlannedNode};
use crate::ssh::{JumpHost, JumpPool};

/// One hypervisor host.
#[derive(Clone)]
pub struct Hypervisor {
    name: HostName,
    uri: String,
    virsh: Virsh,
    state_dir: PathBuf,
    remote: Option<Arc<Remote>>,
}

impl std::fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypervisor")
            .field("name", &self.name)
            .field("uri", &self.uri)
            .finish()
    }
}

/// What a `[[hosts]]` host has beyond a libvirt connection.
struct Remote {
    config: HostConfig,
    storage: Storage,
    /// The host's sshd, when the URI names one (`qemu+ssh://`); a local URI has none.
    jump: Option<JumpPool>,
    /// Base images this process has put in place on the host, by digest; the lock makes nodes
    /// of one image wait for one upload.
    bases: tokio::sync::Mutex<HashMap<String, PathBuf>>,
}

impl Remote {
    /// A node's volumes: its disk `volume`, an overlay on `backing`, and its seed; the console
    /// log's path in the pool's directory.
    async fn node_volumes(
        &self,
        node: &PlannedNode,
        seed: &Path,
        volume: &str,
        backing: &Path,
    ) -> Result<DomainFiles, StorageError> {
        let name = node.name();
        let capacity = u64::from(node.resources.disk_gib) << 30;
        let disk = self
            .storage
            .create_overlay(volume, backing, capacity)
            .await?;
        let seed = self.storage.upload(&seed_volume(&name), seed).await?;
        let console_log = disk.with_file_name(console_volume(&name));
        Ok(DomainFiles {
            disk,
            seed,
            console_log,
        })
    }
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
    #[error("{node}: cannot remove its volumes on host {host}: {source}")]
    Volumes {
        node: String,
        host: HostName,
        #[source]
        source: Box<StorageError>,
    },
    #[error("{node}: {source}")]
    Pools {
        node: String,
        #[source]
        source: Box<PoolRemovalError>,
    },
    #[error(transparent)]
    Files(#[from] NodeError),
    #[error("{node}: cannot remove its fresh state in {}: {source}", dir.display())]
    State {
        node: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{node}: its fresh state's volumes stay on host {host}, which the config no longer \
         names: delete {} from that host's storage pool",
        on_host::volumes(node).join(" and ")
    )]
    StateHostGone { node: String, host: String },
}

/// Why a node's disks could not be put in place on its host.
#[derive(Debug, thiserror::Error)]
#[error("{node}: cannot put its disks on host {host}: {source}")]
pub struct StageDisksError {
    pub node: String,
    pub host: HostName,
    #[source]
    pub source: Box<StorageError>,
}

/// A node's disks in place.
pub struct Staged {
    pub files: DomainFiles,
    /// Bytes of the base image this node's staging uploaded (0: the host had it, or another
    /// node of the same command uploaded it).
    pub base_uploaded: u64,
}

/// What to keep of a removed node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    Nothing,
    /// `destroy --keep-disk`: the overlay stays, the rest goes.
    Disk,
}

/// How long vnode waits for a host's sshd to answer and authenticate.
const JUMP_TIMEOUT: Duration = Duration::from_secs(15);

/// Names of a node's volumes in its host's storage pool.
pub fn disk_volume(name: &str) -> String {
    format!("{name}.qcow2")
}
pub fn seed_volume(name: &str) -> String {
    format!("{name}-seed.iso")
}
pub fn console_volume(name: &str) -> String {
    format!("{name}-console.log")
}

impl Hypervisor {
    /// This host, as the config describes it (no `[[hosts]]`).
    pub fn local(config: &Config) -> Hypervisor {
        Hypervisor {
            name: HostName::local(),
            uri: config.libvirt_uri.clone(),
            virsh: Virsh::new(&config.libvirt_uri),
            state_dir: config.state_dir.clone(),
            remote: None,
        }
    }

    /// A `[[hosts]]` host.
    pub fn remote(config: &Config, host: &HostConfig) -> Hypervisor {
        let virsh = Virsh::new(&host.uri);
        Hypervisor {
            name: HostName::named(&host.name),
            uri: host.uri.clone(),
            state_dir: config.state_dir.clone(),
            remote: Some(Arc::new(Remote {
                storage: Storage::new(virsh.clone(), &host.storage_pool, &host.pool_path),
                jump: JumpHost::from_uri(&host.uri).map(|j| JumpPool::new(j, JUMP_TIMEOUT)),
                config: host.clone(),
                bases: tokio::sync::Mutex::default(),
            })),
            virsh,
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

    /// The `[[hosts]]` entry, for a host that is one.
    pub fn host_config(&self) -> Option<&HostConfig> {
        self.remote.as_ref().map(|r| &r.config)
    }

    /// The host's storage pool, for a `[[hosts]]` host.
    pub fn storage(&self) -> Option<&Storage> {
        self.remote.as_ref().map(|r| &r.storage)
    }

    /// How often the spawn reads this host's domain states while libvirt's event stream is down
    /// (leases: at most once a second). Every virsh call over `qemu+ssh://` is a new ssh
    /// connection (libvirt's transport starts one per client), which costs the host and the
    /// controller CPU that the guests' boots need: once a second there, four times a second on
    /// this host's local libvirt.
    pub fn libvirt_poll(&self) -> Duration {
        if self.jump().is_some() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(250)
        }
    }

    /// The host's sshd that guests are reached through, when there is one.
    pub fn jump(&self) -> Option<&JumpPool> {
        self.remote.as_ref().and_then(|r| r.jump.as_ref())
    }

    /// Where vnode keeps node directories and its own files for this host's nodes.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where the artifacts of node `name` are stored (here; a `[[hosts]]` host has copies of
    /// the disks as volumes).
    pub fn node_paths(&self, name: &str) -> NodePaths {
        NodePaths::new(&self.state_dir, name)
    }

    /// vnode's known_hosts for this host's nodes.
    pub fn known_hosts(&self) -> PathBuf {
        files::known_hosts(&self.state_dir)
    }

    /// vnode's ssh client key, authorized in every node of this host.
    pub fn client_key(&self) -> PathBuf {
        files::client_key(&self.state_dir)
    }

    /// Names of the node directories vnode has (for every host).
    pub fn node_names(&self) -> Vec<String> {
        files::node_dirs(&self.state_dir)
    }

    /// Where to connect to reach the ssh port of a guest that has `address`: the address itself
    /// (directly, or from the host's sshd when [`Hypervisor::jump`] is set).
    pub fn guest_ssh(&self, address: Ipv4Addr) -> SocketAddr {
        SocketAddr::from((address, 22))
    }

    /// The disks of a prepared node where its domain will use them: the node's files on this
    /// host; on a `[[hosts]]` host, volumes of its pool — the base image (uploaded once per
    /// host and image), an overlay on it, the seed — and the console log in the pool's directory.
    ///
    /// A node whose state will be saved (`to_save`) boots on the state's disk volume on a
    /// `[[hosts]]` host (see [`on_host`]).
    pub async fn stage_disks(
        &self,
        node: &PlannedNode,
        artifacts: &NodeArtifacts,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
        to_save: bool,
    ) -> Result<Staged, StageDisksError> {
        let Some(remote) = &self.remote else {
            return Ok(Staged {
                files: artifacts.domain_files(),
                base_uploaded: 0,
            });
        };
        let name = node.name();
        let fail = |source| StageDisksError {
            node: name.clone(),
            host: self.name.clone(),
            source: Box::new(source),
        };
        let base = node
            .base
            .as_ref()
            .expect("a node being spawned has its base image");
        let (backing, base_uploaded) = {
            let mut bases = remote.bases.lock().await;
            match bases.get(&base.digest) {
                Some(p) => (p.clone(), 0),
                None => {
                    let pushed = remote
                        .storage
                        .push_base(&base.path, &base.digest, progress)
                        .await
                        .map_err(fail)?;
                    bases.insert(base.digest.clone(), pushed.path.clone());
                    (pushed.path, pushed.uploaded_bytes)
                }
            }
        };
        let volume = match to_save {
            true => on_host::disk_volume(&name),
            false => disk_volume(&name),
        };
        let files = remote
            .node_volumes(node, &artifacts.seed, &volume, &backing)
            .await
            .map_err(fail)?;
        Ok(Staged {
            files,
            base_uploaded,
        })
    }

    /// The disks of a node restored from its state on a `[[hosts]]` host: its disk a new overlay
    /// on the state's disk volume (nothing of an earlier run stays), its seed uploaded.
    pub async fn stage_restore(
        &self,
        node: &PlannedNode,
        seed: &Path,
    ) -> Result<(), StageDisksError> {
        let name = node.name();
        let fail = |source| StageDisksError {
            node: name.clone(),
            host: self.name.clone(),
            source: Box::new(source),
        };
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let frozen = remote
            .storage
            .path_of(&on_host::disk_volume(&name))
            .await
            .map_err(fail)?;
        remote
            .node_volumes(node, seed, &disk_volume(&name), &frozen)
            .await
            .map(drop)
            .map_err(fail)
    }

    /// The node's console log as a local file: its own on this host; on a `[[hosts]]` host,
    /// downloaded from the pool into the node's directory first.
    pub async fn console_log(&self, name: &str) -> PathBuf {
        let local = self.node_paths(name).console_log();
        if let Some(remote) = &self.remote
            && local.parent().is_some_and(Path::exists)
        {
            let _ = remote.storage.download(&console_volume(name), &local).await;
        }
        local
    }

    /// Takes a node apart: its domain is destroyed and undefined, the storage pool virt-install
    /// made for its directory removed, its volumes on a `[[hosts]]` host deleted, then its files
    /// and known_hosts lines go (all but the disk with [`Keep::Disk`]). Whatever is already gone
    /// is fine.
    pub async fn remove_node(&self, name: &str, keep: Keep) -> Result<(), RemoveError> {
        let domain = |source| RemoveError::Domain {
            node: name.to_string(),
            source,
        };
        self.virsh.destroy(name).await.map_err(domain)?;
        self.virsh.undefine(name).await.map_err(domain)?;
        self.remove_dir_pools(name).await?;
        self.remove_volumes(name, keep).await?;
        match keep {
            Keep::Nothing => node::remove_if_present(&self.state_dir, name)?,
            Keep::Disk => node::remove_keeping_disk(&self.state_dir, name)?,
        }
        Ok(())
    }

    /// Removes the files (and volumes) of a node whose domain was never defined, and the pool
    /// a virt-install that failed may have made for its directory.
    pub async fn remove_files(&self, name: &str) -> Result<(), RemoveError> {
        self.remove_dir_pools(name).await?;
        self.remove_volumes(name, Keep::Nothing).await?;
        Ok(node::remove_if_present(&self.state_dir, name)?)
    }

    /// The pools virt-install made for the node's directory (see [`dir_pools`]): only on this
    /// host, where domains use the node's files; a `[[hosts]]` host's disks are volumes of the
    /// host's own pool.
    async fn remove_dir_pools(&self, name: &str) -> Result<(), RemoveError> {
        if self.remote.is_some() {
            return Ok(());
        }
        dir_pools::remove_pools_of_dir(&self.virsh, &self.node_paths(name).dir)
            .await
            .map(drop)
            .map_err(|source| RemoveError::Pools {
                node: name.to_string(),
                source: Box::new(source),
            })
    }

    /// The node's volumes on a `[[hosts]]` host; the volumes of its fresh state there only
    /// when they are not one (a node that was to be saved and was not boots on them).
    async fn remove_volumes(&self, name: &str, keep: Keep) -> Result<(), RemoveError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut volumes = vec![seed_volume(name), console_volume(name)];
        if keep == Keep::Nothing {
            volumes.push(disk_volume(name));
            if !self.has_state(name) {
                volumes.extend(on_host::volumes(name));
            }
        }
        self.delete_volumes(remote, name, volumes).await
    }

    /// Deletes node `name`'s `volumes` from the host's pool (those not there are fine).
    async fn delete_volumes(
        &self,
        remote: &Remote,
        name: &str,
        volumes: impl IntoIterator<Item = String>,
    ) -> Result<(), RemoveError> {
        for v in volumes {
            remote
                .storage
                .delete(&v)
                .await
                .map_err(|source| RemoveError::Volumes {
                    node: name.to_string(),
                    host: self.name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Whether node `name` has a fresh state on this host.
    fn has_state(&self, name: &str) -> bool {
        StateRecord::load(&StatePaths::new(&self.state_dir, name))
            .is_ok_and(|r| r.inputs.host == self.name.as_str())
    }

    /// Removes node `name`'s fresh state, which is this host's: its volumes on a `[[hosts]]`
    /// host, then its directory here. Whether there was one.
    pub async fn remove_state(&self, name: &str) -> Result<bool, RemoveError> {
        if let Some(remote) = &self.remote {
            self.delete_volumes(remote, name, on_host::volumes(name))
                .await?;
        }
        remove_state_dir(&self.state_dir, name)
    }
}

/// Removes node `name`'s state directory here (all of a state of this host; the record of a
/// `[[hosts]]` host's). Whether there was one.
pub fn remove_state_dir(state_dir: &Path, name: &str) -> Result<bool, RemoveError> {
    store::remove(state_dir, name).map_err(|source| RemoveError::State {
        node: name.to_string(),
        dir: StatePaths::new(state_dir, name).dir,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt::dir_pools::tests::{define, pools, stand_in};

    fn local_with(virsh: Virsh, state_dir: &Path) -> Hypervisor {
        Hypervisor {
            name: HostName::local(),
            uri: virsh.uri().to_string(),
            virsh,
            state_dir: state_dir.to_path_buf(),
            remote: None,
        }
    }

    /// `vnode destroy`, a failed spawn's cleanup, `--force` and Ctrl-C all end in `remove_node`
    /// or `remove_files`: each removes the pool virt-install made for the node's directory, and
    /// only that one.
    #[tokio::test]
    async fn removing_a_node_removes_the_pool_virt_install_made_for_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let libvirt = tmp.path().join("libvirt");
        let state = tmp.path().join("nodes");
        std::fs::create_dir_all(state.join("vnode03")).unwrap();
        std::fs::create_dir_all(state.join("vnode04")).unwrap();
        std::fs::create_dir_all(&libvirt).unwrap();
        let host = local_with(stand_in(&libvirt), &state);
        let dir = |n: &str| state.join(n).to_str().unwrap().to_string();
        define(&libvirt, "vnode03", &dir("vnode03"), true);
        define(&libvirt, "vnode04", &dir("vnode04"), false);
        define(&libvirt, "nodes", state.to_str().unwrap(), true);
        host.remove_node("vnode03", Keep::Nothing).await.unwrap();
        assert_eq!(pools(&libvirt), ["nodes", "vnode04"]);
        assert!(!state.join("vnode03").exists());
        host.remove_files("vnode04").await.unwrap();
        assert_eq!(pools(&libvirt), ["nodes"]);
        assert!(!state.join("vnode04").exists());
    }
}
