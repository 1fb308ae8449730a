//! `vnode hosts`: what each of the config's `[[hosts]]` has, all asked at once.

use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::Hosts;
use crate::hosts::capabilities::{self, HostFacts};
use crate::process::runtime::{self, Flavor};
use crate::text::table::Table;

pub fn run(ctx: &Context) -> Result<()> {
    let hosts = Hosts::from_config(&ctx.config);
    if !hosts.configured() && !ctx.json {
        eprintln!(
            "vnode: the config has no [[hosts]]; nodes run on this host ({}). `vnode config \
             example` shows how to add hosts",
            ctx.config.libvirt_uri
        );
    }
    let all = runtime::block_on(
        Flavor::CurrentThread,
        capabilities::gather_all(hosts.all(), &ctx.config.pools),
    )?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "hosts": all }));
    } else {
        print!("{}", table(&all));
    }
    let down: Vec<&HostFacts> = all.iter().filter(|f| !f.reachable()).collect();
    for f in &down {
        eprintln!(
            "vnode: host {} does not answer: {}",
            f.name,
            f.unreachable.as_deref().unwrap_or_default()
        );
    }
    if down.is_empty() {
        Ok(())
    } else {
        Err(CommandError::HostsDown {
            down: down.len(),
            all: all.len(),
        }
        .into())
    }
}

fn table(all: &[HostFacts]) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut t = Table::new([
        "HOST", "STATE", "LIBVIRT", "VIRT", "CPUS", "FREE MEM", "NODES", "BASES", "URI",
    ]);
    for f in all {
        t.row([
            f.name.clone(),
            if f.reachable() { "up" } else { "unreachable" }.into(),
            dash(f.libvirt_version.clone()),
            if f.virt_types.is_empty() {
                "-".into()
            } else {
                f.virt_types.join(",")
            },
            dash(f.cpus.map(|c| c.to_string())),
            dash(f.free_mib.map(|m| format!("{:.1} GiB", m as f64 / 1024.0))),
            match f.max_nodes {
                Some(m) => format!("{}/{m}", f.nodes.len()),
                None => f.nodes.len().to_string(),
            },
            dash(f.base_images.as_ref().map(|b| b.len().to_string())),
            f.uri.clone(),
        ]);
    }
    t.render()
}
