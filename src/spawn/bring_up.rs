//! One node's bring-up, phase by phase: an existing domain (left alone or replaced) → its files
//! (and disks on a remote host) → a boot slot → virt-install → an address while the guest
//! boots → sshd's banner and the login with the pinned host key → the node's facts → its ready
//! record, the public address and cloud-init. Each phase enters its stages through the
//! [`Tracker`], which stamps and shows them; the stage functions in [`super::stages`] know
//! nothing of either.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::boot_console;
use super::fresh;
use super::guest_facts::{FACTS_COMMAND, Facts, parse_facts};
use super::live_status::Stage;
use super::report::{self, CloudInitState, FreshHow, FreshReport, Outcome};
use super::slots::Slot;
use super::stages::{self, StageError};
use super::tracker::Tracker;
use super::{HostRun, Shared, WaitOn};
use crate::fresh_state::guest::{self, WatcherError};
use crate::fresh_state::store::StateRecord;
use crate::libvirt::virt_install::DomainFiles;
use crate::node::NodeArtifacts;
use crate::node::identity::Identity;
use crate::node::known_hosts_file;
use crate::node::ready::ReadyRecord;
use crate::plan::planned_node::PlannedNode;
use crate::ssh::Session;

/// One node, from its existing domain to ready (or the stage it failed at): restored from its
/// fresh state when it has a matching one, else booted (and its state saved when asked).
pub(super) async fn bring_up(
    shared: &Shared,
    run: &HostRun,
    node: &PlannedNode,
    t: &Tracker,
) -> Result<Outcome, StageError> {
    let n = NodeRun {
        shared,
        run,
        node,
        t,
        name: node.name(),
    };
    if let Some(left_alone) = n.replace_existing().await? {
        return Ok(left_alone);
    }
    let found = fresh::find(shared, run, node);
    // The state's identity (host key, instance id) only where the state may be restored, or
    // matched by `vnode warm`: a --cold re-create is a new instance.
    let fresh_opts = &shared.options.fresh;
    let identity = (fresh_opts.restore || fresh_opts.warm)
        .then(|| found.identity())
        .flatten();
    let mut artifacts = n.prepare(identity).await?;
    let mut inputs = fresh::inputs(shared, run, node, &artifacts);
    let mut restored_tail = Vec::new();
    let (save, note) = match fresh::plan(shared, node, found, &inputs) {
        fresh::Plan::AlreadyWarm => {
            let _ = run.host.remove_files(&n.name).await;
            t.update(|r| {
                r.fresh = Some(FreshReport {
                    how: FreshHow::Warm,
                    ..FreshReport::default()
                })
            });
            return Ok(Outcome::Warm);
        }
        fresh::Plan::Restore(record) => match n.restored(&artifacts, *record).await {
            Ok(ready) => return ready,
            Err(fallback) => {
                // What the restored guest said last, before its domain and log go.
                let log = run.host.console_log(&n.name).await;
                restored_tail = report::console_tail(&log, 15);
                // Nothing of the restore may stay: the node boots cold, and saves a new state.
                stages::replace(&run.host, node).await?;
                let _ = run.host.remove_state(&n.name).await;
                artifacts = n.prepare(None).await?;
                inputs = fresh::inputs(shared, run, node, &artifacts);
                let note = format!("restoring its fresh state failed ({fallback}): booting cold");
                t.note(&note);
                (fresh::saves(shared, node), Some(note))
            }
        },
        fresh::Plan::Cold { save, note } => {
            if let Some(note) = &note {
                t.note(note);
            }
            (save, note)
        }
    };
    if save || note.is_some() {
        t.update(|r| {
            r.fresh = Some(FreshReport {
                how: FreshHow::Cold,
                note,
                restored_console_tail: restored_tail,
                ..FreshReport::default()
            })
        });
    }
    let files = n.stage_files(&artifacts, save).await?;
    // Held from the domain's start until the node is ready or has failed (the function's end).
    let _slot = n.boot_slot().await;
    // The timeout counts from here: a node's wait for a slot is not its own slowness.
    let deadline = Instant::now() + shared.options.timeout;
    n.define(&artifacts, files).await?;
    let target = n.address(deadline).await?;
    n.remember_address(target);
    t.enter(Stage::Lease, &target.to_string());
    let session = n.log_in(target, &artifacts, deadline).await?;
    // A state is saved with the guest's watcher running: started by the facts' command.
    let mut first = match save {
        true => FirstCommand::StartWatcher(None),
        false => FirstCommand::Facts,
    };
    let session = n.ready(session, deadline, &mut first).await?;
    match first {
        FirstCommand::StartWatcher(Some(watcher)) => {
            let to_save = fresh::ToSave {
                inputs,
                identity: artifacts.identity,
                watcher,
            };
            fresh::save(shared, run, node, to_save, session, t).await?
        }
        _ => session.close().await,
    }
    Ok(Outcome::Ready)
}

/// The first command of a logged-in node, which reads its facts.
enum FirstCommand {
    /// Just the facts.
    Facts,
    /// The fresh-state watcher started first, in the same round trip; whether it runs, once
    /// the command ran.
    StartWatcher(Option<Result<(), WatcherError>>),
    /// Nothing: the facts were read already (a restored node's first command).
    Read(Facts),
}

/// What each phase of one node's bring-up reads.
struct NodeRun<'a> {
    shared: &'a Shared,
    /// The node's host.
    run: &'a HostRun,
    node: &'a PlannedNode,
    t: &'a Tracker,
    name: String,
}

impl NodeRun<'_> {
    /// Logged in: the facts, the ready record, the public address and cloud-init; the session
    /// comes back open (a save starts the watcher over it).
    /// `first`: what the facts' command does besides, or the facts when the session read them
    /// already.
    async fn ready(
        &self,
        session: Session,
        deadline: Instant,
        first: &mut FirstCommand,
    ) -> Result<Session, StageError> {
        let facts = match self.facts(&session, deadline, first).await {
            Ok(f) => f,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        let record = self.record_ssh_moment(&facts);
        // A state is saved once cloud-init is over: a restore must not replay its config and
        // final stages (their CPU, and what they had under way, such as downloads).
        let saves = matches!(first, FirstCommand::StartWatcher(_));
        match self
            .finish_ready(&record, &facts, &session, deadline, saves)
            .await
        {
            Ok(()) => Ok(session),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    /// The node from its fresh state: restored, its first login, then ready as a booted node
    /// is. A restore that fails, or a guest that does not answer, is a [`fresh::Fallback`].
    async fn restored(
        &self,
        artifacts: &NodeArtifacts,
        record: StateRecord,
    ) -> Result<Result<Outcome, StageError>, fresh::Fallback> {
        let (shared, run, t) = (self.shared, self.run, self.t);
        fresh::restore(run, self.node, artifacts, &record, t).await?;
        // The address readiness is checked on answers once its bridge forwards the new tap
        // (the private one after its STP delay): waited for beside the first login.
        let (private, public) = (
            record.private_ip,
            record.public_ip.or(self.node.id.public_ip),
        );
        let answering = fresh::answering(shared, run, private, public);
        let mut answering = std::pin::pin!(answering);
        let mut answered = None;
        let (session, facts) = {
            let login = fresh::first_login(shared, run, self.node, artifacts, &record, t);
            let mut login = std::pin::pin!(login);
            loop {
                tokio::select! {
                    first = &mut login => break first.map_err(fresh::Fallback::NoAnswer)?,
                    a = &mut answering, if answered.is_none() => answered = Some(a),
                }
            }
        };
        let deadline = Instant::now() + shared.options.timeout;
        // From here on the node is up: its failures are its own, not a reason to boot cold.
        let outcome = async {
            let mut first = FirstCommand::Read(facts);
            let session = self.ready(session, deadline, &mut first).await?;
            session.close().await;
            match answered {
                Some(a) => a?,
                None => answering.await?,
            }
            // A renewed lease that moved an address: the new one must answer too.
            let now = t.update(|r| (r.private_ip, r.public_ip));
            if now != (private, public) {
                fresh::answering(shared, run, now.0, now.1).await?;
            }
            Ok::<_, StageError>(Outcome::Ready)
        }
        .await;
        fresh::touch(run, record);
        Ok(outcome)
    }

    /// A domain of the node's name that exists already: without --force it is left alone (the
    /// outcome, `Exists`); with it, it is removed from whichever host it is on.
    async fn replace_existing(&self) -> Result<Option<Outcome>, StageError> {
        let (name, t) = (&self.name, self.t);
        let Some(there) = self.shared.existing.get(name) else {
            return Ok(None);
        };
        let elsewhere = (there != &self.node.host).then(|| format!(" on host {there}"));
        if !self.shared.options.force {
            t.update(|r| {
                r.error = Some(format!(
                    "{name} already exists{} and was left alone; use --force to replace it",
                    elsewhere.as_deref().unwrap_or("")
                ))
            });
            return Ok(Some(Outcome::Exists));
        }
        t.enter(Stage::Replacing, elsewhere.as_deref().unwrap_or(""));
        // `existing` lists the targets' domains only, so the host is one of them.
        stages::replace(&self.shared.hosts[there].host, self.node).await?;
        Ok(None)
    }

    /// Writes the node's overlay, seed and keys (with a fresh state's identity when given).
    async fn prepare(&self, identity: Option<Identity>) -> Result<NodeArtifacts, StageError> {
        self.t.enter(Stage::Preparing, "");
        let host = &self.run.host;
        let files = self.t.files.clone();
        stages::prepare(&self.shared.config, host, self.node, files, identity).await
    }

    /// The files the domain is defined on: the prepared ones on a local host; on a remote one,
    /// its disks uploaded there (with a progress note per tenth of the base image). A node that
    /// will be saved there boots on its state's disk volume: an earlier state goes first.
    async fn stage_files(
        &self,
        artifacts: &NodeArtifacts,
        save: bool,
    ) -> Result<DomainFiles, StageError> {
        let (host, t) = (&self.run.host, self.t);
        if host.host_config().is_none() {
            return Ok(artifacts.domain_files());
        }
        if save {
            host.remove_state(&self.name).await?;
        }
        t.enter(Stage::Uploading, host.name().as_str());
        let shown = AtomicU64::new(0);
        let progress = |done: u64, total: u64| {
            // A line per 10 %: enough to see it move, not a flood in a CI log.
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if shown.fetch_max(tenth, Ordering::Relaxed) < tenth {
                t.note(&format!(
                    "base image to {}: {} of {} MiB",
                    host.name(),
                    done >> 20,
                    total >> 20
                ));
            }
        };
        let staged = stages::stage_disks(host, self.node, artifacts, &progress, save).await?;
        t.update(|r| r.base_uploaded_bytes = Some(staged.base_uploaded));
        Ok(staged.files)
    }

    /// A boot slot of the host: at once if one is free, else queued (and shown as such).
    async fn boot_slot(&self) -> Slot {
        let slots = &self.run.slots;
        if let Some(slot) = slots.try_take() {
            return slot;
        }
        let why = match slots.limit() {
            Some(n) => self.run.cap_source.why_queued(n),
            None => "waiting for a boot slot".to_string(),
        };
        self.t.enter(Stage::Queued, &why);
        slots.wait().await
    }

    /// virt-install defines and starts the domain; retries are noted.
    async fn define(
        &self,
        artifacts: &NodeArtifacts,
        files: DomainFiles,
    ) -> Result<(), StageError> {
        let t = self.t;
        t.enter(Stage::Defining, "");
        let attempts = stages::define(
            &self.run.host,
            self.node,
            artifacts,
            files,
            self.run.accel,
            &self.shared.config.virt_install_args,
        )
        .await?;
        t.update(|r| r.define_attempts = Some(attempts));
        if attempts > 1 {
            t.note(&format!("virt-install succeeded at attempt {attempts}"));
        }
        Ok(())
    }

    /// Booting: the address readiness is checked on (the private lease, or the public address),
    /// unless the guest's console says first that its boot died.
    async fn address(&self, deadline: Instant) -> Result<Ipv4Addr, StageError> {
        self.t.enter(Stage::Booting, "");
        let (host, node, name) = (&self.run.host, self.node, &self.name);
        // Until the guest is up, its console may say that the boot died (local hosts: their
        // console log is a file here).
        let not_bootable = async {
            let died = match host.host_config() {
                None => boot_console::until_boot_dies(host.node_paths(name).console_log()).await,
                Some(_) => std::future::pending().await,
            };
            boot_died(name, &node.image.name, died)
        };
        let address = async {
            match self.shared.options.wait_on {
                WaitOn::Private => {
                    let baseline = self
                        .run
                        .before
                        .get(&node.id.network)
                        .map_or(&[][..], Vec::as_slice);
                    let lease = stages::lease(&self.run.leases, node, baseline, deadline);
                    let ip = self.watching(lease).await?;
                    self.t.update(|r| r.private_ip = Some(ip));
                    Ok(ip)
                }
                WaitOn::Public => stages::public_address(node).await,
            }
        };
        tokio::select! {
            target = address => target,
            failed = not_bootable => Err(failed),
        }
    }

    /// sshd's banner, then the login that passes the pinned host key.
    async fn log_in(
        &self,
        target: Ipv4Addr,
        artifacts: &NodeArtifacts,
        deadline: Instant,
    ) -> Result<Session, StageError> {
        let route = match self.shared.options.wait_on {
            WaitOn::Private => stages::Route::of(&self.run.host, target),
            WaitOn::Public => stages::Route::Direct(SocketAddr::from((target, 22))),
        };
        self.watching(stages::banner(&route, deadline)).await?;
        self.t.enter(Stage::Ssh, "");
        let login = stages::login(
            &route,
            &artifacts.host_public_key,
            &self.shared.client,
            deadline,
        );
        self.watching(login).await
    }

    /// The ssh moment: logged in with the pinned key; the node's facts (and its public address).
    async fn facts(
        &self,
        session: &Session,
        deadline: Instant,
        first: &mut FirstCommand,
    ) -> Result<Facts, StageError> {
        self.t.enter(Stage::Facts, "");
        let read = match first {
            FirstCommand::Read(facts) => Some(std::mem::take(facts)),
            FirstCommand::Facts => None,
            FirstCommand::StartWatcher(started) => {
                let (s, out) = self
                    .watching(async {
                        guest::start_watcher_then(session, FACTS_COMMAND)
                            .await
                            .map_err(StageError::Ssh)
                    })
                    .await?;
                *started = Some(s);
                Some(parse_facts(&out))
            }
        };
        self.watching(stages::facts(session, self.node, deadline, read))
            .await
    }

    /// The report takes the facts and the ssh moment's time; their addresses go into the known
    /// hosts. The record is what the node's ready file will say.
    fn record_ssh_moment(&self, facts: &Facts) -> ReadyRecord {
        let (node, name) = (self.node, &self.name);
        let ssh_at = self.t.elapsed();
        let record = self.t.update(|r| {
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
            self.remember_address(ip);
        }
        record
    }

    /// Saves the ready record, requires the public address (unless optional) and waits for
    /// cloud-init when asked for (or when its later stages have work, or a state is saved).
    async fn finish_ready(
        &self,
        record: &ReadyRecord,
        facts: &Facts,
        session: &Session,
        deadline: Instant,
        saves: bool,
    ) -> Result<(), StageError> {
        let (options, node, t) = (&self.shared.options, self.node, self.t);
        record
            .save(&self.run.host.node_paths(&self.name))
            .map_err(StageError::Record)?;
        if !options.public_optional {
            stages::require_public(node, facts)?;
        }
        if saves || options.wait.waits_for_cloud_init(&self.shared.config, node) {
            t.enter(Stage::CloudInit, "");
            self.watching(stages::cloud_init(session, node, deadline))
                .await?;
            let at = t.elapsed();
            t.update(|r| {
                r.cloud_init = CloudInitState::Done;
                r.cloud_init_seconds = Some(at);
            });
        }
        Ok(())
    }

    /// Adds one of the node's addresses to the host's known hosts (best effort: the node is up
    /// either way).
    fn remember_address(&self, ip: Ipv4Addr) {
        let known = self.run.host.known_hosts();
        let _ = known_hosts_file::add_address(&known, &self.name, &ip.to_string());
    }

    /// Runs `stage` while watching the domain: it fails when the domain stops, and rides out
    /// libvirt restarting.
    async fn watching<T>(
        &self,
        stage: impl Future<Output = Result<T, StageError>>,
    ) -> Result<T, StageError> {
        let note = |message: &str| self.t.note(message);
        self.run.domains.watching(&self.name, &note, stage).await
    }
}

/// The node's error for a boot that died on its console: a disk without a boot loader keeps its
/// own message; the other deaths say what the console says and what it means.
fn boot_died(node: &str, image: &str, died: boot_console::BootDeath) -> StageError {
    match died.death {
        boot_console::Death::NoBootLoader => StageError::NotBootable {
            node: node.to_string(),
            image: image.to_string(),
            line: died.line,
        },
        death => StageError::BootDied {
            node: node.to_string(),
            image: image.to_string(),
            meaning: death.meaning(),
            line: died.line,
            cause: died.cause,
        },
    }
}
