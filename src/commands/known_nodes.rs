//! What the node verbs share: the nodes vnode has state for, the one node a verb acts on, and
//! the ssh options that make the system ssh verify a node's pinned host key.

use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::Hosts;
use crate::hosts::hypervisor::Hypervisor;
use crate::node::ready::ReadyRecord;
use crate::plan::planned_node::NodeIdentity;
use crate::process::runtime::{self, Flavor};
use crate::ssh::config_file::NodeLogin;

/// The nodes vnode has a directory for on `host`, in name order, with their identity.
pub fn all(ctx: &Context, host: &Hypervisor) -> Vec<NodeIdentity> {
    host.node_names()
        .iter()
        .filter_map(|n| NodeIdentity::of_name(&ctx.config.pools, n))
        .collect()
}

/// The names of the nodes vnode has state for on this host (for completion).
pub fn names(ctx: &Context) -> Vec<String> {
    all(ctx, &Hypervisor::local(&ctx.config))
        .into_iter()
        .map(|n| n.name.to_string())
        .collect()
}

/// The ready nodes (with an address) on `host`.
pub fn ready(ctx: &Context, host: &Hypervisor) -> Vec<ReadyRecord> {
    all(ctx, host)
        .iter()
        .filter_map(|n| ReadyRecord::load(&host.node_paths(&n.name.to_string())))
        .filter(|r| r.address().is_some())
        .collect()
}

/// The host that has node `name`: the one with its domain (every `[[hosts]]` host asked at
/// once), else the one its files name, else (no `[[hosts]]`) this host.
pub fn host_of(ctx: &Context, name: &str) -> Result<Hypervisor> {
    let hosts = Hosts::from_config(&ctx.config);
    let (found, errors) = runtime::block_on(Flavor::CurrentThread, hosts.locate(name))?;
    if let Some(h) = found {
        return Ok(h.clone());
    }
    let silent: Vec<String> = errors.iter().map(|(h, e)| format!("{h}: {e}")).collect();
    let node = name.to_string();
    Err(if silent.is_empty() {
        CommandError::NoHostHasIt { node }
    } else {
        CommandError::NotOnAnsweringHosts { node, silent }
    }
    .into())
}

/// The one node `spec` names.
pub fn one(ctx: &Context, spec: &str) -> Result<NodeIdentity> {
    let (pool, node) =
        crate::plan::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?.remove(0);
    Ok(NodeIdentity::new(&pool, node.number))
}

/// The one ready node `spec` names, with what spawn recorded about it.
pub fn one_ready(ctx: &Context, host: &Hypervisor, spec: &str) -> Result<ReadyRecord> {
    let name = one(ctx, spec)?.name.to_string();
    ReadyRecord::load(&host.node_paths(&name)).ok_or_else(|| {
        CommandError::NotReady {
            node: name.clone(),
            state_dir: host.state_dir().to_path_buf(),
        }
        .into()
    })
}

/// The `[[hosts]]` host's sshd to jump through (ssh's ProxyJump, `user@host[:port]`) for a
/// node that is reached on its private address there; `None` for this host's nodes and for
/// nodes reached on their public address.
pub fn proxy_jump(ctx: &Context, record: &ReadyRecord) -> Option<String> {
    let host = ctx
        .config
        .hosts
        .iter()
        .find(|h| Some(&h.name) == record.host.as_ref())?;
    record.private_ip?;
    Some(crate::ssh::JumpHost::from_uri(&host.uri)?.proxy_jump())
}

/// How another ssh client logs into a ready node: its address, vnode's client key and
/// known_hosts, and (for a node on a `[[hosts]]` host) the jump through that host's sshd, whose
/// own key is checked against the user's known_hosts. None without an address.
pub fn login(ctx: &Context, host: &Hypervisor, record: &ReadyRecord) -> Option<NodeLogin> {
    Some(NodeLogin {
        name: record.name.clone(),
        address: record.address()?.to_string(),
        identity_file: host.client_key(),
        known_hosts: host.known_hosts(),
        proxy_jump: proxy_jump(ctx, record),
    })
}
