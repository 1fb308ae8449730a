//! `vnode destroy SPECS [--keep-disk]`: destroy nodes and remove everything vnode made for them.

use crate::cli::DestroyArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::hypervisor::{Hypervisor, Keep};
use crate::runtime::{self, Flavor};

pub fn run(ctx: &Context, args: &DestroyArgs) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let nodes = crate::spec::resolve_names(&args.specs, &ctx.config.pools)?;
    let keep = if args.keep_disk {
        Keep::Disk
    } else {
        Keep::Nothing
    };
    let failed = runtime::block_on(Flavor::CurrentThread, async {
        let mut failed = Vec::new();
        for (_, node) in nodes {
            let name = node.to_string();
            let domain = host.virsh().domain_state(&name).await?;
            if domain.is_none() && !host.node_paths(&name).dir.exists() {
                eprintln!("{name}: no such node (no domain, no files); nothing to do");
                continue;
            }
            match host.remove_node(&name, keep).await {
                Ok(()) => eprintln!(
                    "{name}: destroyed{}",
                    if keep == Keep::Disk {
                        " (disk kept)"
                    } else {
                        ""
                    }
                ),
                Err(e) => failed.push(e.to_string()),
            }
        }
        Ok::<_, crate::libvirt::LibvirtError>(failed)
    })??;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failed.join("\n")))
    }
}
