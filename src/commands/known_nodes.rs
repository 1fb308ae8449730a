//! What the node verbs share: the nodes vnode has state for, the one node a verb acts on, and
//! the ssh options that make the system ssh verify a node's pinned host key.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;
use crate::node::ready::ReadyRecord;
use crate::planned::NodeIdentity;

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

/// The one node `spec` names.
pub fn one(ctx: &Context, spec: &str) -> Result<NodeIdentity> {
    let (pool, node) =
        crate::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?.remove(0);
    Ok(NodeIdentity::new(&pool, node.number))
}

/// The one ready node `spec` names, with what spawn recorded about it.
pub fn one_ready(ctx: &Context, host: &Hypervisor, spec: &str) -> Result<ReadyRecord> {
    let name = one(ctx, spec)?.name.to_string();
    ReadyRecord::load(&host.node_paths(&name)).ok_or_else(|| {
        Error::Failed(format!(
            "{name} is not a ready vnode node (no record in {}); `vnode list` shows the nodes",
            host.state_dir().display()
        ))
    })
}

/// ssh options that make the system ssh verify the node's pinned host key.
pub fn ssh_options(host: &Hypervisor, name: &str) -> Vec<String> {
    vec![
        "-i".into(),
        host.client_key().display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", host.known_hosts().display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("HostKeyAlias={name}"),
    ]
}
