//! The planned node: one value per node, built once from spec + pool + catalog + cache + config,
//! that every later step reads (dry run, plan, `--prepare-only`, spawn, the node verbs).
//!
//! A node's public identity (name, both MACs, FQDN, proposed public address) follows from its
//! pool and number alone ([`NodeIdentity`]); that is what the site's DHCP plan lists and why a
//! node keeps its address wherever it runs. [`NodeIdentity::new`] is the only place outside the
//! pool's own scheme ([`Pool::mac`], [`Pool::fqdn`], [`Pool::public_ip`]) that turns a pool and a
//! number into those values; everything else reads them from here.

use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::images::catalog::{Catalog, ImageKind, ImageRef, Renderer};
use crate::images::{BaseImage, Cache, ImageError};
use crate::plan::mac::{Mac, Nic};
use crate::plan::pool::{NodeName, Pool, Pools, Resources};
use crate::plan::spec::NodeRequest;

/// Who a node is on the networks: everything that follows from pool + number.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeIdentity {
    pub name: NodeName,
    pub pool: String,
    pub number: u32,
    /// The NIC on the site's bridge: what the site's DHCP serves.
    pub public_mac: Mac,
    /// The NIC on libvirt's network (served by libvirt).
    pub private_mac: Mac,
    pub public_ip: Option<Ipv4Addr>,
    pub fqdn: Option<String>,
    pub bridge: String,
    pub network: String,
}

impl NodeIdentity {
    pub fn new(pool: &Pool, number: u32) -> NodeIdentity {
        NodeIdentity {
            name: pool.node(number),
            pool: pool.stem.clone(),
            number,
            public_mac: pool.mac(Nic::Public, number),
            private_mac: pool.mac(Nic::Private, number),
            public_ip: pool.public_ip(number),
            fqdn: pool.fqdn(number),
            bridge: pool.bridge.clone(),
            network: pool.network.clone(),
        }
    }

    /// The identity of an existing node called `name`, if the name belongs to a pool.
    pub fn of_name(pools: &Pools, name: &str) -> Option<NodeIdentity> {
        let (pool, node) = crate::plan::spec::resolve_names(&[name.to_string()], pools)
            .ok()?
            .pop()?;
        Some(NodeIdentity::new(&pool, node.number))
    }
}

/// The hypervisor host a node runs on: this host (`local`, when the config has no `[[hosts]]`),
/// or one of the config's `[[hosts]]` by its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HostName(String);

impl HostName {
    pub const LOCAL: &str = "local";

    pub fn local() -> HostName {
        HostName(HostName::LOCAL.into())
    }

    /// The `[[hosts]]` entry called `name`.
    pub fn named(name: &str) -> HostName {
        HostName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a `[[hosts]]` entry; `None` for this host without `[[hosts]]`.
    pub fn remote_name(&self) -> Option<&str> {
        (self.0 != HostName::LOCAL).then_some(self.0.as_str())
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One node to create: its identity, image, resources and host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedNode {
    #[serde(flatten)]
    pub id: NodeIdentity,
    /// The whole pool (for what the identity does not carry).
    #[serde(skip)]
    pub pool: Pool,
    pub image: ImageRef,
    /// The cached base image; `None` only for a dry run, which needs no cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseImage>,
    #[serde(flatten)]
    pub resources: Resources,
    pub host: HostName,
    /// The network renderer the image's cloud-init uses, when the catalog knows it (imported
    /// images: unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renderer: Option<Renderer>,
}

impl PlannedNode {
    /// `name`, as a string (the domain's and the node directory's name).
    pub fn name(&self) -> String {
        self.id.name.to_string()
    }
}

/// The planned nodes of `requests`; `bases` (one per request, in order) when the images were
/// resolved in the cache.
pub fn plan(
    requests: Vec<NodeRequest>,
    bases: Option<Vec<BaseImage>>,
    catalog: &Catalog,
    host: &HostName,
) -> Vec<PlannedNode> {
    let mut bases = bases.map(Vec::into_iter);
    requests
        .into_iter()
        .map(|r| PlannedNode {
            id: NodeIdentity::new(&r.pool, r.name.number),
            resources: r.pool.resources,
            renderer: renderer_of(catalog, &r.image),
            pool: r.pool,
            image: r.image,
            base: bases.as_mut().and_then(Iterator::next),
            host: host.clone(),
        })
        .collect()
}

/// A catalog image's renderer, or its base's for a derived image.
fn renderer_of(catalog: &Catalog, image: &ImageRef) -> Option<Renderer> {
    let name = match &image.kind {
        ImageKind::Derived { base, .. } => base.as_str(),
        _ => image.name.as_str(),
    };
    catalog.get(name)?.renderer
}

/// The planned nodes of `requests` with their base images from `cache` (which must hold every
/// image: spawn never downloads).
pub fn plan_cached(
    requests: Vec<NodeRequest>,
    cache: &Cache,
    catalog: &Catalog,
    host: &HostName,
) -> Result<Vec<PlannedNode>, ImageError> {
    let images: Vec<&ImageRef> = requests.iter().map(|r| &r.image).collect();
    let bases = crate::images::resolve_bases(cache, catalog, &images)?;
    Ok(plan(requests, Some(bases), catalog, host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_planned_node_carries_the_seeds_identity() {
        let config = Config::defaults();
        let catalog = Catalog::load(None).unwrap();
        let requests =
            crate::plan::spec::resolve(&["18:u24.04".into()], &config.pools, &catalog, None, &[])
                .unwrap();
        let nodes = plan(requests, None, &catalog, &HostName::local());
        let n = &nodes[0];
        assert_eq!(n.name(), "vnode18");
        assert_eq!(n.id.public_mac.to_string(), "52:54:00:00:00:18");
        assert_eq!(n.id.private_mac.to_string(), "52:54:00:10:00:18");
        assert_eq!(n.image.name, "ubuntu-24.04");
        assert_eq!(n.host.to_string(), "local");
        assert_eq!(n.renderer, Some(Renderer::Netplan));
        let json = serde_json::to_value(n).unwrap();
        assert_eq!(json["name"], "vnode18");
        assert_eq!(json["pool"], "vnode");
        assert_eq!(json["memory_mib"], 1024);
        assert!(json.get("base").is_none());
        assert_eq!(
            NodeIdentity::of_name(&config.pools, "vnode18"),
            Some(n.id.clone())
        );
        assert_eq!(NodeIdentity::of_name(&config.pools, "other7"), None);
    }
}
