//! `vnode spawn --prepare-only SPECS...`: create the nodes' artifacts and show them with the
//! virt-install command that would boot each, without calling virt-install.
//!
//! Every node is tried, as a spawn tries every node: the ones that were prepared are shown and
//! kept, each one that failed (a full state directory, say) is named on stderr and left with no
//! files at all, and the command then exits 1.

use std::process::ExitCode;

use serde::Serialize;

use crate::context::Context;
use crate::error::{EXIT_FAILED, Result};
use crate::hosts::hypervisor::Hypervisor;
use crate::libvirt::virt_install::Accel;
use crate::node::{self, NodeArtifacts, NodeError};
use crate::plan::planned_node::PlannedNode;
use crate::spawn::stages;

#[derive(Serialize)]
struct Prepared {
    #[serde(flatten)]
    artifacts: NodeArtifacts,
    /// `virt-install` and its arguments.
    virt_install: Vec<String>,
}

pub fn run(
    ctx: &Context,
    host: &Hypervisor,
    nodes: &[PlannedNode],
    accel: Accel,
) -> Result<ExitCode> {
    let (prepared, mut failed) = prepare_all(ctx, host, nodes, accel);
    // A lone failure before anything was prepared ends the command like any other error
    // (with its own exit code: 2 for bad input such as a missing ssh key).
    if prepared.is_empty() && failed.len() == 1 {
        return Err(failed.remove(0).into());
    }
    for e in &failed {
        eprintln!("vnode: {e}");
    }
    let code = match failed.first() {
        None => ExitCode::SUCCESS,
        // Bad input (2) only when every failure was bad input, as for a batch of images.
        Some(e) if failed.iter().all(|f| f.exit_code() == e.exit_code()) => {
            ExitCode::from(e.exit_code())
        }
        Some(_) => ExitCode::from(EXIT_FAILED),
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "virt_type": accel.virt_type(), "nodes": prepared }));
        return Ok(code);
    }
    print_prepared(host, nodes, &prepared, !failed.is_empty());
    Ok(code)
}

/// Prepares every node (each osinfo note said once); the prepared ones with their
/// virt-install command, and the failures.
fn prepare_all(
    ctx: &Context,
    host: &Hypervisor,
    nodes: &[PlannedNode],
    accel: Accel,
) -> (Vec<Prepared>, Vec<NodeError>) {
    let mut prepared = Vec::with_capacity(nodes.len());
    let mut notes: Vec<String> = Vec::new();
    let mut failed = Vec::new();
    for n in nodes {
        let a = match node::prepare(
            &ctx.config,
            n,
            &host.node_paths(&n.name()),
            &host.known_hosts(),
            None,
        ) {
            Ok(a) => a,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        if let Some(note) = &a.osinfo.note
            && !notes.contains(note)
        {
            eprintln!("vnode: {note}");
            notes.push(note.clone());
        }
        let mut command = vec!["virt-install".to_string()];
        command.extend(
            stages::virt_install(host, n, &a, accel, &ctx.config.virt_install_args)
                .argv()
                .into_iter()
                .map(|s| s.to_string_lossy().into_owned()),
        );
        prepared.push(Prepared {
            artifacts: a,
            virt_install: command,
        });
    }
    (prepared, failed)
}

/// Each prepared node's files and command, then a summary (and the nodes not prepared).
fn print_prepared(
    host: &Hypervisor,
    nodes: &[PlannedNode],
    prepared: &[Prepared],
    any_failed: bool,
) {
    for p in prepared {
        let a = &p.artifacts;
        println!("{}  {}", a.name, a.dir.display());
        println!("  disk      {}", a.overlay.display());
        println!("  seed      {}", a.seed.display());
        println!("  console   {}", a.console_log.display());
        println!("  metadata  {}", a.metadata.display());
        println!("  host key  {}", a.host_public_key);
        println!("  {}", crate::text::shell::join(&p.virt_install));
    }
    println!(
        "(prepared {} node(s); no VM was defined; host keys are in {})",
        prepared.len(),
        host.known_hosts().display()
    );
    if any_failed {
        let names: Vec<String> = nodes
            .iter()
            .map(|n| n.name())
            .filter(|name| !prepared.iter().any(|p| &p.artifacts.name == name))
            .collect();
        println!("(not prepared, see above: {})", names.join(", "));
    }
}
