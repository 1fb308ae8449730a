//! vnode's namespace lab: a lab host in a box. libvirtd with its `default` NAT network, a public
//! bridge (`br0`) standing in for the site LAN, and the site's DHCP/DNS serving vnode's own plan,
//! all inside a network namespace and a private mount namespace, so nothing touches the host's
//! network and the host runs no libvirt daemon of its own.
//!
//! The namespaces belong to a *holder*, a process that only sleeps in them. The lab's daemons
//! are started in them, and `vnode --lab CMD` moves the vnode process itself into them
//! ([`enter`]), so vnode acts in a lab exactly as on a real host: same code, other namespaces.
//! The lab's copies of libvirt's directories (`/etc/libvirt`, `/var/lib/libvirt`, ...) are
//! bind-mounted over the real ones in the private mount namespace, so its libvirtd has its own
//! config, sockets, domains and leases.
//!
//! With hosts (`lab up --hosts N`) the lab is a small site: its own namespaces (the *site*)
//! keep the public bridges and the site DHCP/DNS but run no libvirt daemon, and each host
//! `h1`..`hN` is a machine of its own (network and mount namespaces, libvirtd, virtlogd, the
//! `default` network, an sshd) whose bridges are joined to the site's by veth pairs. Commands
//! in the lab run in the site and reach the hosts as `qemu+ssh://root@ADDRESS/system`, with the
//! lab's controller key and known_hosts as root's ~/.ssh there; the lab's hosts are vnode's
//! `[[hosts]]` in it ([`LabState::host_configs`]).
//!
//! Modules: [`name`] and [`paths`] (what a lab is called and where its files are), [`state`]
//! (what `up` started), [`process`] (PIDs checked by start time, stopped through pidfds),
//! [`namespace`] (joining a lab), [`pools`] (the addresses the lab serves), [`dnsmasq`] (the site
//! DHCP/DNS), [`machine`] (one machine's start: namespaces, libvirt), [`hosts`] (the hosts'
//! names, addresses and links), [`sshd`] and [`ssh_keys`] (how the site reaches them), [`up`],
//! [`down`], [`status`].

mod dnsmasq;
mod down;
mod error;
mod machine;
mod name;
mod namespace;
mod paths;
mod pools;
mod process;
mod site_hosts;
mod ssh_keys;
mod sshd;
mod state;
mod status;
mod tool;
mod up;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

pub use down::{DownReport, down};
pub use error::{LabError, StepError, require_root};
pub use name::{DEFAULT_LAB, LabName};
pub use paths::{LAB_ROOT, LabDir, MachineDir, existing_labs};
pub use pools::{LAB_SUPERNET, lab_pools, public_nets};
pub use process::Proc;
pub use site_hosts::MAX_HOSTS;
pub use state::{LabHost, LabState, Machine, PublicNet};
pub use status::{HostStatus, LabStatus, status};
pub use up::{UpOutcome, UpReport, up};

use namespace::Namespaces;

/// Where `ip netns add` puts the lab's network namespace.
fn netns_path(name: &LabName) -> PathBuf {
    PathBuf::from("/run/netns").join(name.netns())
}

/// Moves this process into the lab's network and mount namespaces and points XDG_CACHE_HOME
/// into the lab. Must run before any thread starts (the kernel refuses setns into a mount
/// namespace for a multi-threaded process), so `run` calls it first.
pub fn enter(lab: &str) -> Result<(), LabError> {
    let name = LabName::new(lab)?;
    require_root()?;
    let ns = namespaces(&name, None)?;
    ns.enter().map_err(|e| LabError::Io {
        lab: name.clone(),
        stage: "enter the lab's namespaces".into(),
        source: e,
    })
}

/// `vnode lab exec [--host H] -- CMD...`: runs CMD inside the lab (its site, or host `host`)
/// in place of this process; returns only when that fails.
pub fn exec(name: &LabName, host: Option<&str>, command: &[String]) -> LabError {
    let Some((program, args)) = command.split_first() else {
        return LabError::Failed {
            lab: name.clone(),
            stage: "exec".into(),
            message: "no command given".into(),
        };
    };
    if let Err(e) = require_root()
        .and_then(|()| namespaces(name, host))
        .and_then(|ns| {
            ns.enter()
                .map_err(|e| LabError::io(name, "enter the lab's namespaces", e))
        })
    {
        return e;
    }
    let e = Command::new(program).args(args).exec();
    LabError::Failed {
        lab: name.clone(),
        stage: "exec".into(),
        message: format!("cannot run `{program}`: {e}"),
    }
}

/// The lab's current state, when it has one (`None`: not up); for commands that run in it.
pub fn state_of(name: &LabName) -> Result<Option<LabState>, LabError> {
    LabState::load(name, &LabDir::of(name))
}

/// The namespaces of a lab whose site is fully up: the site's, or those of host `host` (which
/// only needs its holder: a host with its daemons stopped on purpose is still entered, to look
/// at it or start them again).
fn namespaces(name: &LabName, host: Option<&str>) -> Result<Namespaces, LabError> {
    let dir = LabDir::of(name);
    let Some(state) = LabState::load(name, &dir)? else {
        return Err(LabError::NotUp { lab: name.clone() });
    };
    let problems = state.site_problems();
    if !problems.is_empty() {
        return Err(LabError::Broken {
            lab: name.clone(),
            problems: problems.join(", "),
        });
    }
    let (holder, xdg_cache) = match host {
        None => (state.site.holder, dir.site().xdg_cache()),
        Some(h) => {
            let Some(found) = state.host(h) else {
                let have: Vec<&str> = state.hosts.iter().map(|h| h.name.as_str()).collect();
                return Err(LabError::NoSuchHost {
                    lab: name.clone(),
                    host: h.into(),
                    have: if have.is_empty() {
                        "it has none; start it with `lab up --hosts N`".into()
                    } else {
                        format!("it has {}", have.join(", "))
                    },
                });
            };
            (found.machine.holder, dir.host(h).xdg_cache())
        }
    };
    let holder = holder.expect("a complete lab's machines have holders");
    Namespaces::of(&holder, &xdg_cache).map_err(|e| LabError::Broken {
        lab: name.clone(),
        problems: e.to_string(),
    })
}

/// The lab's libvirtd, as vnode's virsh runner reaches it from inside the lab's namespaces.
fn lab_virsh() -> crate::libvirt::virsh::Virsh {
    crate::libvirt::virsh::Virsh::new("qemu:///system")
}
