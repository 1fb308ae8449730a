//! `[[hosts]]`: the libvirt hosts nodes are spread over, and their limits.

use std::path::PathBuf;

use serde::Serialize;

use super::file::HostFile;
use super::located::Located;
use crate::plan::planned_node::HostName;
use crate::plan::pool::Limit;
use crate::ssh::jump_host::{self, BadUri, JumpHost};
use crate::text::names::{self, NameError};
use crate::text::toml_file::FileError;

/// One `[[hosts]]` entry: a libvirt host vnode places nodes on, reached through libvirt's own
/// remote protocol (`qemu+ssh://root@HOST/system`); vnode runs nothing of its own there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostConfig {
    /// What specs (`3@h2`), `--host` and the tables call it.
    pub name: String,
    pub uri: String,
    /// At most this many vnode nodes on the host (placement skips a full host).
    pub max_nodes: Option<u32>,
    /// At most this many nodes boot at once on this host; overrides the top-level
    /// `parallel_boots`, and `--parallel` overrides both.
    pub parallel_boots: Option<u32>,
    /// The libvirt storage pool that holds vnode's volumes there (base images, overlays, seeds).
    pub storage_pool: String,
    /// Where that pool's directory is created when the pool does not exist yet.
    pub pool_path: PathBuf,
}

/// The storage pool vnode uses on a `[[hosts]]` host unless told otherwise.
pub const DEFAULT_STORAGE_POOL: &str = "vnode";
/// Its directory on the host, when vnode has to create the pool.
pub const DEFAULT_POOL_PATH: &str = "/var/lib/libvirt/vnode";
const MAX_NODES: Limit = Limit::new(1, 100_000, " nodes");
/// What `parallel_boots` may be, a host's or the top-level one.
pub(super) const PARALLEL_BOOTS: Limit = Limit::new(1, 100_000, " nodes");

/// Why a `[[hosts]]` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{} is already hosts[{index}]", names::quoted(.name))]
    Duplicate { name: String, index: usize },
    #[error(
        "{} is what vnode calls this host when there are no [[hosts]]; give the host another \
         name",
        names::quoted(.name)
    )]
    LocalName { name: String },
    /// A bad host name or path, or a URI that is not one word.
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "{} is not a libvirt URI: write e.g. qemu+ssh://root@HOST/system",
        names::quoted(.uri)
    )]
    NotAUri { uri: String },
    #[error(transparent)]
    RefusedParam(#[from] jump_host::RefusedParam),
    #[error(transparent)]
    BadSshUri(#[from] BadUri),
    #[error(
        "{} is not a storage pool name (letters, digits, '-', '_', '.')",
        names::quoted(.name)
    )]
    StoragePool {
        name: String,
        #[source]
        source: NameError,
    },
}

impl Located<'_> {
    /// The `[[hosts]]`: distinct host names, one-word URIs, limits in range.
    pub(super) fn hosts(&self, hosts: Vec<HostFile>) -> Result<Vec<HostConfig>, FileError> {
        let mut out: Vec<HostConfig> = Vec::new();
        for (i, h) in hosts.into_iter().enumerate() {
            let field = |key: &str| format!("hosts[{i}].{key}");
            let name = self.string(h.name, &field("name"), |name| {
                if let Some(index) = out.iter().position(|o| o.name == name) {
                    return Err(HostError::Duplicate {
                        name: name.into(),
                        index,
                    });
                }
                if name == HostName::LOCAL {
                    return Err(HostError::LocalName { name: name.into() });
                }
                Ok(names::check_host_name(name)?)
            })?;
            let host = HostConfig {
                name,
                uri: self.string(h.uri, &field("uri"), check_uri)?,
                max_nodes: self.number(
                    h.max_nodes.as_ref(),
                    &field("max_nodes"),
                    "max_nodes",
                    MAX_NODES,
                )?,
                parallel_boots: self.number(
                    h.parallel_boots.as_ref(),
                    &field("parallel_boots"),
                    "parallel_boots",
                    PARALLEL_BOOTS,
                )?,
                storage_pool: self
                    .optional(h.storage_pool, &field("storage_pool"), check_storage_pool)?
                    .unwrap_or_else(|| DEFAULT_STORAGE_POOL.into()),
                pool_path: self
                    .optional(h.pool_path, &field("pool_path"), names::check_absolute_path)?
                    .unwrap_or_else(|| DEFAULT_POOL_PATH.into())
                    .into(),
            };
            out.push(host);
        }
        Ok(out)
    }
}

/// A libvirt remote URI, one word, without parameters that make libvirt run a program or skip
/// host verification; an ssh URI's user and host, decoded, are a login name and a host name.
fn check_uri(uri: &str) -> Result<(), HostError> {
    names::check_word(uri, "a libvirt URI")?;
    if !uri.contains("://") {
        return Err(HostError::NotAUri { uri: uri.into() });
    }
    jump_host::check_params(uri)?;
    JumpHost::parse(uri)?;
    Ok(())
}

/// A libvirt storage pool's name follows the rules of a host name.
fn check_storage_pool(name: &str) -> Result<(), HostError> {
    names::check_host_name(name).map_err(|source| HostError::StoragePool {
        name: name.into(),
        source,
    })
}
