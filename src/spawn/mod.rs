//! The concurrent spawn pipeline. For the whole command: preflight (libvirt, networks, bridges),
//! then each host's leases, domains and boot slots. Then per node, all nodes at once
//! ([`bring_up`]), the stages of [`stages`]: existing domain (left alone, or replaced with
//! --force) → artifacts → a boot slot of its host ([`slots`]) → virt-install → private lease →
//! sshd banner → login with the pinned host key → facts → cloud-init done, each shown and
//! stamped by the node's [`tracker`]. The result is a report per node; printing it and choosing
//! the exit code is the command's business.

mod boot_console;
mod bring_up;
mod fresh;
pub mod guest_facts;
pub mod leases;
pub mod live_status;
pub mod preflight;
pub mod report;
pub mod slots;
pub mod stages;
mod tracker;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::{Config, FreshStates};
use crate::hosts::hypervisor::Hypervisor;
use crate::libvirt::virsh::Lease;
use crate::libvirt::virt_install::Accel;
use crate::plan::planned_node::{HostName, PlannedNode};
use crate::ssh::ClientKey;
use bring_up::bring_up;
use leases::Leases;
use live_status::Progress;
use report::NodeReport;
use slots::{BootCapChoice, CapSource, Slots};
use tracker::Tracker;
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
    /// Fresh states: restore, save, or neither.
    pub fresh: FreshOptions,
}

/// What a command does with fresh states.
#[derive(Clone, Debug)]
pub struct FreshOptions {
    /// A node with a matching state is restored instead of booted (not with --cold).
    pub restore: bool,
    /// When a node that boots cold gets its state saved at its first ready.
    pub save: crate::config::FreshStates,
    /// `vnode warm`: a node whose state exists and matches is left as it is (outcome `Warm`).
    pub warm: bool,
    /// `vnode reset`: a node without a state says that it is re-created cold.
    pub reset: bool,
    /// States are held under this many bytes (least recently used first out).
    pub cap_bytes: u64,
}

impl FreshOptions {
    /// Fresh states neither restored nor saved (a temporary node, such as `images derive`'s).
    pub fn off() -> FreshOptions {
        FreshOptions {
            restore: false,
            save: crate::config::FreshStates::Off,
            warm: false,
            reset: false,
            cap_bytes: 0,
        }
    }
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
    /// libvirt's and QEMU's versions (asked only when fresh states are used).
    versions: (String, String),
    /// How many of the command's nodes this host gets.
    nodes: usize,
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
    preflight(targets, options, &nodes).await?;
    let first = targets.first().expect("at least one host");
    let client = ClientKey::load_or_create(&first.host.client_key())?;
    let (hosts, existing) = survey_hosts(targets, options, &nodes).await?;
    let shared = Arc::new(Shared {
        config: Arc::new(config.clone()),
        hosts,
        existing,
        client,
        options: options.clone(),
    });
    let start = Instant::now();
    let progress = Progress::new(start);
    let (mut tasks, trackers) = start_nodes(&shared, nodes, &progress, start);
    let interrupted = tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => false,
        _ = interrupt.recv() => true,
    };
    if interrupted {
        clean_up_after_interrupt(tasks, &trackers, interrupt).await;
    }
    Ok(trackers.iter().map(|t| t.snapshot()).collect())
}

/// Every host that gets a node is checked (all at once) before anything is created; the
/// problems of all of them are reported together.
async fn preflight(
    targets: &[Target],
    options: &SpawnOptions,
    nodes: &[PlannedNode],
) -> Result<(), SpawnError> {
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
    Ok(())
}

/// The domains that exist on the targets, by name with their host, and each target's part of
/// the spawn. Every host, also those that get no node: a node named again may exist on another
/// one (and --force removes it there).
async fn survey_hosts(
    targets: &[Target],
    options: &SpawnOptions,
    nodes: &[PlannedNode],
) -> Result<(HashMap<HostName, HostRun>, HashMap<String, HostName>), SpawnError> {
    let mut hosts = HashMap::new();
    let mut existing = HashMap::new();
    for t in targets {
        if let Ok(names) = t.host.virsh().domains().await {
            for n in names {
                existing.entry(n).or_insert_with(|| t.host.name().clone());
            }
        }
        hosts.insert(t.host.name().clone(), host_run(t, options, nodes).await?);
    }
    Ok((hosts, existing))
}

/// One host's part: its leases (and those that exist before any domain is created), its
/// domains' watch and its boot slots.
async fn host_run(
    t: &Target,
    options: &SpawnOptions,
    nodes: &[PlannedNode],
) -> Result<HostRun, SpawnError> {
    let virsh = t.host.virsh();
    let leases = Leases::new(virsh.clone(), t.host.libvirt_poll());
    let mine = || nodes.iter().filter(|n| &n.host == t.host.name());
    let (cap, cap_source) = boot_cap(options, t, mine().count(), virsh).await;
    let mut before: HashMap<String, Vec<Lease>> = HashMap::new();
    for n in mine() {
        if !before.contains_key(&n.id.network) {
            let l = leases.current(&n.id.network).await?;
            before.insert(n.id.network.clone(), l);
        }
    }
    let versions = if options.fresh.restore || options.fresh.save != FreshStates::Off {
        virsh
            .run(&["version"])
            .await
            .map(|v| crate::fresh_state::key::parse_versions(&v))
            .unwrap_or_default()
    } else {
        Default::default()
    };
    Ok(HostRun {
        versions,
        nodes: mine().count(),
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
    })
}

/// Starts every node's bring-up as a task, each with its tracker (in the nodes' order).
fn start_nodes(
    shared: &Arc<Shared>,
    nodes: Vec<PlannedNode>,
    progress: &Progress,
    start: Instant,
) -> (JoinSet<()>, Vec<Arc<Tracker>>) {
    let mut tasks = JoinSet::new();
    let mut trackers = Vec::new();
    for node in nodes {
        let host = shared.hosts[&node.host].host.clone();
        let tracker = Arc::new(Tracker::new(
            &node,
            progress.node(&node.name()),
            start,
            host,
        ));
        tracker.update(|r| r.host = node.host.remote_name().map(String::from));
        trackers.push(tracker.clone());
        let shared = shared.clone();
        tasks.spawn(async move {
            let run = &shared.hosts[&node.host];
            let result = bring_up(&shared, run, &node, &tracker).await;
            tracker.finish(result).await;
        });
    }
    (tasks, trackers)
}

/// After Ctrl-C: stops every bring-up and reports each unfinished node as interrupted, while
/// further Ctrl-Cs are caught and answered (they must not cut the cleanup short).
async fn clean_up_after_interrupt(
    mut tasks: JoinSet<()>,
    trackers: &[Arc<Tracker>],
    mut interrupt: tokio::signal::unix::Signal,
) {
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
