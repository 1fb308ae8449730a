//! The concurrent spawn pipeline. For the whole command: preflight (libvirt, networks, bridges).
//! Then per node, all nodes at once, the stages of [`stages`]: existing domain (left alone, or
//! replaced with --force) → artifacts → a boot slot of its host ([`slots`]) → virt-install → private lease → sshd banner → login with
//! the pinned host key → cloud-init done → facts. The result is a report per node; printing it
//! and choosing the exit code is the command's business.

mod firmware;
pub mod guest_facts;
pub mod leases;
pub mod live_status;
pub mod preflight;
pub mod report;
pub mod slots;
pub mod stages;
pub mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::Config;
use crate::hosts::hypervisor::Hypervisor;
use crate::libvirt::virsh::Lease;
use crate::libvirt::virt_install::Accel;
use crate::node::known_hosts_file;
use crate::node::ready::ReadyRecord;
use crate::plan::planned_node::{HostName, PlannedNode};
use crate::ssh::ClientKey;
use leases::Leases;
use live_status::{NodeLine, Progress, Stage};
use report::{CloudInitState, NodeReport, Outcome};
use slots::{BootCapChoice, CapSource, Slots};
use stages::StageError;
use watch::Domains;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("not ready for vnode, nothing was created:\n  {}", .0.join("\n  "))]
    Preflight(Vec<String>),
    #[error(transparent)]
    Ssh(Box<crate::ssh::SshError>),
    #[error(transparent)]
    Libvirt(#[from] crate::libvirt::LibvirtError),
    #[error("cannot catch Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

impl From<crate::ssh::SshError> for SpawnError {
    fn from(e: crate::ssh::SshError) -> SpawnError {
        SpawnError::Ssh(Box::new(e))
    }
}

impl SpawnError {
    pub fn exit_code(&self) -> u8 {
        crate::exit::EXIT_FAILED
    }
}

/// Which moment a node is ready at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitFor {
    /// The first login that passes the pinned host key, with hostname and addresses read.
    Ssh,
    /// cloud-init finished without error.
    CloudInit,
    /// cloud-init when its later stages have work: the user's (packages, runcmd, extra users), or
    /// vnode's own route-metric fix for NetworkManager guests (and guests whose renderer is not
    /// known); else ssh.
    #[default]
    Auto,
}

impl WaitFor {
    /// Does `node` wait for cloud-init's end? With `Auto`: when cloud-init's config and final
    /// stages have work. vnode's own documents need only the init stage, which is over before
    /// sshd starts (hostname, keys, network) — except on NetworkManager guests, where a runcmd
    /// puts the route metrics in place that cloud-init's renderer leaves out.
    pub fn waits_for_cloud_init(self, config: &Config, node: &PlannedNode) -> bool {
        use crate::images::catalog::Renderer;
        match self {
            WaitFor::Ssh => false,
            WaitFor::CloudInit => true,
            WaitFor::Auto => {
                !config.cloud_init.packages.is_empty()
                    || !config.cloud_init.runcmd.is_empty()
                    || !config.users.is_empty()
                    || matches!(node.renderer, None | Some(Renderer::NetworkManager))
            }
        }
    }
}

/// Which address readiness is checked on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitOn {
    /// The private address from libvirt's lease.
    #[default]
    Private,
    /// The plan's (or DNS's) public address.
    Public,
}

/// A host nodes are brought up on, with the virt type its domains get.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: Hypervisor,
    pub accel: Accel,
    /// Its CPUs when already known (a `[[hosts]]` host's facts); else `--parallel auto` asks.
    pub cpus: Option<u32>,
}

/// How nodes are brought up.
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// How long each node may take to become ready.
    pub timeout: Duration,
    pub wait_on: WaitOn,
    /// Which moment counts as ready.
    pub wait: WaitFor,
    /// Replace existing domains of the same names.
    pub force: bool,
    /// How long the waits ride out libvirt not answering.
    pub libvirt_grace: Duration,
    /// A node whose public NIC gets no address is still ready.
    pub public_optional: bool,
    /// How many nodes may boot at once on each host (`--parallel`, the config's).
    pub parallel: BootCapChoice,
}

/// One host's part of a spawn.
struct HostRun {
    host: Hypervisor,
    accel: Accel,
    leases: Leases,
    domains: Domains,
    /// Its boot slots: each host's CPU is its own.
    slots: Slots,
    /// What set their number.
    cap_source: CapSource,
    /// Leases that existed before any domain was created, per network (not ours).
    before: HashMap<String, Vec<Lease>>,
}

/// What every node's bring-up shares.
struct Shared {
    config: Arc<Config>,
    hosts: HashMap<HostName, HostRun>,
    /// Domains that exist before the spawn, by name, with the host they are on.
    existing: HashMap<String, HostName>,
    client: ClientKey,
    options: SpawnOptions,
}

/// Brings nodes up concurrently and reports on each; errors only for whole-command problems
/// (a host's libvirt unreachable, a network inactive, ...), before anything is created. Every
/// node's `host` must be one of `targets`. Ctrl-C stops the waits: each node is then reported as
/// interrupted, and nodes whose domain was never defined leave no files behind.
pub async fn spawn(
    config: &Config,
    targets: &[Target],
    options: &SpawnOptions,
    nodes: Vec<PlannedNode>,
) -> Result<Vec<NodeReport>, SpawnError> {
    // Ctrl-C is ours from here on (before anything is created): it stops the waits, and later
    // ones are answered while vnode cleans up.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(SpawnError::Signal)?;
    let used: Vec<&Target> = targets
        .iter()
        .filter(|t| nodes.iter().any(|n| &n.host == t.host.name()))
        .collect();
    let several = targets.iter().any(|t| t.host.host_config().is_some());
    let checks = used.iter().map(|t| {
        let mine: Vec<PlannedNode> = nodes
            .iter()
            .filter(|n| &n.host == t.host.name())
            .cloned()
            .collect();
        async move { preflight::host(&t.host, &mine, options.wait_on).await }
    });
    let problems: Vec<String> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .zip(&used)
        .flat_map(|(r, t)| {
            r.err().unwrap_or_default().into_iter().map(move |p| {
                if several {
                    format!(
                        "host {}: {p} (leave the host out with --host OTHER)",
                        t.host.name()
                    )
                } else {
                    p
                }
            })
        })
        .collect();
    if !problems.is_empty() {
        return Err(SpawnError::Preflight(problems));
    }
    let first = targets.first().expect("at least one host");
    let client = ClientKey::load_or_create(&first.host.client_key())?;
    let mut hosts = HashMap::new();
    let mut existing = HashMap::new();
    // Every host, also those that get no node: a node named again may exist on another one
    // (and --force removes it there).
    for t in targets {
        let virsh = t.host.virsh();
        if let Ok(names) = virsh.domains().await {
            for n in names {
                existing.entry(n).or_insert_with(|| t.host.name().clone());
            }
        }
        let leases = Leases::new(virsh.clone(), t.host.libvirt_poll());
        let here = nodes.iter().filter(|n| &n.host == t.host.name()).count();
        let (cap, cap_source) = boot_cap(options, t, here, virsh).await;
        let mut before: HashMap<String, Vec<Lease>> = HashMap::new();
        for n in nodes.iter().filter(|n| &n.host == t.host.name()) {
            if !before.contains_key(&n.id.network) {
                let l = leases.current(&n.id.network).await?;
                before.insert(n.id.network.clone(), l);
            }
        }
        hosts.insert(
            t.host.name().clone(),
            HostRun {
                host: t.host.clone(),
                accel: t.accel,
                leases,
                // A host's libvirt that goes silent fails that host's nodes, named.
                domains: Domains::new(
                    virsh.clone(),
                    t.host.uri(),
                    t.host.host_config().map(|_| t.host.name().as_str()),
                    options.libvirt_grace,
                    t.host.libvirt_poll(),
                ),
                slots: Slots::new(cap),
                cap_source,
                before,
            },
        );
    }
    let shared = Arc::new(Shared {
        config: Arc::new(config.clone()),
        hosts,
        existing,
        client,
        options: options.clone(),
    });
    let start = Instant::now();
    let progress = Progress::new(start);
    let mut tasks = JoinSet::new();
    let mut trackers = Vec::new();
    for node in nodes {
        let tracker = Arc::new(Tracker {
            report: Mutex::new(NodeReport::new(&node.name(), &node.image.name)),
            line: progress.node(&node.name()),
            start,
            files: Arc::default(),
            host: shared.hosts[&node.host].host.clone(),
        });
        tracker.update(|r| r.host = node.host.remote_name().map(String::from));
        trackers.push(tracker.clone());
        let shared = shared.clone();
        tasks.spawn(async move {
            let run = &shared.hosts[&node.host];
            let result = bring_up(&shared, run, &node, &tracker).await;
            tracker.finish(result).await;
        });
    }
    let interrupted = tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => false,
        _ = interrupt.recv() => true,
    };
    if interrupted {
        // Further Ctrl-Cs must not cut the cleanup short: they are caught and answered.
        let patience = tokio::spawn(async move {
            while interrupt.recv().await.is_some() {
                eprintln!("vnode: cleaning up after the interruption; a moment, please");
            }
        });
        // Aborting a task drops its futures, which kills a running virt-install.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        futures_util::future::join_all(trackers.iter().map(|t| t.interrupted())).await;
        patience.abort();
    }
    Ok(trackers.iter().map(|t| t.snapshot()).collect())
}

/// One node, stage by stage. Each stage is entered through the tracker, which stamps it and
/// shows it; the stage functions themselves know nothing of either.
async fn bring_up(
    shared: &Shared,
    run: &HostRun,
    node: &PlannedNode,
    t: &Tracker,
) -> Result<Outcome, StageError> {
    let (host, options) = (&run.host, &shared.options);
    let name = node.name();
    let baseline = run
        .before
        .get(&node.id.network)
        .map_or(&[][..], Vec::as_slice);

    if let Some(there) = shared.existing.get(&name) {
        let elsewhere = (there != &node.host).then(|| format!(" on host {there}"));
        if !options.force {
            t.update(|r| {
                r.error = Some(format!(
                    "{name} already exists{} and was left alone; use --force to replace it",
                    elsewhere.as_deref().unwrap_or("")
                ))
            });
            return Ok(Outcome::Exists);
        }
        t.enter(Stage::Replacing, elsewhere.as_deref().unwrap_or(""));
        // `existing` lists the targets' domains only, so the host is one of them.
        stages::replace(&shared.hosts[there].host, node).await?;
    }
    t.enter(Stage::Preparing, "");
    let artifacts = stages::prepare(&shared.config, host, node, t.files.clone()).await?;
    let files = if host.host_config().is_some() {
        t.enter(Stage::Uploading, host.name().as_str());
        let shown = std::sync::atomic::AtomicU64::new(0);
        let progress = |done: u64, total: u64| {
            // A line per 10 %: enough to see it move, not a flood in a CI log.
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if shown.fetch_max(tenth, std::sync::atomic::Ordering::Relaxed) < tenth {
                t.note(&format!(
                    "base image to {}: {} of {} MiB",
                    host.name(),
                    done >> 20,
                    total >> 20
                ));
            }
        };
        let staged = stages::stage_disks(host, node, &artifacts, &progress).await?;
        t.update(|r| r.base_uploaded_bytes = Some(staged.base_uploaded));
        staged.files
    } else {
        artifacts.domain_files()
    };
    // Held from the domain's start until the node is ready or has failed (the function's end).
    let _slot = match run.slots.try_take() {
        Some(slot) => slot,
        None => {
            let why = match run.slots.limit() {
                Some(n) => run.cap_source.why_queued(n),
                None => "waiting for a boot slot".to_string(),
            };
            t.enter(Stage::Queued, &why);
            run.slots.wait().await
        }
    };
    // The timeout counts from here: a node's wait for a slot is not its own slowness.
    let deadline = Instant::now() + options.timeout;
    t.enter(Stage::Defining, "");
    let attempts = stages::define(
        host,
        node,
        &artifacts,
        files,
        run.accel,
        &shared.config.virt_install_args,
    )
    .await?;
    t.update(|r| r.define_attempts = Some(attempts));
    if attempts > 1 {
        t.note(&format!("virt-install succeeded at attempt {attempts}"));
    }
    t.enter(Stage::Booting, "");
    // From here on every wait also watches the domain, and rides out libvirt restarting.
    let note = |message: &str| t.note(message);
    let watched = &run.domains;
    // Until the guest is up, the firmware may say that the disk does not boot (local hosts:
    // their console log is a file here).
    let not_bootable = async {
        let line = match host.host_config() {
            None => firmware::until_boot_fails(host.node_paths(&name).console_log()).await,
            Some(_) => std::future::pending().await,
        };
        StageError::NotBootable {
            node: name.clone(),
            image: node.image.name.clone(),
            line,
        }
    };
    let target = tokio::select! {
        target = async {
            Ok::<_, StageError>(match options.wait_on {
                WaitOn::Private => {
                    let lease = stages::lease(&run.leases, node, baseline, deadline);
                    let ip = watched.watching(&name, &note, lease).await?;
                    t.update(|r| r.private_ip = Some(ip));
                    ip
                }
                WaitOn::Public => stages::public_address(node).await?,
            })
        } => target?,
        failed = not_bootable => return Err(failed),
    };
    let known = host.known_hosts();
    let _ = known_hosts_file::add_address(&known, &name, &target.to_string());
    t.enter(Stage::Lease, &target.to_string());
    let route = match options.wait_on {
        WaitOn::Private => stages::Route::of(host, target),
        WaitOn::Public => stages::Route::Direct(SocketAddr::from((target, 22))),
    };
    let banner = stages::banner(&route, deadline);
    watched.watching(&name, &note, banner).await?;
    t.enter(Stage::Ssh, "");
    let login = stages::login(&route, &artifacts.host_public_key, &shared.client, deadline);
    let session = watched.watching(&name, &note, login).await?;
    // The ssh moment: logged in with the pinned key; the node's facts (and its public address).
    t.enter(Stage::Facts, "");
    let facts = watched
        .watching(&name, &note, stages::facts(&session, node, deadline))
        .await;
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            session.close().await;
            return Err(e);
        }
    };
    let ssh_at = t.elapsed();
    let record = t.update(|r| {
        r.ssh_seconds = Some(ssh_at);
        r.private_ip = facts.address_of(node.id.private_mac).or(r.private_ip);
        r.public_ip = facts.address_of(node.id.public_mac);
        r.os = facts.pretty_name.clone();
        r.hostname = Some(facts.hostname.clone());
        ReadyRecord {
            name: name.clone(),
            image: node.image.name.clone(),
            private_ip: r.private_ip,
            public_ip: r.public_ip,
            os: r.os.clone(),
            host: node.host.remote_name().map(String::from),
            ready_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    });
    for ip in [record.private_ip, record.public_ip].into_iter().flatten() {
        let _ = known_hosts_file::add_address(&known, &name, &ip.to_string());
    }
    let checked = async {
        record
            .save(&host.node_paths(&name))
            .map_err(StageError::Record)?;
        if !options.public_optional {
            stages::require_public(node, &facts)?;
        }
        // The cloud-init moment, when asked for (or when its later stages have work).
        if options.wait.waits_for_cloud_init(&shared.config, node) {
            t.enter(Stage::CloudInit, "");
            let done = stages::cloud_init(&session, node, deadline);
            watched.watching(&name, &note, done).await?;
            let at = t.elapsed();
            t.update(|r| {
                r.cloud_init = CloudInitState::Done;
                r.cloud_init_seconds = Some(at);
            });
        }
        Ok(())
    }
    .await;
    session.close().await;
    checked.map(|()| Outcome::Ready)
}

/// One node's report and status line, updated as it goes.
struct Tracker {
    report: Mutex<NodeReport>,
    line: NodeLine,
    start: Instant,
    /// Held while the node's files are being written.
    files: Arc<tokio::sync::Mutex<()>>,
    /// The host the node is created on.
    host: Hypervisor,
}

impl Tracker {
    fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn update<T>(&self, f: impl FnOnce(&mut NodeReport) -> T) -> T {
        f(&mut self.report.lock().expect("not poisoned"))
    }

    fn snapshot(&self) -> NodeReport {
        self.update(|r| r.clone())
    }

    /// Something worth saying about the node's current stage (libvirt not answering, say).
    fn note(&self, message: &str) {
        let stage = self.update(|r| r.stage);
        self.line.stage(stage, message);
    }

    /// The node enters `stage` (with a detail: an address, a reason).
    fn enter(&self, stage: Stage, detail: &str) {
        let at = self.elapsed();
        let name = self.update(|r| {
            r.stage = stage;
            r.stages.push((stage, at));
            r.name.clone()
        });
        tracing::debug!("{name}: stage {stage} at {at:.1} s {detail}");
        self.line.stage(stage, detail);
    }

    /// The node's end: ready, left alone, or failed at its stage with the reason and its console.
    async fn finish(&self, result: Result<Outcome, StageError>) {
        let at = self.elapsed();
        let name = self.update(|r| r.name.clone());
        let console = match &result {
            Err(_) => Some(self.host.console_log(&name).await),
            Ok(_) => None,
        };
        let mut r = self.report.lock().expect("not poisoned");
        r.seconds = at;
        match result {
            Ok(Outcome::Ready) => {
                r.outcome = Outcome::Ready;
                r.stage = Stage::Ready;
                r.stages.push((Stage::Ready, at));
                let still = match r.cloud_init {
                    CloudInitState::Done => "",
                    _ => " (cloud-init still finishing)",
                };
                self.line.finish(&format!(
                    "ready {}{still}",
                    r.os.clone().unwrap_or_default()
                ));
            }
            Ok(outcome) => {
                r.outcome = outcome;
                self.line.finish(r.error.as_deref().unwrap_or("left alone"));
            }
            Err(e) => {
                r.outcome = Outcome::Failed;
                if let Some(console) = &console {
                    r.console_tail = report::console_tail(console, 15);
                }
                let hint = if r.console_tail.is_empty() && r.stage >= Stage::Booting {
                    "; the node printed nothing on its serial console: is its image bootable?"
                } else {
                    ""
                };
                self.line.finish(&format!("failed at {}: {e}", r.stage));
                r.error = Some(format!("failed at stage {}: {e}{hint}", r.stage));
            }
        }
    }

    /// After Ctrl-C: a node that was not ready is interrupted. A node whose domain was never
    /// defined loses its files (none may stay without a domain); a node with a domain keeps it
    /// and its files, and the report says so.
    async fn interrupted(&self) {
        let host = &self.host;
        let (name, outcome) = self.update(|r| (r.name.clone(), r.outcome));
        if outcome == Outcome::Ready {
            return;
        }
        // Preparation runs on a blocking thread that an abort does not stop: wait for it.
        let _files = self.files.lock().await;
        let domain = host.virsh().domain_state(&name).await;
        let kept = match domain {
            Ok(None) => host.remove_files(&name).await.is_err(),
            _ => host.node_paths(&name).dir.exists() || domain.is_err(),
        };
        let at = self.elapsed();
        self.update(|r| {
            r.outcome = Outcome::Interrupted;
            r.seconds = at;
            r.kept = kept;
        });
    }
}

/// The boot cap on one host and where it came from: `auto` asks the host for its CPUs (only
/// when it matters: TCG).
async fn boot_cap(
    options: &SpawnOptions,
    t: &Target,
    nodes: usize,
    virsh: &crate::libvirt::virsh::Virsh,
) -> (slots::BootCap, CapSource) {
    let (cap, source) = options
        .parallel
        .for_host(t.host.host_config().and_then(|c| c.parallel_boots));
    let cpus = match (cap, t.accel, t.cpus) {
        (slots::BootCap::Auto, Accel::Tcg, Some(known)) => Some(known),
        (slots::BootCap::Auto, Accel::Tcg, None) => virsh
            .run(&["nodeinfo"])
            .await
            .ok()
            .and_then(|info| crate::hosts::capabilities::parse_nodeinfo(&info).0),
        _ => None,
    };
    (cap.on_host(t.accel, cpus, nodes), source)
}
