//! The concurrent spawn pipeline. For the whole command: preflight (images cached, libvirt, networks,
//! bridges). Then per node, all nodes at once: existing domain (left alone, or replaced with
//! --force) → artifacts → virt-install → private lease → sshd banner → login with the pinned host
//! key → cloud-init done → facts. Then a report, and exit 0 only when every node is ready.

pub mod preflight;
pub mod progress;
pub mod ready;
pub mod record;
pub mod report;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::accel;
use crate::cli::{SpawnArgs, WaitOn};
use crate::config::{Config, VirtType};
use crate::context::Context;
use crate::error::{EXIT_INTERRUPTED, EXIT_NOT_READY, Error, Result};
use crate::libvirt::virsh::{Lease, Virsh};
use crate::mac::Nic;
use crate::node::{self, BaseImage};
use crate::spec::NodeRequest;
use crate::ssh::ClientKey;
use progress::{NodeLine, Progress, Stage};
use ready::Leases;
use report::{NodeReport, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("this host is not ready for vnode:\n  {}", .0.join("\n  "))]
    Preflight(Vec<String>),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl SpawnError {
    pub fn exit_code(&self) -> u8 {
        crate::error::EXIT_FAILED
    }
}

/// What every node's bring-up shares.
struct Shared {
    config: Config,
    virsh: Virsh,
    client: ClientKey,
    leases: Leases,
    virt_type: VirtType,
    timeout: Duration,
    wait_on: WaitOn,
    force: bool,
    start: Instant,
}

/// How nodes are brought up (the spawn command's flags, for callers other than the command).
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    pub virt_type: VirtType,
    pub timeout: Duration,
    pub wait_on: WaitOn,
    pub force: bool,
    /// Pull missing catalog images first (spawn never downloads otherwise).
    pub pull: bool,
    /// Print the virt type decision and per-node progress on stderr.
    pub verbose: bool,
}

impl SpawnOptions {
    pub fn from_args(ctx: &Context, args: &SpawnArgs) -> SpawnOptions {
        SpawnOptions {
            virt_type: args.virt_type.unwrap_or(ctx.config.virt_type),
            timeout: Duration::from_secs(args.timeout),
            wait_on: args.wait_on,
            force: args.force,
            pull: args.pull,
            verbose: !ctx.json && !crate::terminal::quiet(),
        }
    }
}

/// `vnode spawn`: bring the nodes up, print the report, exit 0 only when all are ready.
pub fn run(ctx: &Context, args: &SpawnArgs, requests: Vec<NodeRequest>) -> Result<ExitCode> {
    let reports = spawn_nodes(ctx, &SpawnOptions::from_args(ctx, args), requests)?;
    report::print(&reports, ctx.json);
    let code = if reports.iter().any(|r| r.outcome == Outcome::Interrupted) {
        EXIT_INTERRUPTED
    } else if reports.iter().all(|r| r.outcome == Outcome::Ready) {
        0
    } else {
        EXIT_NOT_READY
    };
    Ok(ExitCode::from(code))
}

/// Brings nodes up concurrently and reports on each; errors only for whole-command problems
/// (an image not cached, libvirt unreachable, ...), before anything is created.
pub fn spawn_nodes(
    ctx: &Context,
    options: &SpawnOptions,
    requests: Vec<NodeRequest>,
) -> Result<Vec<NodeReport>> {
    // Offline-first: every image must be cached before libvirt is touched.
    if options.pull {
        preflight::pull_missing(ctx, &requests)?;
    }
    let images = preflight::base_images(ctx, &requests)?;
    let accel = accel::resolve(options.virt_type);
    if options.verbose {
        eprintln!(
            "vnode: {} node(s); virt type {} ({})",
            requests.len(),
            accel.virt_type,
            accel.reason
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(SpawnError::Runtime)?;
    runtime.block_on(spawn_all(ctx, options, requests, images, accel.virt_type))
}

async fn spawn_all(
    ctx: &Context,
    options: &SpawnOptions,
    requests: Vec<NodeRequest>,
    images: Vec<BaseImage>,
    virt_type: VirtType,
) -> Result<Vec<NodeReport>> {
    let virsh = Virsh::new(&ctx.config.libvirt_uri);
    preflight::host(&virsh, &requests)
        .await
        .map_err(SpawnError::Preflight)?;
    let client = ClientKey::load_or_create(&ctx.config.state_dir).map_err(SpawnError::from)?;
    let leases = Leases::new(virsh.clone());
    // Leases that exist before any domain is created are not ours (see Leases::wait_new).
    let mut before: HashMap<String, Vec<Lease>> = HashMap::new();
    for r in &requests {
        if !before.contains_key(&r.pool.network) {
            let l = leases.current(&r.pool.network).await.map_err(Error::from)?;
            before.insert(r.pool.network.clone(), l);
        }
    }
    let shared = Arc::new(Shared {
        config: ctx.config.clone(),
        virsh,
        client,
        leases,
        virt_type,
        timeout: options.timeout,
        wait_on: options.wait_on,
        force: options.force,
        start: Instant::now(),
    });
    let progress = Progress::new(shared.start);
    let mut tasks = JoinSet::new();
    let mut trackers = Vec::new();
    for (request, image) in requests.into_iter().zip(images) {
        let report = Arc::new(Mutex::new(NodeReport::new(
            &request.name.to_string(),
            &request.image.name,
        )));
        trackers.push((request.name.to_string(), report.clone()));
        let line = progress.node(&request.name.to_string());
        let baseline = before
            .get(&request.pool.network)
            .cloned()
            .unwrap_or_default();
        let shared = shared.clone();
        tasks.spawn(
            async move { bring_up(&shared, &request, &image, &baseline, &line, &report).await },
        );
    }
    let interrupted = tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for (name, report) in &trackers {
            let stage = report.lock().expect("not poisoned").stage;
            if report.lock().expect("not poisoned").outcome == Outcome::Ready {
                continue;
            }
            // A node whose domain was never defined must not leave files behind.
            if stage <= Stage::Defining && matches!(shared.virsh.domain_state(name).await, Ok(None))
            {
                let _ = node::remove_if_present(&shared.config, name);
            }
            let mut r = report.lock().expect("not poisoned");
            r.outcome = Outcome::Interrupted;
            r.seconds = shared.start.elapsed().as_secs_f64();
        }
    }
    Ok(trackers
        .into_iter()
        .map(|(_, r)| r.lock().expect("not poisoned").clone())
        .collect())
}

/// Brings one node up, recording its progress in `report` (which is also the result).
async fn bring_up(
    shared: &Shared,
    request: &NodeRequest,
    base: &BaseImage,
    baseline: &[Lease],
    line: &NodeLine,
    report: &Mutex<NodeReport>,
) {
    let set = |stage: Stage, detail: &str| {
        let mut r = report.lock().expect("not poisoned");
        r.stage = stage;
        r.stages.push((stage, shared.start.elapsed().as_secs_f64()));
        line.stage(stage, detail);
    };
    let result = bring_up_inner(shared, request, base, baseline, &set, report).await;
    let mut r = report.lock().expect("not poisoned");
    r.seconds = shared.start.elapsed().as_secs_f64();
    match result {
        Ok(Outcome::Ready) => {
            r.outcome = Outcome::Ready;
            r.stage = Stage::Ready;
            let at = r.seconds;
            r.stages.push((Stage::Ready, at));
            line.finish(&format!("ready {}", r.os.clone().unwrap_or_default()));
        }
        Ok(outcome) => {
            r.outcome = outcome;
            line.finish(r.error.as_deref().unwrap_or("left alone"));
        }
        Err(e) => {
            r.outcome = Outcome::Failed;
            r.console_tail = report::console_tail(
                &node::node_dir(&shared.config.state_dir, &r.name).join(node::CONSOLE_LOG),
                15,
            );
            let hint = if r.console_tail.is_empty() && r.stage >= Stage::Booting {
                "; the node printed nothing on its serial console: is its image bootable?"
            } else {
                ""
            };
            line.finish(&format!("failed at {}: {e}", r.stage));
            r.error = Some(format!("failed at stage {}: {e}{hint}", r.stage));
        }
    }
}

async fn bring_up_inner(
    shared: &Shared,
    request: &NodeRequest,
    base: &BaseImage,
    baseline: &[Lease],
    set: &impl Fn(Stage, &str),
    report: &Mutex<NodeReport>,
) -> std::result::Result<Outcome, String> {
    let name = request.name.to_string();
    let number = request.name.number;
    let deadline = Instant::now() + shared.timeout;

    if shared
        .virsh
        .domain_state(&name)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        if !shared.force {
            report.lock().expect("not poisoned").error = Some(format!(
                "{name} already exists and was left alone; use --force to replace it"
            ));
            return Ok(Outcome::Exists);
        }
        set(Stage::Replacing, "");
        shared
            .virsh
            .destroy(&name)
            .await
            .map_err(|e| e.to_string())?;
        shared
            .virsh
            .undefine(&name)
            .await
            .map_err(|e| e.to_string())?;
        node::remove_if_present(&shared.config, &name).map_err(|e| e.to_string())?;
    }

    set(Stage::Preparing, "");
    let base = base.clone();
    let artifacts = {
        let (config, request, virt_type) =
            (shared.config.clone(), request.clone(), shared.virt_type);
        tokio::task::spawn_blocking(move || node::prepare(&config, &request, &base, virt_type))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };

    set(Stage::Defining, "");
    if let Err(e) = virt_install(&artifacts.virt_install.argv()).await {
        // The domain was not created: nothing of the node may stay behind.
        let _ = node::remove_if_present(&shared.config, &name);
        return Err(e);
    }

    set(Stage::Booting, "");
    let private_mac = request.pool.mac(Nic::Private, number);
    let public_mac = request.pool.mac(Nic::Public, number);
    let target: Ipv4Addr = match shared.wait_on {
        WaitOn::Private => {
            let ip = shared
                .leases
                .wait_new(&request.pool.network, private_mac, baseline, deadline)
                .await?;
            report.lock().expect("not poisoned").private_ip = Some(ip);
            ip
        }
        WaitOn::Public => public_target(request).await?,
    };
    let known_hosts = shared.config.state_dir.join("known_hosts");
    let _ = node::known_hosts::add_address(&known_hosts, &name, &target.to_string());

    set(Stage::Lease, &target.to_string());
    let addr = SocketAddr::from((target, 22));
    ready::wait_banner(addr, deadline).await?;
    set(Stage::Ssh, "");
    let session =
        ready::wait_login(addr, &artifacts.host_public_key, &shared.client, deadline).await?;
    set(Stage::CloudInit, "");
    let remaining = deadline.saturating_duration_since(Instant::now());
    let out = tokio::time::timeout(remaining, session.exec(ready::FACTS_COMMAND))
        .await
        .map_err(|_| "cloud-init did not finish in time".to_string())?
        .map_err(|e| e.to_string())?;
    let mut facts = ready::parse_facts(&out.stdout);
    if facts.cloud_init != "done" {
        session.close().await;
        return Err(format!(
            "cloud-init ended with status '{}'; see `vnode ssh {name} -- cloud-init status --long`",
            facts.cloud_init
        ));
    }
    // The public NIC's DHCP may answer after cloud-init is done; give it a little while.
    let public_wait = Instant::now() + Duration::from_secs(20);
    while facts.address_of(public_mac).is_none() && Instant::now() < public_wait.min(deadline) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(o) = session.exec(ready::ADDRESSES_COMMAND).await {
            facts.addresses = ready::parse_facts(&o.stdout).addresses;
        }
    }
    session.close().await;
    let mut r = report.lock().expect("not poisoned");
    r.private_ip = facts.address_of(private_mac).or(r.private_ip);
    r.public_ip = facts.address_of(public_mac);
    r.os = facts.pretty_name.clone();
    r.hostname = Some(facts.hostname.clone());
    for ip in [r.private_ip, r.public_ip].into_iter().flatten() {
        let _ = node::known_hosts::add_address(&known_hosts, &name, &ip.to_string());
    }
    if facts.hostname != name {
        return Err(format!(
            "the node calls itself '{}', not {name}: cloud-init did not apply vnode's seed",
            facts.hostname
        ));
    }
    let record = record::ReadyRecord {
        name: name.clone(),
        image: request.image.name.clone(),
        private_ip: r.private_ip,
        public_ip: r.public_ip,
        os: r.os.clone(),
        ready_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    record
        .save(&shared.config.state_dir)
        .map_err(|e| format!("cannot record the node's addresses: {e}"))?;
    Ok(Outcome::Ready)
}

/// The address to wait on with `--wait-on public`: the plan's address, else the DNS name's.
async fn public_target(request: &NodeRequest) -> std::result::Result<Ipv4Addr, String> {
    let n = request.name.number;
    if let Some(ip) = request.pool.public_ip(n) {
        return Ok(ip);
    }
    let host = request
        .pool
        .fqdn(n)
        .unwrap_or_else(|| request.name.to_string());
    let addrs = tokio::net::lookup_host((host.as_str(), 22)).await.map_err(|e| {
        format!("--wait-on public: {host} does not resolve ({e}); set the pool's public_subnet or domain")
    })?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            _ => None,
        })
        .next()
        .ok_or_else(|| format!("--wait-on public: {host} has no IPv4 address"))
}

/// Runs virt-install. Parallel virt-install runs can race on libvirt storage pools ("asynchronous
/// jobs running"); vnode hands it existing files, which avoids most of that, and retries the rest.
async fn virt_install(argv: &[std::ffi::OsString]) -> std::result::Result<(), String> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=5 {
        let out = tokio::process::Command::new("virt-install")
            .args(argv)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run virt-install ({e}); install the virtinst package"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("asynchronous jobs running") && attempt < 5 {
            tokio::time::sleep(delay).await;
            delay *= 2;
            continue;
        }
        return Err(format!(
            "virt-install failed: {}",
            stderr.lines().last().unwrap_or("(no message)")
        ));
    }
    unreachable!("the loop returns")
}
