//! The concurrent spawn pipeline. For the whole command: preflight (libvirt, networks, bridges).
//! Then per node, all nodes at once, the stages of [`stages`]: existing domain (left alone, or
//! replaced with --force) → artifacts → virt-install → private lease → sshd banner → login with
//! the pinned host key → cloud-init done → facts. The result is a report per node; printing it
//! and choosing the exit code is the command's business.

pub mod facts;
pub mod leases;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod stages;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::Config;
use crate::hypervisor::Hypervisor;
use crate::libvirt::virsh::Lease;
use crate::libvirt::virt_install::Accel;
use crate::node::known_hosts;
use crate::node::ready::ReadyRecord;
use crate::planned::PlannedNode;
use crate::ssh::ClientKey;
use leases::Leases;
use progress::{NodeLine, Progress, Stage};
use report::{NodeReport, Outcome};
use stages::StageError;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("this host is not ready for vnode:\n  {}", .0.join("\n  "))]
    Preflight(Vec<String>),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error(transparent)]
    Libvirt(#[from] crate::libvirt::LibvirtError),
}

impl SpawnError {
    pub fn exit_code(&self) -> u8 {
        crate::exit::EXIT_FAILED
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

/// How nodes are brought up.
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    pub accel: Accel,
    /// How long each node may take to become ready.
    pub timeout: Duration,
    pub wait_on: WaitOn,
    /// Replace existing domains of the same names.
    pub force: bool,
}

/// What every node's bring-up shares.
struct Shared {
    config: Arc<Config>,
    host: Hypervisor,
    client: ClientKey,
    leases: Leases,
    options: SpawnOptions,
}

/// Brings nodes up concurrently and reports on each; errors only for whole-command problems
/// (libvirt unreachable, a network inactive, ...), before anything is created. Ctrl-C stops the
/// waits: each node is then reported as interrupted, and nodes whose domain was never defined
/// leave no files behind.
pub async fn spawn(
    config: &Config,
    host: &Hypervisor,
    options: &SpawnOptions,
    nodes: Vec<PlannedNode>,
) -> Result<Vec<NodeReport>, SpawnError> {
    preflight::host(host.virsh(), &nodes)
        .await
        .map_err(SpawnError::Preflight)?;
    let client = ClientKey::load_or_create(&host.client_key())?;
    let leases = Leases::new(host.virsh().clone());
    // Leases that exist before any domain is created are not ours (see Leases::wait_new).
    let mut before: HashMap<String, Vec<Lease>> = HashMap::new();
    for n in &nodes {
        if !before.contains_key(&n.id.network) {
            let l = leases.current(&n.id.network).await?;
            before.insert(n.id.network.clone(), l);
        }
    }
    let shared = Arc::new(Shared {
        config: Arc::new(config.clone()),
        host: host.clone(),
        client,
        leases,
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
        });
        trackers.push(tracker.clone());
        let baseline = before.get(&node.id.network).cloned().unwrap_or_default();
        let shared = shared.clone();
        tasks.spawn(async move {
            let result = bring_up(&shared, &node, &baseline, &tracker).await;
            tracker.finish(&shared.host, result);
        });
    }
    let interrupted = tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        // Aborting a task drops its futures, which kills a running virt-install.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for t in &trackers {
            t.interrupted(&shared.host).await;
        }
    }
    Ok(trackers.iter().map(|t| t.snapshot()).collect())
}

/// One node, stage by stage. Each stage is entered through the tracker, which stamps it and
/// shows it; the stage functions themselves know nothing of either.
async fn bring_up(
    shared: &Shared,
    node: &PlannedNode,
    baseline: &[Lease],
    t: &Tracker,
) -> Result<Outcome, StageError> {
    let (host, options) = (&shared.host, &shared.options);
    let deadline = Instant::now() + options.timeout;
    let name = node.name();

    if stages::exists(host, node).await? {
        if !options.force {
            t.update(|r| {
                r.error = Some(format!(
                    "{name} already exists and was left alone; use --force to replace it"
                ))
            });
            return Ok(Outcome::Exists);
        }
        t.enter(Stage::Replacing, "");
        stages::replace(host, node).await?;
    }
    t.enter(Stage::Preparing, "");
    let artifacts = stages::prepare(&shared.config, host, node).await?;
    t.enter(Stage::Defining, "");
    stages::define(host, node, &artifacts, options.accel).await?;
    t.enter(Stage::Booting, "");
    let target = match options.wait_on {
        WaitOn::Private => {
            let ip = stages::lease(&shared.leases, node, baseline, deadline).await?;
            t.update(|r| r.private_ip = Some(ip));
            ip
        }
        WaitOn::Public => stages::public_address(node).await?,
    };
    let known = host.known_hosts();
    let _ = known_hosts::add_address(&known, &name, &target.to_string());
    t.enter(Stage::Lease, &target.to_string());
    let addr = host.guest_ssh(target);
    stages::banner(addr, deadline).await?;
    t.enter(Stage::Ssh, "");
    let session = stages::login(addr, &artifacts.host_public_key, &shared.client, deadline).await?;
    t.enter(Stage::CloudInit, "");
    let facts = async {
        stages::cloud_init(&session, node, deadline).await?;
        stages::facts(&session, node, deadline).await
    }
    .await;
    session.close().await;
    let facts = facts?;

    let record = t.update(|r| {
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
            ready_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    });
    for ip in [record.private_ip, record.public_ip].into_iter().flatten() {
        let _ = known_hosts::add_address(&known, &name, &ip.to_string());
    }
    record
        .save(&host.node_paths(&name))
        .map_err(StageError::Record)?;
    Ok(Outcome::Ready)
}

/// One node's report and status line, updated as it goes.
struct Tracker {
    report: Mutex<NodeReport>,
    line: NodeLine,
    start: Instant,
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

    /// The node enters `stage` (with a detail: an address, a reason).
    fn enter(&self, stage: Stage, detail: &str) {
        let at = self.elapsed();
        self.update(|r| {
            r.stage = stage;
            r.stages.push((stage, at));
        });
        self.line.stage(stage, detail);
    }

    /// The node's end: ready, left alone, or failed at its stage with the reason and its console.
    fn finish(&self, host: &Hypervisor, result: Result<Outcome, StageError>) {
        let at = self.elapsed();
        let mut r = self.report.lock().expect("not poisoned");
        r.seconds = at;
        match result {
            Ok(Outcome::Ready) => {
                r.outcome = Outcome::Ready;
                r.stage = Stage::Ready;
                r.stages.push((Stage::Ready, at));
                self.line
                    .finish(&format!("ready {}", r.os.clone().unwrap_or_default()));
            }
            Ok(outcome) => {
                r.outcome = outcome;
                self.line.finish(r.error.as_deref().unwrap_or("left alone"));
            }
            Err(e) => {
                r.outcome = Outcome::Failed;
                r.console_tail =
                    report::console_tail(&host.node_paths(&r.name).console_log(), 15);
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

    /// After Ctrl-C: a node that was not ready is interrupted; if its domain was never defined,
    /// its files go.
    async fn interrupted(&self, host: &Hypervisor) {
        let (name, stage, outcome) = self.update(|r| (r.name.clone(), r.stage, r.outcome));
        if outcome == Outcome::Ready {
            return;
        }
        if stage <= Stage::Defining && matches!(host.virsh().domain_state(&name).await, Ok(None)) {
            let _ = host.remove_files(&name);
        }
        let at = self.elapsed();
        self.update(|r| {
            r.outcome = Outcome::Interrupted;
            r.seconds = at;
        });
    }
}
