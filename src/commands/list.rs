//! `vnode list`: vnode's nodes with state, image, MACs and addresses.

use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use std::collections::BTreeMap;

use crate::hosts::Hosts;
use crate::hosts::hypervisor::Hypervisor;
use crate::libvirt::virsh::DomainState;
use crate::node::ready::ReadyRecord;
use crate::plan::planned_node::NodeIdentity;
use crate::process::runtime::{self, Flavor};
use crate::text::table::Table;

#[derive(Debug, Serialize)]
struct ListedNode {
    name: String,
    /// The `[[hosts]]` entry that has it; absent without `[[hosts]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
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
    let hosts = Hosts::from_config(&ctx.config);
    let local = &hosts.all()[0];
    let seen = Seen::ask(&hosts)?;
    let known = known(ctx, local, &seen);
    let now = std::time::SystemTime::now();
    let nodes: Vec<ListedNode> = known
        .values()
        .map(|id| seen.listed(&hosts, local, id, now))
        .collect();
    for s in &seen.silent {
        eprintln!("vnode: {s}; its nodes are not listed as running");
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "nodes": nodes }));
        return Ok(());
    }
    print!("{}", table(&nodes, hosts.configured()));
    Ok(())
}

/// What the hosts said: each domain with its host and state, and the hosts that did not answer.
struct Seen {
    on_host: BTreeMap<String, (String, DomainState)>,
    /// "host NAME: ERROR" per `[[hosts]]` host that did not answer.
    silent: Vec<String>,
}

impl Seen {
    /// Every host at once: its domains with their states. Without `[[hosts]]`, a local libvirt
    /// that does not answer is an error.
    fn ask(hosts: &Hosts) -> Result<Seen> {
        let answers = runtime::block_on(Flavor::CurrentThread, hosts.domain_states())?;
        let mut seen = Seen {
            on_host: BTreeMap::new(),
            silent: Vec::new(),
        };
        for (h, states) in answers {
            match states {
                Ok(states) => {
                    for (name, state) in states {
                        seen.on_host
                            .entry(name)
                            .or_insert((h.name().to_string(), state));
                    }
                }
                Err(e) if hosts.configured() => seen.silent.push(format!("host {}: {e}", h.name())),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(seen)
    }

    /// One node's line: where its domain is and in what state, and what its files say.
    fn listed(
        &self,
        hosts: &Hosts,
        local: &Hypervisor,
        id: &NodeIdentity,
        now: std::time::SystemTime,
    ) -> ListedNode {
        let name = id.name.to_string();
        let paths = local.node_paths(&name);
        let record = ReadyRecord::load(&paths);
        let age = std::fs::metadata(&paths.dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs());
        let there = self.on_host.get(&name);
        let recorded = || {
            hosts
                .configured()
                .then(|| hosts.recorded(&name).map(|h| h.name().to_string()))
                .flatten()
        };
        ListedNode {
            host: there
                .map(|(h, _)| h.clone())
                .filter(|_| hosts.configured())
                .or_else(recorded),
            state: match there {
                Some((_, s)) => s.to_string(),
                None if !self.silent.is_empty() => "unknown (a host did not answer)".into(),
                None => "no domain".into(),
            },
            name,
            image: record.as_ref().map(|r| r.image.clone()),
            public_mac: id.public_mac.to_string(),
            private_mac: id.private_mac.to_string(),
            private_ip: record.as_ref().and_then(|r| r.private_ip),
            public_ip: record.as_ref().and_then(|r| r.public_ip),
            os: record.and_then(|r| r.os),
            age_seconds: age,
        }
    }
}

/// vnode's nodes: those it has files for, and domains on the hosts that belong to a pool.
fn known(ctx: &Context, local: &Hypervisor, seen: &Seen) -> BTreeMap<String, NodeIdentity> {
    let mut known: BTreeMap<String, NodeIdentity> = super::known_nodes::all(ctx, local)
        .into_iter()
        .map(|n| (n.name.to_string(), n))
        .collect();
    for name in seen.on_host.keys() {
        if let Some(id) = NodeIdentity::of_name(&ctx.config.pools, name) {
            known.entry(name.clone()).or_insert(id);
        }
    }
    known
}

/// The table; its HOST column only with `[[hosts]]`.
fn table(nodes: &[ListedNode], with_hosts: bool) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut t = Table::new([
        "NODE",
        "HOST",
        "STATE",
        "IMAGE",
        "PRIVATE IP",
        "PUBLIC IP",
        "PUBLIC MAC",
        "OS",
        "AGE",
    ]);
    for n in nodes {
        t.row([
            n.name.clone(),
            dash(n.host.clone()),
            n.state.clone(),
            dash(n.image.clone()),
            dash(n.private_ip.map(|i| i.to_string())),
            dash(n.public_ip.map(|i| i.to_string())),
            n.public_mac.clone(),
            dash(n.os.clone()),
            dash(n.age_seconds.map(human_age)),
        ]);
    }
    let t = if with_hosts {
        t
    } else {
        t.without_column("HOST")
    };
    t.render()
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
