//! `vnode [spawn] SPECS...`: resolve specs, then print the dry run, prepare artifacts, or spawn.

use std::process::ExitCode;

use serde::Serialize;

use crate::catalog::ImageRef;
use crate::cli::SpawnArgs;
use crate::config::VirtType;
use crate::context::Context;
use crate::error::Result;
use crate::mac::{Mac, Nic};
use crate::pool::{NodeName, Resources};
use crate::spec::{self, NodeRequest};
use crate::table::Table;

/// What `--dry-run` shows for one node.
#[derive(Debug, Serialize)]
pub struct DryRunNode {
    pub name: NodeName,
    pub pool: String,
    pub image: ImageRef,
    pub public_mac: Mac,
    pub private_mac: Mac,
    pub bridge: String,
    pub network: String,
    pub fqdn: Option<String>,
    pub public_ip: Option<std::net::Ipv4Addr>,
    #[serde(flatten)]
    pub resources: Resources,
    pub virt_type: VirtType,
}

impl DryRunNode {
    pub fn new(r: &NodeRequest, virt_type: VirtType) -> DryRunNode {
        let n = r.name.number;
        DryRunNode {
            name: r.name.clone(),
            pool: r.pool.stem.clone(),
            image: r.image.clone(),
            public_mac: r.pool.mac(Nic::Public, n),
            private_mac: r.pool.mac(Nic::Private, n),
            bridge: r.pool.bridge.clone(),
            network: r.pool.network.clone(),
            fqdn: r.pool.fqdn(n),
            public_ip: r.pool.public_ip(n),
            resources: r.pool.resources,
            virt_type,
        }
    }
}

/// Resolves the command's specs against the config, the catalog and the cache.
pub fn requests(ctx: &Context, args: &SpawnArgs) -> Result<Vec<NodeRequest>> {
    let distro = args
        .distro
        .as_deref()
        .or(ctx.config.default_distro.as_deref());
    Ok(spec::resolve(
        &args.specs,
        &ctx.config.pools,
        &ctx.catalog,
        distro,
        &ctx.local_images(),
    )?)
}

pub fn run(ctx: &Context, args: &SpawnArgs) -> Result<ExitCode> {
    let requests = requests(ctx, args)?;
    let virt_type = args.virt_type.unwrap_or(ctx.config.virt_type);
    if args.dry_run {
        let nodes: Vec<DryRunNode> = requests
            .iter()
            .map(|r| DryRunNode::new(r, virt_type))
            .collect();
        if ctx.json {
            ctx.print_json(&serde_json::json!({ "nodes": nodes }));
        } else {
            let mut t = Table::new([
                "NAME",
                "IMAGE",
                "PUBLIC MAC",
                "PRIVATE MAC",
                "BRIDGE",
                "NETWORK",
                "MEM",
                "CPUS",
                "DISK",
            ]);
            for n in &nodes {
                t.row([
                    n.name.to_string(),
                    n.image.to_string(),
                    n.public_mac.to_string(),
                    n.private_mac.to_string(),
                    n.bridge.clone(),
                    n.network.clone(),
                    format!("{} MiB", n.resources.memory_mib),
                    n.resources.vcpus.to_string(),
                    format!("{} GiB", n.resources.disk_gib),
                ]);
            }
            print!("{}", t.render());
            println!("(dry run: nothing was created; virt type {virt_type})");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.prepare_only {
        return crate::node::prepare_only::run(ctx, &requests, virt_type);
    }
    crate::spawn::run(ctx, args, requests)
}
