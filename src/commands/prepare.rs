//! `vnode spawn --prepare-only SPECS...`: create the nodes' artifacts and show them with the
//! virt-install command that would boot each, without calling virt-install.

use std::process::ExitCode;

use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::hypervisor::Hypervisor;
use crate::libvirt::virt_install::Accel;
use crate::node::{self, NodeArtifacts};
use crate::planned::PlannedNode;
use crate::spawn::stages;

#[derive(Serialize)]
struct Prepared {
    #[serde(flatten)]
    artifacts: NodeArtifacts,
    /// `virt-install` and its arguments.
    virt_install: Vec<String>,
}

pub fn run(ctx: &Context, host: &Hypervisor, nodes: &[PlannedNode], accel: Accel) -> Result<ExitCode> {
    let mut prepared = Vec::with_capacity(nodes.len());
    let mut notes: Vec<String> = Vec::new();
    for n in nodes {
        let a = node::prepare(&ctx.config, n, &host.node_paths(&n.name()), &host.known_hosts())?;
        if let Some(note) = &a.osinfo.note
            && !notes.contains(note)
        {
            eprintln!("vnode: {note}");
            notes.push(note.clone());
        }
        let mut command = vec!["virt-install".to_string()];
        command.extend(
            stages::virt_install(host, n, &a, accel)
                .argv()
                .into_iter()
                .map(|s| s.to_string_lossy().into_owned()),
        );
        prepared.push(Prepared {
            artifacts: a,
            virt_install: command,
        });
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "virt_type": accel.virt_type(), "nodes": prepared }));
        return Ok(ExitCode::SUCCESS);
    }
    for p in &prepared {
        let a = &p.artifacts;
        println!("{}  {}", a.name, a.dir.display());
        println!("  disk      {}", a.overlay.display());
        println!("  seed      {}", a.seed.display());
        println!("  console   {}", a.console_log.display());
        println!("  metadata  {}", a.metadata.display());
        println!("  host key  {}", a.host_public_key);
        println!("  {}", crate::shell::join(&p.virt_install));
    }
    println!(
        "(prepared {} node(s); no VM was defined; host keys are in {})",
        prepared.len(),
        host.known_hosts().display()
    );
    Ok(ExitCode::SUCCESS)
}
