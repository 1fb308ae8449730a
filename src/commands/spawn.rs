//! `vnode [spawn] SPECS...`: resolve specs into planned nodes, then print the dry run, prepare
//! the artifacts (`--prepare-only`), or spawn and print the report.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::SpawnArgs;
use crate::config::VirtType;
use crate::context::Context;
use crate::error::{EXIT_INTERRUPTED, EXIT_NOT_READY, Result};
use crate::hypervisor::Hypervisor;
use crate::images::Cache;
use crate::libvirt::virt_install::Accel;
use crate::planned::{self, PlannedNode};
use crate::runtime::{self, Flavor};
use crate::spawn::report::{CloudInitState, NodeReport, Outcome};
use crate::spawn::{self, SpawnOptions};
use crate::spec::{self, NodeRequest};
use crate::table::Table;

/// Resolves the command's specs against the config, the catalog and the cache.
fn requests(ctx: &Context, args: &SpawnArgs) -> Result<Vec<NodeRequest>> {
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

/// The planned nodes with their cached base images (pulled first with `--pull`).
fn planned_nodes(
    ctx: &Context,
    host: &Hypervisor,
    requests: Vec<NodeRequest>,
    pull: bool,
) -> Result<Vec<PlannedNode>> {
    let cache = Cache::open(&ctx.config.cache_dir)?;
    // Offline-first: every image must be cached before libvirt is touched.
    if pull {
        let images: Vec<_> = requests.iter().map(|r| &r.image).collect();
        runtime::block_on(
            Flavor::CurrentThread,
            crate::images::pull_missing(&cache, &ctx.catalog, &images),
        )??;
    }
    Ok(planned::plan_cached(
        requests,
        &cache,
        &ctx.catalog,
        host.name(),
    )?)
}

/// The virt type for this command, resolved (never auto), said on stderr.
pub fn accel(ctx: &Context, requested: Option<VirtType>) -> Accel {
    let resolved = crate::accel::resolve(requested.unwrap_or(ctx.config.virt_type));
    if !crate::terminal::quiet() {
        eprintln!(
            "vnode: virt type {} ({})",
            resolved.virt_type, resolved.reason
        );
    }
    resolved.accel()
}

pub fn run(ctx: &Context, args: &SpawnArgs) -> Result<ExitCode> {
    let requests = requests(ctx, args)?;
    let host = Hypervisor::local(&ctx.config);
    if args.dry_run {
        let virt_type = args.virt_type.unwrap_or(ctx.config.virt_type);
        dry_run(
            ctx,
            &planned::plan(requests, None, &ctx.catalog, host.name()),
            virt_type,
        );
        return Ok(ExitCode::SUCCESS);
    }
    let nodes = planned_nodes(ctx, &host, requests, args.pull)?;
    if args.prepare_only {
        return super::prepare::run(ctx, &host, &nodes, accel(ctx, args.virt_type));
    }
    if !ctx.json && !crate::terminal::quiet() {
        eprintln!("vnode: {} node(s)", nodes.len());
    }
    let options = SpawnOptions {
        accel: accel(ctx, args.virt_type),
        timeout: std::time::Duration::from_secs(args.timeout),
        wait_on: args.wait_on,
        wait: args.wait,
        force: args.force,
        libvirt_grace: std::time::Duration::from_secs(
            args.libvirt_grace.unwrap_or(ctx.config.libvirt_grace_secs),
        ),
        public_optional: args.public_optional,
    };
    let reports = runtime::block_on(
        Flavor::MultiThread,
        spawn::spawn(&ctx.config, &host, &options, nodes),
    )??;
    print_report(&reports, ctx.json);
    print_kept(&reports);
    Ok(ExitCode::from(exit_code(&reports)))
}

/// 0 only when every node is ready; 130 after Ctrl-C; 3 otherwise.
pub fn exit_code(reports: &[NodeReport]) -> u8 {
    if reports.iter().any(|r| r.outcome == Outcome::Interrupted) {
        EXIT_INTERRUPTED
    } else if reports.iter().all(|r| r.outcome == Outcome::Ready) {
        0
    } else {
        EXIT_NOT_READY
    }
}

/// What `--dry-run` shows for one node.
#[derive(Serialize)]
struct DryRunNode<'a> {
    #[serde(flatten)]
    node: &'a PlannedNode,
    virt_type: VirtType,
}

fn dry_run(ctx: &Context, nodes: &[PlannedNode], virt_type: VirtType) {
    if ctx.json {
        let nodes: Vec<DryRunNode> = nodes
            .iter()
            .map(|node| DryRunNode { node, virt_type })
            .collect();
        ctx.print_json(&serde_json::json!({ "nodes": nodes }));
        return;
    }
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
    for n in nodes {
        t.row([
            n.name(),
            n.image.to_string(),
            n.id.public_mac.to_string(),
            n.id.private_mac.to_string(),
            n.id.bridge.clone(),
            n.id.network.clone(),
            format!("{} MiB", n.resources.memory_mib),
            n.resources.vcpus.to_string(),
            format!("{} GiB", n.resources.disk_gib),
        ]);
    }
    print!("{}", t.render());
    println!("(dry run: nothing was created; virt type {virt_type})");
}

/// After Ctrl-C: what was kept, and the one command that removes it (on stderr, beside --json).
fn print_kept(reports: &[NodeReport]) {
    let kept: Vec<&str> = reports
        .iter()
        .filter(|r| r.kept)
        .map(|r| r.name.as_str())
        .collect();
    if !kept.is_empty() {
        eprintln!(
            "vnode: interrupted; kept {} (domain and files); remove with `vnode destroy {}`",
            kept.join(", "),
            kept.join(" ")
        );
    }
}

/// The spawn's end: a table (or `--json`), then each failure with its console lines.
pub fn print_report(reports: &[NodeReport], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "nodes": reports }))
                .expect("serializes")
        );
        return;
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut t = Table::new([
        "NODE",
        "IMAGE",
        "STATE",
        "PRIVATE IP",
        "PUBLIC IP",
        "OS",
        "SSH",
        "CLOUD-INIT",
        "SECONDS",
    ]);
    let secs = |s: Option<f64>| s.map_or_else(|| "-".into(), |s| format!("{s:.1}"));
    for r in reports {
        let state = match r.outcome {
            Outcome::Ready => "ready".to_string(),
            Outcome::Exists => "exists".to_string(),
            Outcome::Failed => format!("failed at {}", r.stage),
            Outcome::Interrupted => format!("interrupted at {}", r.stage),
        };
        t.row([
            r.name.clone(),
            r.image.clone(),
            state,
            dash(r.private_ip.map(|i| i.to_string())),
            dash(r.public_ip.map(|i| i.to_string())),
            dash(r.os.clone()),
            secs(r.ssh_seconds),
            match (r.cloud_init_seconds, r.cloud_init) {
                (Some(s), _) => format!("{s:.1}"),
                (None, CloudInitState::NotWaited) if r.outcome == Outcome::Ready => {
                    "running".into()
                }
                _ => "-".into(),
            },
            format!("{:.1}", r.seconds),
        ]);
    }
    print!("{}", t.render());
    for r in reports.iter().filter(|r| r.outcome != Outcome::Ready) {
        if let Some(e) = &r.error {
            println!("\n{}: {e}", r.name);
        }
        if !r.console_tail.is_empty() {
            println!("  last console lines of {}:", r.name);
            for l in &r.console_tail {
                println!("  | {l}");
            }
        }
    }
}
