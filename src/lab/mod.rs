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
//! Modules: [`name`] and [`paths`] (what a lab is called and where its files are), [`state`]
//! (what `up` started), [`process`] (PIDs checked by start time, stopped through pidfds),
//! [`namespace`] (joining a lab), [`pools`] (the addresses the lab serves), [`dnsmasq`] (the site
//! DHCP/DNS), [`up`], [`down`], [`status`].

mod dnsmasq;
mod down;
mod error;
mod name;
mod namespace;
mod paths;
mod pools;
mod process;
mod state;
mod status;
mod tool;
mod up;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

pub use down::{DownReport, down};
pub use error::{LabError, require_root};
pub use name::{DEFAULT_LAB, LabName};
pub use paths::{LAB_ROOT, LabDir, existing_labs};
pub use pools::{LAB_SUPERNET, lab_pools, public_nets};
pub use process::Proc;
pub use state::{LabState, PublicNet};
pub use status::{LabStatus, status};
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
    let ns = namespaces(&name)?;
    ns.enter().map_err(|e| LabError::Io {
        lab: name.clone(),
        stage: "enter the lab's namespaces".into(),
        source: e,
    })
}

/// `vnode lab exec -- CMD...`: runs CMD inside the lab in place of this process; returns only
/// when that fails.
pub fn exec(name: &LabName, command: &[String]) -> LabError {
    let Some((program, args)) = command.split_first() else {
        return LabError::Failed {
            lab: name.clone(),
            stage: "exec".into(),
            message: "no command given".into(),
        };
    };
    if let Err(e) = enter(name.as_str()) {
        return e;
    }
    let e = Command::new(program).args(args).exec();
    LabError::Failed {
        lab: name.clone(),
        stage: "exec".into(),
        message: format!("cannot run `{program}`: {e}"),
    }
}

/// The namespaces of a lab that is fully up.
fn namespaces(name: &LabName) -> Result<Namespaces, LabError> {
    let dir = LabDir::of(name);
    let Some(state) = LabState::load(name, &dir)? else {
        return Err(LabError::NotUp { lab: name.clone() });
    };
    let problems = state.problems();
    if !problems.is_empty() {
        return Err(LabError::Broken {
            lab: name.clone(),
            problems: problems.join(", "),
        });
    }
    let holder = state.holder.expect("a complete lab has a holder");
    Namespaces::of(&holder, &dir.xdg_cache()).map_err(|e| LabError::Broken {
        lab: name.clone(),
        problems: e.to_string(),
    })
}

/// The lab's libvirtd, as vnode's virsh runner reaches it from inside the lab's namespaces.
fn lab_virsh() -> crate::libvirt::virsh::Virsh {
    crate::libvirt::virsh::Virsh::new("qemu:///system")
}
