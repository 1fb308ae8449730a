//! The one place that knows where a node's files are: `<state_dir>/<name>/...`, and vnode's own
//! files beside the nodes (known_hosts, the client key).

use std::path::{Path, PathBuf};

/// File names in a node's directory.
pub const DISK: &str = "disk.qcow2";
/// The disk a node runs on after its fresh state was saved: an overlay on [`DISK`], which is
/// frozen then (the state's disk, by a second name).
pub const RUN_DISK: &str = "disk.run.qcow2";
pub const SEED: &str = "seed.iso";
pub const CONSOLE_LOG: &str = "console.log";
pub const HOST_KEY_PUB: &str = "ssh_host_ed25519_key.pub";
pub const METADATA: &str = "node.json";
pub const READY: &str = "ready.json";

/// vnode's files in the state directory.
pub const KNOWN_HOSTS: &str = "known_hosts";
pub const CLIENT_KEY: &str = "client_ed25519";

/// The files of one node, in its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePaths {
    pub dir: PathBuf,
}

impl NodePaths {
    /// The node `name` under `state_dir`.
    pub fn new(state_dir: &Path, name: &str) -> NodePaths {
        NodePaths::in_dir(state_dir.join(name))
    }

    /// The files of a node directory wherever it is (a staging directory, say).
    pub fn in_dir(dir: PathBuf) -> NodePaths {
        NodePaths { dir }
    }

    /// The disk the node was defined with (frozen into its state once that is saved).
    pub fn disk(&self) -> PathBuf {
        self.dir.join(DISK)
    }

    /// The overlay a saved node runs on from its save on, backed by [`NodePaths::disk`].
    pub fn run_disk(&self) -> PathBuf {
        self.dir.join(RUN_DISK)
    }

    /// The disk the node runs on now: [`NodePaths::run_disk`] once its state was saved, else
    /// [`NodePaths::disk`].
    pub fn active_disk(&self) -> PathBuf {
        let run = self.run_disk();
        if run.exists() { run } else { self.disk() }
    }

    pub fn seed(&self) -> PathBuf {
        self.dir.join(SEED)
    }

    pub fn console_log(&self) -> PathBuf {
        self.dir.join(CONSOLE_LOG)
    }

    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join(HOST_KEY_PUB)
    }

    pub fn metadata(&self) -> PathBuf {
        self.dir.join(METADATA)
    }

    pub fn ready(&self) -> PathBuf {
        self.dir.join(READY)
    }
}

/// vnode's known_hosts: `<state_dir>/known_hosts`.
pub fn known_hosts(state_dir: &Path) -> PathBuf {
    state_dir.join(KNOWN_HOSTS)
}

/// vnode's ssh client key: `<state_dir>/client_ed25519`.
pub fn client_key(state_dir: &Path) -> PathBuf {
    state_dir.join(CLIENT_KEY)
}

/// The names of the node directories in `state_dir` (hidden staging directories left out).
pub fn node_dirs(state_dir: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}
