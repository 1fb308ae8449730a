//! `vnode destroy SPECS [--keep-disk] [--purge]`: destroy nodes and remove everything vnode made
//! for them; their fresh states stay (a later spawn restores them) unless `--purge`.

use crate::cli::DestroyArgs;
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::Hosts;
use crate::hosts::hypervisor::Keep;
use crate::libvirt::LibvirtError;
use crate::process::runtime::{self, Flavor};

pub fn run(ctx: &Context, args: &DestroyArgs) -> Result<()> {
    let hosts = Hosts::from_config(&ctx.config);
    let nodes = crate::plan::spec::resolve_names(&args.specs, &ctx.config.pools)?;
    let keep = if args.keep_disk {
        Keep::Disk
    } else {
        Keep::Nothing
    };
    // Every node at once: each is looked for on every host, and removed where it is.
    let hosts = &hosts;
    let mut failed =
        runtime::block_on(Flavor::CurrentThread, async {
            let each = nodes.iter().map(|(_, node)| async move {
            let name = node.to_string();
            let (found, silent) = hosts.locate(&name).await;
            let Some(host) = found else {
                return match silent.first() {
                    None => {
                        eprintln!("{name}: no such node (no domain, no files); nothing to do");
                        None
                    }
                    Some((h, e)) => Some(format!(
                        "{name}: not found on the hosts that answered, and host {h} did not ({e}); \
                         run destroy again once it answers"
                    )),
                };
            };
            let on = if hosts.configured() {
                format!(" on {}", host.name())
            } else {
                String::new()
            };
            let domain = match host.virsh().domain_state(&name).await {
                Ok(d) => d,
                Err(e) => return Some(not_removed(&name, &on, hosts.configured(), host, &e)),
            };
            if domain.is_none() && !host.node_paths(&name).dir.exists() {
                eprintln!("{name}: no such node (no domain, no files); nothing to do");
                return None;
            }
            match host.remove_node(&name, keep).await {
                Ok(()) => {
                    let kept = if keep == Keep::Disk { " (disk kept)" } else { "" };
                    eprintln!("{name}: destroyed{on}{kept}");
                    None
                }
                Err(e) => Some(format!("{name}{on}: {e}")),
            }
        });
            futures_util::future::join_all(each)
                .await
                .into_iter()
                .flatten()
                .collect::<Vec<String>>()
        })?;
    let state_dir = &ctx.config.state_dir;
    let mut purge = Vec::new();
    for (_, node) in &nodes {
        let name = node.to_string();
        if !crate::fresh_state::store::StatePaths::new(state_dir, &name)
            .dir
            .exists()
        {
            continue;
        }
        match args.purge {
            true => purge.push(name),
            false => {
                eprintln!("{name}: fresh state kept (`vnode destroy --purge {name}` removes it)")
            }
        }
    }
    // A state on a `[[hosts]]` host has volumes there: each goes where it is.
    let purged = runtime::block_on(Flavor::CurrentThread, async {
        let each = purge.iter().map(|name| hosts.remove_state(name));
        futures_util::future::join_all(each).await
    })?;
    for (name, removed) in purge.iter().zip(purged) {
        match removed {
            Ok(_) => eprintln!("{name}: fresh state removed"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CommandError::NotDestroyed(failed).into())
    }
}

/// Why a node could not be looked at where it is: for a host that does not answer, which host
/// and that the node is left as it was (its record too, so a later destroy finds it again).
fn not_removed(
    name: &str,
    on: &str,
    several_hosts: bool,
    host: &crate::hosts::hypervisor::Hypervisor,
    e: &LibvirtError,
) -> String {
    if e.is_connection() && several_hosts {
        format!(
            "{name}: its host {} ({}) does not answer ({e}); nothing was removed: run destroy again \
             once the host answers",
            host.name(),
            host.uri()
        )
    } else {
        format!("{name}{on}: {e}")
    }
}
