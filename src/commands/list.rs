//! `vnode list`: vnode's nodes with state, image, MACs and addresses.

use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::hypervisor::Hypervisor;
use crate::node::ready::ReadyRecord;
use crate::runtime::{self, Flavor};
use crate::table::Table;

#[derive(Debug, Serialize)]
struct ListedNode {
    name: String,
    state: String,
    image: Option<String>,
    public_mac: String,
    private_mac: String,
    private_ip: Option<std::net::Ipv4Addr>,
    public_ip: Option<std::net::Ipv4Addr>,
    os: Option<String>,
    age_seconds: Option<u64>,
}

pub fn run(ctx: &Context) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let known = super::known_nodes::all(ctx, &host);
    let states = runtime::block_on(Flavor::CurrentThread, async {
        let mut states = Vec::with_capacity(known.len());
        for n in &known {
            states.push(host.virsh().domain_state(&n.name.to_string()).await?);
        }
        Ok::<_, crate::libvirt::LibvirtError>(states)
    })??;
    let now = std::time::SystemTime::now();
    let nodes: Vec<ListedNode> = known
        .iter()
        .zip(states)
        .map(|(id, state)| {
            let name = id.name.to_string();
            let paths = host.node_paths(&name);
            let record = ReadyRecord::load(&paths);
            let age = std::fs::metadata(&paths.dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .map(|d| d.as_secs());
            ListedNode {
                name,
                state: state.unwrap_or_else(|| "no domain".into()),
                image: record.as_ref().map(|r| r.image.clone()),
                public_mac: id.public_mac.to_string(),
                private_mac: id.private_mac.to_string(),
                private_ip: record.as_ref().and_then(|r| r.private_ip),
                public_ip: record.as_ref().and_then(|r| r.public_ip),
                os: record.and_then(|r| r.os),
                age_seconds: age,
            }
        })
        .collect();
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "nodes": nodes }));
        return Ok(());
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut t = Table::new([
        "NODE",
        "STATE",
        "IMAGE",
        "PRIVATE IP",
        "PUBLIC IP",
        "PUBLIC MAC",
        "OS",
        "AGE",
    ]);
    for n in &nodes {
        t.row([
            n.name.clone(),
            n.state.clone(),
            dash(n.image.clone()),
            dash(n.private_ip.map(|i| i.to_string())),
            dash(n.public_ip.map(|i| i.to_string())),
            n.public_mac.clone(),
            dash(n.os.clone()),
            dash(n.age_seconds.map(human_age)),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
