//! `vnode lab down`, and the teardown `up` uses for stale state and for its own failures: for
//! each machine of the lab (each host, then the site) domains and networks through libvirt,
//! then every recorded process by PID, then whatever still runs in its network namespace, then
//! the namespace; last the lab directory. Works from any state: dead PIDs are skipped, a
//! missing namespace is fine.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::namespace::Namespaces;
use super::paths::LabDir;
use super::process::{self, Proc};
use super::state::{LabHost, LabLock, LabState, Machine};
use super::{LabError, LabName, StepError, netns_path, require_root};

pub struct DownReport {
    /// Something of the lab existed.
    pub was_up: bool,
    /// What was stopped or removed, for the user.
    pub done: Vec<String>,
    pub elapsed: Duration,
}

pub fn down(name: &LabName) -> Result<DownReport, LabError> {
    require_root()?;
    let t0 = Instant::now();
    let dir = LabDir::of(name);
    let _lock = LabLock::acquire(name, &dir)?;
    let state = LabState::load(name, &dir)?;
    let was_up = state.is_some()
        || netns_path(name).exists()
        || dir.root().exists()
        || !host_leftovers(name).is_empty();
    let done = if was_up {
        teardown(name, &dir, state.as_ref())?
    } else {
        Vec::new()
    };
    // Removed while locked; a waiting command notices and locks the new file (see LabLock).
    let _ = fs::remove_file(dir.lock());
    Ok(DownReport {
        was_up,
        done,
        elapsed: t0.elapsed(),
    })
}

/// Undoes a lab from whatever state it is in: its hosts first (each host's sshd, guests,
/// libvirtd, virtlogd, holder, network namespace, and with it the veths to the site), then the
/// site, then the lab directory.
pub(super) fn teardown(
    name: &LabName,
    dir: &LabDir,
    state: Option<&LabState>,
) -> Result<Vec<String>, LabError> {
    let fail = |stage: &str, source: StepError| LabError::Step {
        lab: name.clone(),
        stage: stage.into(),
        source: Box::new(source),
    };
    let me = Proc::of(std::process::id() as i32).and_then(|me| process::netns_inode(&me));
    let mut done = Vec::new();
    // The hosts the state knows, and namespaces of hosts it does not (no state file, or a crash
    // before the hosts were recorded).
    let mut hosts: Vec<(String, Option<&LabHost>)> = state
        .map_or(&[][..], |s| &s.hosts[..])
        .iter()
        .map(|h| (h.machine.netns.clone(), Some(h)))
        .collect();
    for netns in host_leftovers(name) {
        if !hosts.iter().any(|(n, _)| *n == netns) {
            hosts.push((netns, None));
        }
    }
    let units: Vec<Unit> = hosts
        .into_iter()
        .map(|(netns, host)| host_unit(name, dir, netns, host))
        .collect();
    let site = Unit {
        label: String::new(),
        netns: name.netns(),
        machine: state.map(|s| &s.site),
        xdg_cache: dir.site().xdg_cache(),
        before_domains: Vec::new(),
        after_domains: state.map_or(Vec::new(), |s| {
            vec![
                ("dnsmasq", s.dnsmasq),
                ("libvirtd", s.site.libvirtd),
                ("virtlogd", s.site.virtlogd),
            ]
        }),
    };
    // From inside the lab (`lab exec -- vnode lab down`) this process would stop itself; checked
    // before anything is stopped.
    if me.is_some() && units.iter().chain([&site]).any(|u| u.namespace().1 == me) {
        return Err(fail("down", StepError::FromInside));
    }
    // In parallel: a host's teardown is mostly waiting for its libvirtd.
    let results: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = units
            .iter()
            .map(|u| scope.spawn(move || u.teardown()))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(("down".into(), StepError::Panicked)))
            })
            .collect()
    });
    for result in results {
        done.extend(result.map_err(|(stage, m)| fail(&stage, m))?);
    }
    done.extend(site.teardown().map_err(|(stage, m)| fail(&stage, m))?);
    remove_dir(dir).map_err(|e| fail("remove the lab directory", e))?;
    Ok(done)
}

/// The teardown of a host: the state's (`host`), or a namespace found without one.
fn host_unit<'a>(
    name: &LabName,
    dir: &LabDir,
    netns: String,
    host: Option<&'a LabHost>,
) -> Unit<'a> {
    let label = match host {
        Some(h) => h.name.clone(),
        None => netns
            .strip_prefix(&name.host_netns_prefix())
            .unwrap_or(&netns)
            .to_string(),
    };
    Unit {
        xdg_cache: dir.host(&label).xdg_cache(),
        label: format!("host {label}: "),
        netns,
        machine: host.map(|h| &h.machine),
        before_domains: host.map_or(Vec::new(), |h| vec![("sshd", h.sshd)]),
        after_domains: host.map_or(Vec::new(), |h| {
            vec![
                ("libvirtd", h.machine.libvirtd),
                ("virtlogd", h.machine.virtlogd),
            ]
        }),
    }
}

/// Namespaces of hosts of lab `name` that exist (`ip netns` names `vnode-NAME.hN`).
pub(super) fn host_leftovers(name: &LabName) -> Vec<String> {
    let prefix = name.host_netns_prefix();
    let Ok(dir) = fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    out.sort();
    out
}

/// One machine of the lab (the site or a host) to tear down.
struct Unit<'a> {
    /// For messages: "" for the site, "host h1: " for a host.
    label: String,
    /// Its `ip netns` name (the state's, or the one found).
    netns: String,
    machine: Option<&'a Machine>,
    xdg_cache: PathBuf,
    /// Daemons stopped before the machine's domains are removed (a host's sshd: no new
    /// clients meanwhile), and after.
    before_domains: Vec<(&'static str, Option<Proc>)>,
    after_domains: Vec<(&'static str, Option<Proc>)>,
}

impl Unit<'_> {
    /// The live holder, and the inode of the machine's network namespace. The namespace is
    /// known to be the lab's through the live holder or the `ip netns` name, never through a
    /// recorded inode number alone, which a later namespace may reuse.
    fn namespace(&self) -> (Option<Proc>, Option<u64>) {
        let holder = self.machine.and_then(|m| m.holder).filter(Proc::is_alive);
        let inode = match holder {
            Some(h) => process::netns_inode(&h),
            None => fs::metadata(self.netns_path()).ok().map(|m| m.ino()),
        };
        (holder, inode)
    }

    fn netns_path(&self) -> PathBuf {
        std::path::Path::new("/run/netns").join(&self.netns)
    }

    /// Domains and networks through libvirt, then every recorded process by PID, then whatever
    /// still runs in the network namespace, then the namespace. Errors: (stage, message).
    fn teardown(&self) -> Result<Vec<String>, (String, StepError)> {
        let fail = |stage: &str, e: StepError| (format!("{}{stage}", self.label), e);
        let alive = |p: Option<Proc>| p.filter(Proc::is_alive);
        let (holder, inode) = self.namespace();
        let netns = self.netns_path();
        let mut done = Vec::new();
        let stop = |done: &mut Vec<String>, daemons: &[(&str, Option<Proc>)]| {
            for (role, p) in daemons {
                if let Some(p) = alive(*p) {
                    p.stop(Duration::from_secs(15))
                        .map_err(|e| fail(&format!("stop {role}"), e.into()))?;
                    done.push(format!("{}stopped {role} (pid {})", self.label, p.pid));
                }
            }
            Ok::<(), (String, StepError)>(())
        };
        stop(&mut done, &self.before_domains)?;
        let libvirtd = alive(self.machine.and_then(|m| m.libvirtd));
        if let (Some(h), Some(_)) = (holder, libvirtd)
            && let Ok(ns) = Namespaces::of(&h, &self.xdg_cache)
        {
            done.extend(
                remove_domains(&ns)
                    .into_iter()
                    .map(|d| format!("{}{d}", self.label)),
            );
        }
        stop(&mut done, &self.after_domains)?;
        if let Some(inode) = inode {
            let rest =
                stop_the_rest(inode, holder).map_err(|m| fail("stop the lab's processes", m))?;
            done.extend(rest.into_iter().map(|d| format!("{}{d}", self.label)));
        }
        if let Some(h) = holder {
            h.stop(Duration::from_secs(5))
                .map_err(|e| fail("stop the namespace holder", e.into()))?;
            done.push(format!(
                "{}stopped the namespace holder (pid {})",
                self.label, h.pid
            ));
        }
        if netns.exists() {
            let mut del = Command::new("ip");
            del.args(["netns", "del", &self.netns]);
            crate::process::exec::stdout_blocking(&mut del, Duration::from_secs(10))
                .map_err(|e| fail("delete the network namespace", e.into()))?;
            done.push(format!(
                "{}deleted network namespace {}",
                self.label, self.netns
            ));
        }
        if let Some(left) = inode.map(process::in_netns).filter(|l| !l.is_empty()) {
            let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
            return Err(fail(
                "stop the lab's processes",
                StepError::StillRunning(pids),
            ));
        }
        Ok(done)
    }
}

/// Stops what else runs in the lab's network namespace, except the holder: qemu after a libvirtd
/// crash, libvirt's dnsmasq, daemons started by hand, shells of `lab exec`.
fn stop_the_rest(netns_inode: u64, holder: Option<Proc>) -> Result<Vec<String>, StepError> {
    let mut done = Vec::new();
    for p in process::in_netns(netns_inode) {
        if Some(p) == holder {
            continue;
        }
        // Gone meanwhile (a helper ends with its parent): nothing to stop.
        let Some(comm) = p.comm() else { continue };
        p.stop(Duration::from_secs(5))?;
        done.push(format!("stopped {comm} (pid {}) left in the lab", p.pid));
    }
    Ok(done)
}

/// Destroys and undefines every domain, then stops every network, through the lab's libvirtd.
/// Best effort: whatever fails here is stopped by PID afterwards.
fn remove_domains(ns: &Namespaces) -> Vec<String> {
    let virsh = |args: &[&str]| {
        super::lab_virsh().run_blocking(ns.command("virsh"), args, Duration::from_secs(30))
    };
    let names = crate::libvirt::virsh::parse_names;
    let mut done = Vec::new();
    for domain in virsh(&["list", "--all", "--name"])
        .map(|o| names(&o))
        .unwrap_or_default()
    {
        let _ = virsh(&["destroy", &domain]);
        if virsh(&["undefine", "--nvram", &domain]).is_ok() {
            done.push(format!("removed domain {domain}"));
        }
    }
    for net in virsh(&["net-list", "--name"])
        .map(|o| names(&o))
        .unwrap_or_default()
    {
        if virsh(&["net-destroy", &net]).is_ok() {
            done.push(format!("stopped network {net}"));
        }
    }
    done
}

/// Removes the lab directory; refuses when anything is mounted below it (nothing of the lab
/// is, in this mount namespace), since removing would then reach into that mount.
fn remove_dir(dir: &LabDir) -> Result<(), StepError> {
    let root = dir.root();
    if !root.exists() {
        return Ok(());
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    if let Some(m) = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .find(|m| std::path::Path::new(m).starts_with(root))
    {
        return Err(StepError::MountBelow {
            mount: m.to_string(),
            root: root.to_path_buf(),
        });
    }
    fs::remove_dir_all(root).map_err(|source| StepError::Remove {
        path: root.to_path_buf(),
        source,
    })
}
