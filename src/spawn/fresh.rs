//! Fresh states in one node's bring-up: which plan the node's state allows (restore it, boot
//! cold and save, boot cold), the restore and its first login, and the save at the first ready.
//! The state's own work (files, libvirt, the guest's watcher) is [`crate::fresh_state`]'s.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::guest_facts::{FACTS_COMMAND, Facts, parse_facts};
use super::live_status::Stage;
use super::report::{FreshHow, FreshReport};
use super::stages::{self, Route, StageError};
use super::tracker::Tracker;
use super::{HostRun, Shared, WaitOn};
use crate::fresh_state::key::{FORMAT, KeyInputs};
use crate::fresh_state::store::{self, StatePaths, StateRecord, Unusable};
use crate::fresh_state::{guest, on_host};
use crate::hosts::hypervisor::{disk_volume, seed_volume};
use crate::node::NodeArtifacts;
use crate::node::identity::Identity;
use crate::plan::planned_node::HostName;
use crate::plan::planned_node::PlannedNode;
use crate::ssh::Session;

/// How long a restored guest may go without a sign of life (its watcher's line on the console,
/// or an ssh answer) before it is booted cold instead; each node restored beside it on the host
/// adds [`PATIENCE_PER_NODE`] (six guests resuming at once on two TCG cores did not all answer
/// within 60 s), and the node's --timeout caps it. A guest that has shown its watcher's line
/// runs: it gets the node's whole --timeout to answer (on a busy TCG host a restored guest
/// answered after 74 s, while a cold boot there takes minutes).
const RESTORED_PATIENCE: Duration = Duration::from_secs(60);
const PATIENCE_PER_NODE: Duration = Duration::from_secs(30);

/// The patience for a restored guest on a host that restores `nodes` at once.
fn restored_patience(shared: &Shared, nodes: usize) -> Duration {
    let n = u32::try_from(nodes.saturating_sub(1)).unwrap_or(u32::MAX);
    (RESTORED_PATIENCE + PATIENCE_PER_NODE.saturating_mul(n)).min(shared.options.timeout)
}
/// How long vnode waits for the watcher's line before its first login after a restore.
const WATCHER_PATIENCE: Duration = Duration::from_secs(10);

/// The node's state as found before its files are prepared.
pub(super) enum Found {
    /// Fresh states are not used for this node.
    NotUsed,
    None,
    Unusable(Unusable),
    State(Box<StateRecord>),
}

impl Found {
    /// The identity to prepare the node with: the state's, so its seed can match.
    pub(super) fn identity(&self) -> Option<Identity> {
        match self {
            Found::State(r) => Some(r.identity.clone()),
            _ => None,
        }
    }
}

/// What the bring-up does.
pub(super) enum Plan {
    Restore(Box<StateRecord>),
    /// `vnode warm`: the state is there and matches.
    AlreadyWarm,
    /// Boot; save the state at the first ready when `save`.
    Cold {
        save: bool,
        note: Option<String>,
    },
}

/// Whether `node` gets its state saved when it boots cold: per the command's flags and the
/// config's `fresh_states`, by default (`auto`) when it waits for cloud-init anyway.
pub(super) fn saves(shared: &Shared, node: &PlannedNode) -> bool {
    let waits = shared
        .options
        .wait
        .waits_for_cloud_init(&shared.config, node);
    shared.options.fresh.save.saves(waits)
}

/// Reads the node's state record (kept on this host also for a `[[hosts]]` host's node), when
/// the command uses states.
pub(super) fn find(shared: &Shared, run: &HostRun, node: &PlannedNode) -> Found {
    let fresh = &shared.options.fresh;
    if !fresh.restore && !saves(shared, node) {
        return Found::NotUsed;
    }
    let paths = StatePaths::new(run.host.state_dir(), &node.name());
    match StateRecord::load(&paths) {
        Ok(r) => Found::State(Box::new(r)),
        Err(Unusable::Missing) => Found::None,
        Err(e) => Found::Unusable(e),
    }
}

/// Everything the node's state must have been made from, now.
pub(super) fn inputs(
    shared: &Shared,
    run: &HostRun,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
) -> KeyInputs {
    KeyInputs {
        format: FORMAT,
        name: node.name(),
        image: node.image.name.clone(),
        base_digest: node
            .base
            .as_ref()
            .map(|b| b.digest.clone())
            .unwrap_or_default(),
        memory_mib: node.resources.memory_mib,
        vcpus: node.resources.vcpus,
        disk_gib: node.resources.disk_gib,
        documents: artifacts.documents_sha256.clone(),
        osinfo: artifacts.osinfo.id.clone(),
        virt_type: run.accel.virt_type_arg().to_string(),
        host: node.host.as_str().to_string(),
        virt_install_args: shared.config.virt_install_args.clone(),
        libvirt: run.versions.0.clone(),
        qemu: run.versions.1.clone(),
    }
}

/// The plan for a node whose files are prepared: restore a matching state; else boot cold,
/// saving when the node saves ([`saves`]), and saying why a state was not used.
pub(super) fn plan(shared: &Shared, node: &PlannedNode, found: Found, now: &KeyInputs) -> Plan {
    let fresh = &shared.options.fresh;
    let save = saves(shared, node);
    match found {
        Found::NotUsed => Plan::Cold {
            save: false,
            note: None,
        },
        Found::None => Plan::Cold {
            save,
            note: fresh
                .reset
                .then(|| "no fresh state: re-created cold (its state is saved now)".to_string()),
        },
        Found::Unusable(why) => Plan::Cold {
            save,
            note: Some(format!("its fresh state is unusable ({why}): booting cold")),
        },
        Found::State(record) => {
            let changed = record.inputs.changed(now);
            if !changed.is_empty() || record.key != now.digest() {
                let what = if changed.is_empty() {
                    "its key".to_string()
                } else {
                    changed.join(", ")
                };
                Plan::Cold {
                    save,
                    note: Some(format!(
                        "its fresh state does not match ({what} changed): booting cold"
                    )),
                }
            } else if fresh.warm {
                Plan::AlreadyWarm
            } else if !fresh.restore {
                Plan::Cold {
                    save,
                    note: Some("--cold: booting cold".to_string()),
                }
            } else {
                Plan::Restore(record)
            }
        }
    }
}

/// Why a restore did not give a ready node; the node is booted cold instead.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fallback {
    #[error(transparent)]
    Restore(#[from] crate::fresh_state::restore::RestoreError),
    #[error("the restore task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error("the restored guest did not answer: {0}")]
    NoAnswer(#[source] StageError),
    #[error(transparent)]
    Staging(crate::hosts::hypervisor::StageDisksError),
}

/// Restores the node's state (files locked, so Ctrl-C waits for it): a running domain, or why
/// not (nothing of the restore is left defined then). On a `[[hosts]]` host the node's disk and
/// seed go up first (a new overlay on the state's disk volume).
pub(super) async fn restore(
    run: &HostRun,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
    record: &StateRecord,
    t: &Tracker,
) -> Result<(), Fallback> {
    t.enter(Stage::Restoring, "");
    if let Some(wait) = record.too_young() {
        // A reset right after the save: the guest must wake up late enough to tell.
        tokio::time::sleep(wait).await;
    }
    let (virsh, name) = (run.host.virsh().clone(), node.name());
    let (paths, state) = (
        run.host.node_paths(&name),
        StatePaths::new(run.host.state_dir(), &name),
    );
    let guard = t.files.clone().lock_owned().await;
    let Some(storage) = run.host.storage().cloned() else {
        let task = tokio::spawn(async move {
            let _files = guard;
            crate::fresh_state::restore::restore(&virsh, &name, &paths, &state).await
        });
        return Ok(task.await.map_err(Fallback::Task)??);
    };
    let (host, node, seed, record) = (
        run.host.clone(),
        node.clone(),
        artifacts.seed.clone(),
        record.clone(),
    );
    let task = tokio::spawn(async move {
        let _files = guard;
        host.stage_restore(&node, &seed)
            .await
            .map_err(Fallback::Staging)?;
        Ok(on_host::restore(&virsh, &storage, &name, &state, &record).await?)
    });
    task.await.map_err(Fallback::Task)?
}

/// After a restore: the watcher's line (the RNG reseeded, the clock set) before the first login,
/// then the login on whichever address answers first (the public bridge forwards at once, the
/// private one after its STP delay), then the fixes (urandom read first, DHCP renewed) and the
/// node's facts in one round trip.
pub(super) async fn first_login(
    shared: &Shared,
    run: &HostRun,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
    record: &StateRecord,
    t: &Tracker,
) -> Result<(Session, Facts), StageError> {
    let name = node.name();
    // The console log: a file here, or fetched from the host's pool.
    let host = &run.host;
    let console = || async {
        let log = host.console_log(&name).await;
        tokio::fs::read(log).await.ok()
    };
    let poll = match host.host_config() {
        Some(_) => Duration::from_millis(500),
        None => Duration::from_millis(100),
    };
    let restored_at = Instant::now();
    let line = guest::restored_line(&console, WATCHER_PATIENCE, poll).await;
    t.enter(Stage::Lease, "");
    // A guest that shows no sign of life within the patience is booted cold; one that does has
    // the node's whole --timeout to answer.
    let patience = restored_patience(shared, run.nodes);
    let deadline = restored_at + shared.options.timeout;
    let mut routes: Vec<Route> = Vec::new();
    if let Some(ip) = record.private_ip {
        routes.push(Route::of(&run.host, ip));
    }
    if let Some(ip) = record.public_ip.or(node.id.public_ip) {
        routes.push(Route::Direct(SocketAddr::from((ip, 22))));
    }
    let key = &artifacts.host_public_key;
    let attempts = routes.iter().map(|route| {
        Box::pin(async move {
            stages::banner(route, deadline).await?;
            stages::login(route, key, &shared.client, deadline).await
        })
    });
    let logged_in = futures_util::future::select_ok(attempts);
    let alive = async {
        if line.is_none() {
            let left = patience.saturating_sub(restored_at.elapsed());
            if guest::restored_line(&console, left, poll).await.is_none() {
                return StageError::NoSignOfLife {
                    seconds: patience.as_secs(),
                };
            }
        }
        std::future::pending().await
    };
    let session = tokio::select! {
        logged_in = logged_in => logged_in?.0,
        dead = alive => return Err(dead),
    };
    // The line, when it came after the wait above.
    let line = match line {
        Some(line) => Some(line),
        None => console()
            .await
            .and_then(|bytes| guest::find_restored(&String::from_utf8_lossy(&bytes))),
    };
    t.enter(Stage::Ssh, "");
    let (fixes, facts) = match guest::fix_after_restore(&session, FACTS_COMMAND).await {
        Ok((fixes, out)) => (fixes, parse_facts(&out)),
        Err(e) => {
            session.close().await;
            return Err(StageError::Ssh(e));
        }
    };
    t.update(|r| {
        let f = r.fresh.get_or_insert_with(FreshReport::default);
        f.how = FreshHow::Restored;
        f.restored_guest = line.clone();
        f.urandom_at_login = fixes.urandom.clone();
        f.clock_offset_seconds = fixes.clock_offset;
        f.dhcp_renewed_by = fixes.renewed_by.clone();
    });
    if line.is_none() {
        t.note("the fresh-state watcher said nothing on the console: the RNG was not reseeded before this login");
    }
    Ok((session, facts))
}

/// The node answers on the address readiness is checked on (`--wait-on`): after a restore or a
/// save, the first login may have used another one.
pub(super) async fn answering(
    shared: &Shared,
    run: &HostRun,
    private: Option<Ipv4Addr>,
    public: Option<Ipv4Addr>,
) -> Result<(), StageError> {
    // Beside the first login, or after it: the guest runs, so it has the node's whole --timeout.
    let deadline = Instant::now() + shared.options.timeout;
    let route = match shared.options.wait_on {
        WaitOn::Private => private.map(|ip| Route::of(&run.host, ip)),
        WaitOn::Public => public.map(|ip| Route::Direct(SocketAddr::from((ip, 22)))),
    };
    match route {
        Some(route) => stages::banner(&route, deadline).await,
        None => Ok(()),
    }
}

/// What a node's save is made of besides the node: its key's inputs, its identity, and whether
/// its watcher runs.
pub(super) struct ToSave {
    pub inputs: KeyInputs,
    pub identity: Identity,
    pub watcher: Result<(), guest::WatcherError>,
}

/// Saves the ready node's state (files locked) once its watcher runs (`watcher`: started by the
/// facts' command; `session` is closed here). A save that fails leaves the node running and
/// says so in the report; one that leaves it paused fails the node.
pub(super) async fn save(
    shared: &Shared,
    run: &HostRun,
    node: &PlannedNode,
    to_save: ToSave,
    session: Session,
    t: &Tracker,
) -> Result<(), StageError> {
    t.enter(Stage::Saving, "");
    let ToSave {
        inputs,
        identity,
        watcher: started,
    } = to_save;
    session.close().await;
    if let Err(e) = started {
        t.update(|r| {
            let f = r.fresh.get_or_insert_with(FreshReport::default);
            f.how = FreshHow::Cold;
            f.note = Some(format!("fresh state not saved: {e}"));
        });
        return Ok(());
    }
    let name = node.name();
    let (private_ip, public_ip, os) = t.update(|r| (r.private_ip, r.public_ip, r.os.clone()));
    let (created, _) = crate::node::metadata::now();
    let record = StateRecord {
        node: name.clone(),
        image: node.image.name.clone(),
        key: inputs.digest(),
        inputs,
        identity,
        private_ip,
        public_ip,
        os,
        created_unix: created,
        last_used_unix: created,
        memory_bytes: 0,
        save_seconds: 0.0,
        snapshot_done_ms: 0,
        host_bytes: 0,
    };
    let (host, disk_gib) = (run.host.clone(), node.resources.disk_gib);
    let guard = t.files.clone().lock_owned().await;
    let task_name = name.clone();
    let task = tokio::spawn(async move {
        let _files = guard;
        save_on(&host, &task_name, disk_gib, record).await
    });
    let saved = task.await.map_err(StageError::Task)?;
    let state = StatePaths::new(run.host.state_dir(), &name);
    match saved {
        Ok(s) => {
            let bytes = store::disk_usage(&state.dir) + s.host_bytes;
            t.update(|r| {
                let f = r.fresh.get_or_insert_with(FreshReport::default);
                f.how = FreshHow::Saved;
                f.saving_seconds = Some(s.total_seconds);
                f.snapshot_seconds = Some(s.snapshot_seconds);
                f.state_bytes = Some(bytes);
            });
            let evicted = hold_cap(shared, run, &name).await;
            if !evicted.is_empty() {
                t.note(&format!(
                    "fresh states of {} removed (least recently used; fresh_states_cap_gib)",
                    evicted.join(", ")
                ));
            }
            // `vnode warm` removes the node next: nothing waits on it.
            if shared.options.fresh.warm {
                return Ok(());
            }
            answering(shared, run, private_ip, public_ip).await
        }
        Err(e @ crate::fresh_state::save::SaveError::NotBack { .. }) => {
            Err(StageError::FreshSave(Box::new(e)))
        }
        Err(e) => {
            t.update(|r| {
                let f = r.fresh.get_or_insert_with(FreshReport::default);
                f.how = FreshHow::Cold;
                f.note = Some(format!("fresh state not saved: {e}"));
            });
            Ok(())
        }
    }
}

/// Saves the running node `name` on its host: into its state's directory here, or (on a
/// `[[hosts]]` host) into volumes of the host's pool, the record here.
async fn save_on(
    host: &crate::hosts::hypervisor::Hypervisor,
    name: &str,
    disk_gib: u32,
    record: StateRecord,
) -> Result<crate::fresh_state::save::Saved, crate::fresh_state::save::SaveError> {
    use crate::fresh_state::save::{self, SaveError};
    let state = StatePaths::new(host.state_dir(), name);
    let Some(storage) = host.storage() else {
        return save::save(host.virsh(), name, &host.node_paths(name), &state, record).await;
    };
    let seed = storage
        .path_of(&seed_volume(name))
        .await
        .map_err(|e| SaveError::Storage(Box::new(e)))?;
    let on = on_host::OnHost {
        storage,
        run_volume: &disk_volume(name),
        capacity: u64::from(disk_gib) << 30,
        seed: &seed,
    };
    on_host::save(host.virsh(), name, &on, &state, record).await
}

/// Holds the states under the cap after `saved`'s save: the least recently used go first,
/// wherever they are ([`store::over_cap`]). The nodes whose states went.
async fn hold_cap(shared: &Shared, run: &HostRun, saved: &str) -> Vec<String> {
    let over = store::over_cap(run.host.state_dir(), shared.options.fresh.cap_bytes, saved);
    if over.is_empty() {
        return over;
    }
    let hosts = crate::hosts::Hosts::from_config(&shared.config);
    let mut evicted = Vec::new();
    for node in over {
        // A state of a host this command uses goes through that host's own storage (its lock).
        let host = store::StateRecord::load(&StatePaths::new(run.host.state_dir(), &node))
            .ok()
            .and_then(|r| {
                r.on_host()
                    .and_then(|h| shared.hosts.get(&HostName::named(h)))
                    .map(|h| h.host.clone())
            });
        let removed = match host {
            Some(h) => h.remove_state(&node).await,
            None => hosts.remove_state(&node).await,
        };
        if removed.is_ok() {
            evicted.push(node);
        }
    }
    evicted
}

/// The state's record, marked used now (best effort).
pub(super) fn touch(run: &HostRun, record: StateRecord) {
    let paths = StatePaths::new(run.host.state_dir(), &record.node);
    let _ = record.touch(&paths);
}
