//! `vnode [spawn] SPECS...`: resolve specs into planned nodes, then print the dry run, prepare
//! the artifacts (`--prepare-only`), or spawn and print the report.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::SpawnArgs;
use crate::config::FreshStates;
use crate::config::VirtType;
use crate::context::Context;
use crate::error::{EXIT_INTERRUPTED, EXIT_NOT_READY, Result};
use crate::fresh_state::store::{StatePaths, StateRecord};
use crate::hosts::Hosts;
use crate::hosts::capabilities::HostFacts;
use crate::hosts::placement::Wish;
use crate::images::Cache;
use crate::libvirt::virt_install::Accel;
use crate::plan::planned_node::{self, HostName, PlannedNode};
use crate::plan::spec::{self, NodeRequest};
use crate::process::runtime::{self, Flavor};
use crate::spawn::report::{CloudInitState, FreshHow, NodeReport, Outcome};
use crate::spawn::slots::BootCapChoice;
use crate::spawn::{self, FreshOptions, SpawnOptions, Target};
use crate::text::table::Table;

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
    host: &HostName,
    requests: Vec<NodeRequest>,
    pull: bool,
) -> Result<Vec<PlannedNode>> {
    let cache = Cache::open(&ctx.config.cache_dir)?;
    // Offline-first: every image must be cached before libvirt is touched.
    if pull {
        let images: Vec<_> = requests.iter().map(|r| &r.image).collect();
        runtime::block_on(
            Flavor::CurrentThread,
            crate::images::pull_missing(&cache, &ctx.catalog, &images, ctx.config.max_image_mib),
        )??;
    }
    Ok(planned_node::plan_cached(
        requests,
        &cache,
        &ctx.catalog,
        host,
    )?)
}

/// The virt type for this command, resolved (never auto), said on stderr.
pub fn accel(ctx: &Context, requested: Option<VirtType>) -> Accel {
    let resolved = crate::hosts::kvm_probe::resolve(requested.unwrap_or(ctx.config.virt_type));
    if !crate::text::terminal::quiet() {
        eprintln!(
            "vnode: virt type {} ({})",
            resolved.virt_type, resolved.reason
        );
    }
    resolved.accel()
}

/// Where the nodes go: with `[[hosts]]`, every host is asked what it has (all at once) and the
/// nodes are placed; the hosts' facts come back for the virt type. Without, this host.
fn place(
    ctx: &Context,
    args: &SpawnArgs,
    hosts: &Hosts,
    nodes: &mut [PlannedNode],
    pins: &[Option<String>],
) -> Result<Vec<HostFacts>> {
    if !hosts.configured() {
        if let Some(h) = args.host.as_ref().or(pins.iter().flatten().next()) {
            return Err(crate::hosts::HostsError::NoHosts { name: h.clone() }.into());
        }
        return Ok(Vec::new());
    }
    let facts = runtime::block_on(
        Flavor::MultiThread,
        crate::hosts::capabilities::gather_all(hosts.all(), &ctx.config.pools),
    )?;
    // A node with a fresh state goes back to the host that holds it, where it can be restored
    // (unless pinned elsewhere, or that host cannot take it).
    let state_hosts: Vec<Option<String>> = nodes
        .iter()
        .map(|n| {
            let paths = StatePaths::new(&ctx.config.state_dir, &n.name());
            StateRecord::load(&paths)
                .ok()
                .and_then(|r| r.on_host().map(String::from))
        })
        .collect();
    let wishes: Vec<Wish> = pins
        .iter()
        .zip(&state_hosts)
        .map(|(p, s)| Wish {
            pinned: p.as_deref(),
            state_on: s.as_deref(),
        })
        .collect();
    crate::hosts::placement::place(nodes, &wishes, args.host.as_deref(), &facts)?;
    Ok(facts)
}

pub fn run(ctx: &Context, args: &SpawnArgs) -> Result<ExitCode> {
    let fresh = fresh_options(ctx, args);
    Ok(match spawn_reports(ctx, args, fresh)? {
        Spawned::Printed(code) => code,
        Spawned::Nodes(reports) => {
            print_report(&reports, ctx.json);
            print_kept(&reports);
            ExitCode::from(exit_code(&reports))
        }
    })
}

/// What spawn's flags and the config say about fresh states.
pub fn fresh_options(ctx: &Context, args: &SpawnArgs) -> FreshOptions {
    FreshOptions {
        restore: !args.cold && !args.no_fresh_states,
        save: if args.no_fresh_states {
            FreshStates::Off
        } else if args.fresh_states {
            FreshStates::On
        } else {
            ctx.config.fresh_states
        },
        warm: false,
        reset: false,
        cap_bytes: ctx.config.fresh_states_cap_gib << 30,
    }
}

/// What a spawn came to: the nodes' reports, or a dry run or `--prepare-only` that printed its
/// own result.
pub enum Spawned {
    Nodes(Vec<NodeReport>),
    Printed(ExitCode),
}

/// Spawns the nodes of `args` with `fresh`: the reports, not yet printed (reset and warm print
/// them too, after their own work).
pub fn spawn_reports(ctx: &Context, args: &SpawnArgs, fresh: FreshOptions) -> Result<Spawned> {
    let requests = requests(ctx, args)?;
    let hosts = Hosts::from_config(&ctx.config).without(&args.skip_host)?;
    let pins: Vec<Option<String>> = requests.iter().map(|r| r.host.clone()).collect();
    let default = hosts
        .all()
        .first()
        .map_or_else(HostName::local, |h| h.name().clone());
    if args.dry_run {
        let virt_type = args.virt_type.unwrap_or(ctx.config.virt_type);
        let mut nodes = planned_node::plan(requests, None, &ctx.catalog, &default);
        place(ctx, args, &hosts, &mut nodes, &pins)?;
        dry_run(ctx, &nodes, virt_type, hosts.configured());
        return Ok(Spawned::Printed(ExitCode::SUCCESS));
    }
    let mut nodes = planned_nodes(ctx, &default, requests, args.pull)?;
    let facts = place(ctx, args, &hosts, &mut nodes, &pins)?;
    if args.prepare_only {
        if hosts.configured() {
            return Err(crate::error::Error::Usage(
                "--prepare-only writes a node's files for this host's libvirt; with [[hosts]] \
                 use --dry-run to see the placement"
                    .into(),
            ));
        }
        let code = super::prepare::run(ctx, &hosts.all()[0], &nodes, accel(ctx, args.virt_type))?;
        return Ok(Spawned::Printed(code));
    }
    if !ctx.json && !crate::text::terminal::quiet() {
        eprintln!("vnode: {} node(s){}", nodes.len(), spread(&nodes, &hosts));
    }
    let targets = targets(ctx, args, &hosts, &facts);
    let options = SpawnOptions {
        timeout: std::time::Duration::from_secs(args.ready.timeout),
        wait_on: args.ready.wait_on,
        wait: args.ready.wait,
        force: args.force,
        libvirt_grace: std::time::Duration::from_secs(
            args.libvirt_grace.unwrap_or(ctx.config.libvirt_grace_secs),
        ),
        public_optional: args.ready.public_optional,
        parallel: BootCapChoice {
            flag: args.parallel,
            config: ctx.config.parallel_boots,
        },
        fresh,
    };
    let reports = runtime::block_on(
        Flavor::MultiThread,
        spawn::spawn(&ctx.config, &targets, &options, nodes),
    )??;
    Ok(Spawned::Nodes(reports))
}

/// Each host with the virt type its domains get (said on stderr).
fn targets(ctx: &Context, args: &SpawnArgs, hosts: &Hosts, facts: &[HostFacts]) -> Vec<Target> {
    if !hosts.configured() {
        return vec![Target {
            host: hosts.all()[0].clone(),
            accel: accel(ctx, args.virt_type),
            cpus: None,
        }];
    }
    let requested = args.virt_type.unwrap_or(ctx.config.virt_type);
    hosts
        .all()
        .iter()
        .map(|h| {
            let known = facts.iter().find(|f| f.name == h.name().as_str());
            let offered = known.map_or(&[][..], |f| f.virt_types.as_slice());
            let resolved =
                crate::hosts::kvm_probe::resolve_remote(requested, h.name().as_str(), offered);
            Target {
                host: h.clone(),
                accel: resolved.accel(),
                // The placement asked already: no second `virsh nodeinfo` per host.
                cpus: known.and_then(|f| f.cpus),
            }
        })
        .collect()
}

/// ", 2 on h1, 2 on h2" with `[[hosts]]`.
fn spread(nodes: &[PlannedNode], hosts: &Hosts) -> String {
    if !hosts.configured() {
        return String::new();
    }
    let counts: Vec<String> = hosts
        .all()
        .iter()
        .filter_map(|h| {
            let n = nodes.iter().filter(|n| &n.host == h.name()).count();
            (n > 0).then(|| format!("{n} on {}", h.name()))
        })
        .collect();
    format!(": {}", counts.join(", "))
}

/// 0 only when every node is ready; 130 after Ctrl-C; 3 otherwise.
pub fn exit_code(reports: &[NodeReport]) -> u8 {
    if reports.iter().any(|r| r.outcome == Outcome::Interrupted) {
        EXIT_INTERRUPTED
    } else if reports
        .iter()
        .all(|r| matches!(r.outcome, Outcome::Ready | Outcome::Warm))
    {
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

fn dry_run(ctx: &Context, nodes: &[PlannedNode], virt_type: VirtType, several: bool) {
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
        "HOST",
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
            n.host.to_string(),
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
    let t = if several { t } else { t.without_column("HOST") };
    print!("{}", t.render());
    println!("(dry run: nothing was created; virt type {virt_type})");
}

/// After Ctrl-C: what was kept, and the one command that removes it (on stderr, beside --json).
pub fn print_kept(reports: &[NodeReport]) {
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
    let several = reports.iter().any(|r| r.host.is_some());
    let mut t = Table::new([
        "NODE",
        "HOST",
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
            Outcome::Ready => match r.fresh.as_ref().map(|f| f.how) {
                Some(how @ (FreshHow::Restored | FreshHow::Saved)) => format!("ready ({how})"),
                _ => "ready".to_string(),
            },
            Outcome::Exists => "exists".to_string(),
            Outcome::Warm => "warm".to_string(),
            Outcome::Failed => format!("failed at {}", r.stage),
            Outcome::Interrupted => format!("interrupted at {}", r.stage),
        };
        t.row([
            r.name.clone(),
            dash(r.host.clone().filter(|_| several)),
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
    let t = if several { t } else { t.without_column("HOST") };
    print!("{}", t.render());
    for r in reports {
        if let Some(note) = r.fresh.as_ref().and_then(|f| f.note.as_ref()) {
            println!("{}: {note}", r.name);
        }
    }
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
