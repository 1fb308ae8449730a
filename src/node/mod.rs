//! Per-node artifacts: qcow2 overlay, NoCloud seed ISO, cloud-init documents, host keys; and
//! their removal. (The virt-install command that boots them is built in [`crate::libvirt`].)
//!
//! Each node has a directory `<state_dir>/<name>/`:
//!
//! | file                        | mode | what                                                    |
//! |-----------------------------|------|---------------------------------------------------------|
//! | `disk.qcow2`                | 0600 | overlay on the cached base image ([`overlay`])          |
//! | `seed.iso`                  | 0600 | NoCloud seed, carries the private host key ([`seed`])   |
//! | `console.log`               |      | the serial console, written by virtlogd once it runs    |
//! | `ssh_host_ed25519_key.pub`  | 0644 | the node's host public key                              |
//! | `node.json`                 | 0644 | what the node was made from ([`metadata`])              |
//!
//! The directory is 0711: the qemu user may open the files it is given but not list the
//! directory. The disk and the seed belong to root (vnode runs as root) with mode 0600, and no
//! group or world bit: libvirt's DAC driver with `dynamic_ownership = 1` (qemu.conf's default)
//! chowns every disk of a domain to the qemu user when the domain starts. It gives writable disks
//! back to their owner when the domain stops, but leaves read-only ones (the seed, the shared base
//! image) with the qemu user, as other domains may still use them (`security_dac.c`, "Don't
//! restore labels on readonly/shared disks"). Either way the seed, which carries the private host
//! key, stays readable by root and the qemu user only. A host with `dynamic_ownership = 0` must
//! give the files to the qemu user itself; the image cache must be readable by the qemu user.
//!
//! Creating a node builds everything in a hidden sibling directory and swaps it in with one
//! `renameat2(RENAME_EXCHANGE)`: a failure half way leaves the old node (or nothing), never a mix.
//! The node's host key then goes into vnode's known_hosts ([`known_hosts`]).

pub mod authorized_keys;
pub mod cloud_init;
pub mod files;
mod fsutil;
pub mod host_key;
pub mod identity;
pub mod known_hosts_file;
pub mod metadata;
pub mod overlay;
pub mod ready;
pub mod seed;

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, ModuleLists};
use crate::images::BaseImage;
use crate::libvirt::osinfo::{self, OsinfoChoice};
use crate::plan::planned_node::PlannedNode;

use authorized_keys::KeysError;
use cloud_init::{Account, HostKeys, MetaData, NetworkConfig, User, UserData};
use files::NodePaths;
use host_key::HostKey;
use identity::Identity;
use metadata::NodeMetadata;

/// Everything made for one node.
#[derive(Debug, Serialize)]
pub struct NodeArtifacts {
    pub name: String,
    pub dir: PathBuf,
    pub overlay: PathBuf,
    pub seed: PathBuf,
    pub console_log: PathBuf,
    pub metadata: PathBuf,
    /// `ssh-ed25519 AAAA...`, also in `known_hosts` under the node's name (and FQDN).
    pub host_public_key: String,
    pub known_hosts: PathBuf,
    pub instance_id: String,
    pub osinfo: OsinfoChoice,
    /// sha256 of the seed's three documents as written (a fresh state's key holds it).
    pub documents_sha256: String,
    /// The host key and instance id the documents were made with (a fresh state keeps them).
    #[serde(skip)]
    pub identity: Identity,
}

impl NodeArtifacts {
    /// The files a domain on this host is made of.
    pub fn domain_files(&self) -> crate::libvirt::virt_install::DomainFiles {
        crate::libvirt::virt_install::DomainFiles {
            disk: self.overlay.clone(),
            seed: self.seed.clone(),
            console_log: self.console_log.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{node}: its image {image} was not resolved in the cache before preparing")]
    NoBase { node: String, image: String },
    #[error(
        "{node}: the disk size of pool '{pool}' ({disk_gib} GiB) is smaller than the virtual size of \
         image {image} ({base_bytes} bytes); raise disk_gib for the pool"
    )]
    DiskTooSmall {
        node: String,
        pool: String,
        disk_gib: u32,
        image: String,
        base_bytes: u64,
    },
    #[error("{node}: base image: {source}")]
    Base {
        node: String,
        #[source]
        source: crate::images::qcow2::Qcow2Error,
    },
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("{node}: {message}")]
    Invalid { node: String, message: String },
    #[error("{node}: {source}")]
    Path {
        node: String,
        #[source]
        source: crate::libvirt::virt_install::CommaInPath,
    },
    #[error("{node}: cannot generate the host key: {source}")]
    HostKey {
        node: String,
        #[source]
        source: host_key::HostKeyError,
    },
    #[error("{node}: {message}")]
    ClientKey { node: String, message: String },
    #[error("{node}: {stage} {}: {source}", path.display())]
    Io {
        node: String,
        stage: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The state directory's file system is full (ENOSPC, or the user's quota: EDQUOT).
    #[error(
        "{node}: no space left on device: {stage} {}{}; free space in {} or set state_dir in the \
         config to a larger file system",
        path.display(),
        if *preparing { ", so the node was not created and its partial files were removed" } else { "" },
        state_dir.display()
    )]
    NoSpace {
        node: String,
        stage: &'static str,
        path: PathBuf,
        state_dir: PathBuf,
        /// While preparing the node (whose staged files are then gone).
        preparing: bool,
        #[source]
        source: io::Error,
    },
    #[error("{node}: no such node (nothing in {} or its known_hosts)", dir.display())]
    NotFound { node: String, dir: PathBuf },
}

impl NodeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::DiskTooSmall { .. }
            | NodeError::Keys(_)
            | NodeError::Invalid { .. }
            | NodeError::Path { .. } => crate::exit::EXIT_BAD_INPUT,
            _ => crate::exit::EXIT_FAILED,
        }
    }
}

/// Creates (or re-creates) the node's directory at `paths` with a fresh overlay, seed, host key
/// and instance id (or those of `identity`: a fresh state's), and records the host key in
/// `known_hosts`.
pub fn prepare(
    config: &Config,
    node: &PlannedNode,
    paths: &NodePaths,
    known_hosts: &Path,
    identity: Option<&Identity>,
) -> Result<NodeArtifacts, NodeError> {
    let name = node.name();
    let fail = Fail::preparing(&name, &config.state_dir);
    let base = node.base.as_ref().ok_or_else(|| NodeError::NoBase {
        node: name.clone(),
        image: node.image.name.clone(),
    })?;
    let dir = &paths.dir;
    crate::libvirt::virt_install::check_path(dir).map_err(|source| NodeError::Path {
        node: name.clone(),
        source,
    })?;
    let (backing, disk_bytes) = check_base(node, base)?;
    let docs = Documents::new(config, node, base, &backing, identity)?;
    let state_dir = &config.state_dir;
    std::fs::create_dir_all(state_dir)
        .map_err(fail.io("cannot create the state directory", state_dir))?;
    let staging = Staging::create(dir).map_err(fail.io("cannot create a directory beside", dir))?;
    docs.write(&fail, &staging, paths, &backing, disk_bytes)?;
    let swapped = staging
        .swap_in(dir)
        .map_err(fail.io("cannot move the new node into", dir))?;
    let mut names = vec![name.as_str()];
    names.extend(docs.user_data.fqdn.as_deref());
    if let Err(e) = known_hosts_file::add(known_hosts, &names, &docs.host_key.public) {
        swapped.undo(dir);
        return Err(fail.io("cannot record the host key in", known_hosts)(e));
    }
    swapped.finish();

    Ok(NodeArtifacts {
        overlay: paths.disk(),
        seed: paths.seed(),
        console_log: paths.console_log(),
        metadata: paths.metadata(),
        dir: dir.clone(),
        name,
        host_public_key: docs.host_key.public.clone(),
        known_hosts: known_hosts.to_path_buf(),
        documents_sha256: docs.sha256(),
        identity: Identity {
            host_key_private: docs.host_key.private_openssh.as_str().to_string(),
            host_key_public: docs.host_key.public.clone(),
            instance_id: docs.meta_data.instance_id.clone(),
        },
        instance_id: docs.meta_data.instance_id,
        osinfo: docs.osinfo,
    })
}

/// What goes into a node's directory besides its overlay: the seed's three documents, the host
/// key and the node's metadata.
struct Documents {
    host_key: HostKey,
    network_config: NetworkConfig,
    user_data: UserData,
    meta_data: MetaData,
    osinfo: OsinfoChoice,
    metadata: NodeMetadata,
}

impl Documents {
    /// A new host key and instance id (or `identity`'s), the cloud-init documents and the
    /// metadata; the osinfo id as the host's osinfo-db knows it.
    fn new(
        config: &Config,
        node: &PlannedNode,
        base: &BaseImage,
        backing: &Path,
        identity: Option<&Identity>,
    ) -> Result<Documents, NodeError> {
        let name = node.name();
        let (host_key, instance_id) = match identity {
            Some(i) => (
                HostKey::from_parts(&i.host_key_private, &i.host_key_public),
                i.instance_id.clone(),
            ),
            None => (
                HostKey::generate(&name).map_err(|source| NodeError::HostKey {
                    node: name.clone(),
                    source,
                })?,
                format!("{name}-{}", uuid::Uuid::new_v4().simple()),
            ),
        };
        let network_config = NetworkConfig::for_node(node.id.public_mac, node.id.private_mac);
        let mut user_data = user_data(config, node, &host_key)?;
        user_data
            .add_network_manager_route_metrics(&network_config.network_manager_route_metrics());
        if config.cloud_init.modules == ModuleLists::Needed {
            user_data.name_needed_modules();
        }
        let meta_data = MetaData {
            instance_id: instance_id.clone(),
            local_hostname: name.clone(),
        };
        let osinfo = osinfo::choose_on_host(&config.state_dir, &base.osinfo);
        let (created_unix, created) = metadata::now();
        let metadata = NodeMetadata {
            name: name.clone(),
            pool: node.id.pool.clone(),
            number: node.id.number,
            image: node.image.name.clone(),
            base: backing.to_path_buf(),
            base_digest: base.digest.clone(),
            public_mac: node.id.public_mac,
            private_mac: node.id.private_mac,
            instance_id,
            host_key: host_key.public.clone(),
            osinfo: osinfo.id.clone(),
            disk_gib: node.resources.disk_gib,
            created,
            created_unix,
            host: node.host.remote_name().map(String::from),
        };
        Ok(Documents {
            host_key,
            network_config,
            user_data,
            meta_data,
            osinfo,
            metadata,
        })
    }

    /// The seed's three documents, named and rendered.
    fn seed_files(&self) -> [(&'static str, String); 3] {
        [
            ("meta-data", self.meta_data.render()),
            ("user-data", self.user_data.render()),
            ("network-config", self.network_config.render()),
        ]
    }

    /// sha256 over the seed's documents, each with its name and length.
    fn sha256(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (name, text) in self.seed_files() {
            h.update(format!("{name} {}\n", text.len()));
            h.update(text.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Writes the overlay and the documents into the staging directory. Messages name the files
    /// where the user will look for them, `paths` (the staging directory is gone by the time the
    /// message is read).
    fn write(
        &self,
        fail: &Fail,
        staging: &Staging,
        paths: &NodePaths,
        backing: &Path,
        disk_bytes: u64,
    ) -> Result<(), NodeError> {
        let at = NodePaths::in_dir(staging.path.clone());
        overlay::create(&at.disk(), backing, disk_bytes)
            .map_err(fail.io("cannot write the overlay", &paths.disk()))?;
        let seed_files = self.seed_files();
        let seed_files = seed_files.each_ref().map(|(n, t)| (*n, t.as_bytes()));
        seed::write(&at.seed(), &seed_files)
            .map_err(fail.io("cannot write the seed", &paths.seed()))?;
        let name = &self.metadata.name;
        write_new(
            &at.host_key_pub(),
            format!("{} {name}\n", self.host_key.public),
        )
        .map_err(fail.io("cannot write the host key", &paths.host_key_pub()))?;
        let json = serde_json::to_string_pretty(&self.metadata).expect("metadata serializes");
        write_new(&at.metadata(), json + "\n").map_err(fail.io("cannot write", &paths.metadata()))
    }
}

/// Builds [`NodeError::Io`]s that name the node; a full file system becomes
/// [`NodeError::NoSpace`], which says where to free space.
struct Fail<'a> {
    node: &'a str,
    state_dir: &'a Path,
    preparing: bool,
}

impl<'a> Fail<'a> {
    fn preparing(node: &'a str, state_dir: &'a Path) -> Fail<'a> {
        Fail {
            node,
            state_dir,
            preparing: true,
        }
    }

    fn removing(node: &'a str, state_dir: &'a Path) -> Fail<'a> {
        Fail {
            node,
            state_dir,
            preparing: false,
        }
    }

    fn io(&self, stage: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NodeError {
        let (node, path) = (self.node.to_string(), path.to_path_buf());
        let (state_dir, preparing) = (self.state_dir.to_path_buf(), self.preparing);
        move |source| match source.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => NodeError::NoSpace {
                node,
                stage,
                path,
                state_dir,
                preparing,
                source,
            },
            _ => NodeError::Io {
                node,
                stage,
                path,
                source,
            },
        }
    }
}

fn write_new(path: &Path, text: String) -> io::Result<()> {
    io::Write::write_all(&mut fsutil::create_new(path, 0o644)?, text.as_bytes())
}

/// The base image's absolute path and the overlay's size, which must hold the base's disk.
fn check_base(planned: &PlannedNode, base: &BaseImage) -> Result<(PathBuf, u64), NodeError> {
    let node = planned.name();
    let info = crate::images::qcow2::inspect(&base.path).map_err(|source| NodeError::Base {
        node: node.clone(),
        source,
    })?;
    let resources = &planned.resources;
    let disk_bytes = u64::from(resources.disk_gib) << 30;
    if disk_bytes < info.virtual_size {
        return Err(NodeError::DiskTooSmall {
            node,
            pool: planned.id.pool.clone(),
            disk_gib: resources.disk_gib,
            image: planned.image.name.clone(),
            base_bytes: info.virtual_size,
        });
    }
    let backing = std::fs::canonicalize(&base.path).map_err(|source| NodeError::Io {
        node: node.clone(),
        stage: "cannot resolve the base image",
        path: base.path.clone(),
        source,
    })?;
    Ok((backing, disk_bytes))
}

/// vnode's cloud-config with this node's names, keys, users and the config's extras.
fn user_data(
    config: &Config,
    node: &PlannedNode,
    host_key: &HostKey,
) -> Result<UserData, NodeError> {
    // vnode's own client key, so readiness checks and `vnode ssh` need no agent or passphrase.
    // Nodes are prepared in parallel threads: the first use creates the key, and two threads
    // creating it at once would each authorize a different key, only one of which is kept.
    static CLIENT_KEY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CLIENT_KEY.lock().unwrap_or_else(|e| e.into_inner());
    let client = crate::ssh::ClientKey::load_or_create(&files::client_key(&config.state_dir))
        .map_err(|e| NodeError::ClientKey {
            node: node.name(),
            message: e.to_string(),
        })?;
    let host_keys = HostKeys {
        ed25519_private: host_key.private_openssh.as_str().to_string(),
        ed25519_public: host_key.public.clone(),
    };
    cloud_config(
        config,
        node.name(),
        node.id.fqdn.clone(),
        host_keys,
        client.public_openssh,
    )
}

/// The cloud-config of a node named `hostname`: root's keys from the config (key files read)
/// and vnode's `client_key`, the config's users, packages and runcmd, and the node's host key.
pub fn cloud_config(
    config: &Config,
    hostname: String,
    fqdn: Option<String>,
    host_keys: HostKeys,
    client_key: String,
) -> Result<UserData, NodeError> {
    let mut u = UserData::defaults();
    u.hostname = hostname;
    u.fqdn = fqdn;
    u.ssh_authorized_keys = authorized_keys::resolve(&config.ssh_keys)?;
    u.ssh_authorized_keys.push(client_key);
    for user in &config.users {
        let keys = authorized_keys::resolve_user(&user.ssh_keys)?;
        u.users
            .push(User::Account(Account::from_config(user, keys)));
    }
    u.ssh_keys = Some(host_keys);
    u.packages
        .extend(config.cloud_init.packages.iter().cloned());
    u.runcmd.extend(config.cloud_init.runcmd.iter().cloned());
    Ok(u)
}

/// Removes the node's directory and its known_hosts lines. `NotFound` if there was neither.
pub fn remove(state_dir: &Path, name: &str) -> Result<(), NodeError> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(NodeError::Invalid {
            node: name.to_string(),
            message: "not a node name".into(),
        });
    }
    let dir = NodePaths::new(state_dir, name).dir;
    let fail = Fail::removing(name, state_dir);
    let had_dir = match std::fs::symlink_metadata(&dir) {
        Ok(_) => {
            // Out of the way first, so a half-removed directory never looks like a node.
            let doomed = fsutil::sibling(&dir, "old");
            std::fs::rename(&dir, &doomed).map_err(fail.io("cannot remove", &dir))?;
            std::fs::remove_dir_all(&doomed).map_err(fail.io("cannot remove", &doomed))?;
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(fail.io("cannot look at", &dir)(e)),
    };
    let known_hosts = files::known_hosts(state_dir);
    let had_key = known_hosts_file::remove(&known_hosts, name)
        .map_err(fail.io("cannot update", &known_hosts))?;
    if !had_dir && !had_key {
        return Err(NodeError::NotFound {
            node: name.to_string(),
            dir: state_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// A node directory being built beside its final place; removed unless swapped in.
struct Staging {
    path: PathBuf,
    done: bool,
}

impl Staging {
    fn create(dir: &Path) -> io::Result<Staging> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let path = fsutil::sibling(dir, "new");
        std::fs::DirBuilder::new().mode(0o711).create(&path)?;
        let staging = Staging { path, done: false };
        // Exactly 0711 whatever the umask: the qemu user must be able to reach the files.
        std::fs::set_permissions(&staging.path, std::fs::Permissions::from_mode(0o711))?;
        Ok(staging)
    }

    /// Puts the new directory at `dir`; the old one (if any) ends up where the new one was.
    fn swap_in(mut self, dir: &Path) -> io::Result<Swapped> {
        let had_old = match std::fs::symlink_metadata(dir) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !had_old {
            std::fs::rename(&self.path, dir)?;
            self.done = true;
            return Ok(Swapped { old: None });
        }
        match fsutil::exchange(&self.path, dir) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // No RENAME_EXCHANGE on this file system (NFS, for one): two renames, with a
                // moment in which the node has no directory.
                let old = fsutil::sibling(dir, "old");
                std::fs::rename(dir, &old)?;
                if let Err(e) = std::fs::rename(&self.path, dir) {
                    let _ = std::fs::rename(&old, dir);
                    return Err(e);
                }
                self.done = true;
                return Ok(Swapped { old: Some(old) });
            }
            Err(e) => return Err(e),
        }
        self.done = true;
        Ok(Swapped {
            old: Some(self.path.clone()),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A swapped-in node directory, with the directory it replaced still at hand.
struct Swapped {
    old: Option<PathBuf>,
}

impl Swapped {
    /// Drops the replaced directory.
    fn finish(self) {
        if let Some(old) = self.old {
            let _ = std::fs::remove_dir_all(old);
        }
    }

    /// Puts the replaced directory (or nothing) back at `dir`.
    fn undo(self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        if let Some(old) = self.old {
            let _ = std::fs::rename(old, dir);
        }
    }
}

/// Like [`remove`], but a node that was already gone is fine.
pub fn remove_if_present(state_dir: &Path, name: &str) -> Result<(), NodeError> {
    match remove(state_dir, name) {
        Err(NodeError::NotFound { .. }) => Ok(()),
        other => other,
    }
}

/// Removes everything of the node but its disk (`vnode destroy --keep-disk`).
pub fn remove_keeping_disk(state_dir: &Path, name: &str) -> Result<(), NodeError> {
    let paths = NodePaths::new(state_dir, name);
    let dir = paths.dir.clone();
    let io_err = |path: &Path| {
        let (node, path) = (name.to_string(), path.to_path_buf());
        move |source| NodeError::Io {
            node,
            stage: "cannot remove",
            path,
            source,
        }
    };
    let entries = std::fs::read_dir(&dir).map_err(io_err(&dir))?;
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        // A saved node runs on an overlay on its first disk: both are its disk.
        if path == paths.disk() || path == paths.run_disk() {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .map_err(io_err(&path))?;
    }
    let known_hosts = files::known_hosts(state_dir);
    known_hosts_file::remove(&known_hosts, name).map_err(io_err(&known_hosts))?;
    Ok(())
}
