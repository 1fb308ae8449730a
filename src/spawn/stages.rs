//! The stages of one node's bring-up, each a function with a typed error: existing domain,
//! prepare, define, lease, banner, login, cloud-init, facts. They know nothing of progress or
//! reports; the driver in [`super`] calls them in order and records where each node is.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::guest_facts::{self, Facts};
use super::leases::{LeaseError, Leases, POLL};
use crate::config::Config;
use crate::hosts::hypervisor::{Hypervisor, Keep, RemoveError, StageDisksError, Staged};
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::Lease;
use crate::libvirt::virt_install::{Accel, DomainFiles, VirtInstall, VirtInstallError};
use crate::node::{self, NodeArtifacts, NodeError};
use crate::plan::planned_node::PlannedNode;
use crate::ssh::{ClientKey, JumpPool, Session, SshError};

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("the preparation task ended abnormally: {0}")]
    Task(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Disks(#[from] StageDisksError),
    #[error(transparent)]
    Define(#[from] VirtInstallError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(
        "--wait-on public: {host} does not resolve ({source}); set the pool's public_subnet or domain"
    )]
    PublicUnresolved {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--wait-on public: {host} has no IPv4 address")]
    PublicNoIpv4 { host: String },
    #[error("sshd on {addr} did not answer ({last})")]
    NoBanner { addr: SocketAddr, last: String },
    #[error(
        "no sign of life within {seconds} s: neither its fresh-state watcher's line on the console \
         nor sshd's answer"
    )]
    NoSignOfLife { seconds: u64 },
    #[error(transparent)]
    WrongHostKey(SshError),
    #[error("could not log in: {0}")]
    Login(#[source] SshError),
    #[error("cloud-init did not finish in time")]
    CloudInitTimeout,
    #[error(
        "cloud-init finished with errors: {}; see `vnode ssh {node} -- cloud-init status --long`",
        errors.join("; ")
    )]
    CloudInitFailed { node: String, errors: Vec<String> },
    #[error("reading the node's facts: {0}")]
    Ssh(#[source] SshError),
    #[error(
        "the node calls itself '{actual}', not {expected}: cloud-init did not apply vnode's seed"
    )]
    WrongHostname { actual: String, expected: String },
    #[error(transparent)]
    FreshSave(Box<crate::fresh_state::save::SaveError>),
    #[error("cannot record the node's addresses: {0}")]
    Record(#[source] std::io::Error),
    #[error(
        "its domain is no longer running: libvirt says '{state}'; the last console lines are below \
         (`vnode log {node}` has all); remove it with `vnode destroy {node}` or spawn it again with --force"
    )]
    DomainDown { node: String, state: String },
    #[error("its domain disappeared (someone undefined it?); spawn {node} again with --force")]
    DomainGone { node: String },
    #[error(
        "its disk does not boot: the firmware says '{line}'; image {image} has no boot loader or \
         is not a bootable disk image (`qemu-img info` and `virt-filesystems -a` on it tell what \
         it holds); remove the node with `vnode destroy {node}`"
    )]
    NotBootable {
        node: String,
        image: String,
        line: String,
    },
    #[error(
        "its boot died before the network: {meaning}; the console says '{line}'{}; image {image} \
         does not boot as it is (the console lines are below); remove the node with \
         `vnode destroy {node}`",
        after(.cause)
    )]
    BootDied {
        node: String,
        image: String,
        meaning: &'static str,
        line: String,
        /// GRUB's `error:` line before its prompt.
        cause: Option<String>,
    },
    #[error(
        "libvirt at {uri}{} has not answered for {seconds} s ({source}); the guests may still be \
         running: once libvirtd is back, `vnode list` and `virsh -c {uri} list --all` show them",
        on_host(.host)
    )]
    LibvirtSilent {
        uri: String,
        /// The configured host's name, when there are `[[hosts]]`.
        host: Option<String>,
        seconds: u64,
        #[source]
        source: LibvirtError,
    },
    #[error(
        "public NIC {mac} got no address from the site DHCP within {seconds} s; the node stays up on \
         its private address {private}. The site DHCP lacks this line (dnsmasq form; `vnode plan {node} \
         --format isc-dhcpd` gives others): {plan_line}. Pass --public-optional if nodes need no public address"
    )]
    NoPublicAddress {
        node: String,
        mac: crate::plan::mac::Mac,
        seconds: u64,
        private: String,
        plan_line: String,
    },
}

/// Does a domain of the node's name exist?
pub async fn exists(host: &Hypervisor, node: &PlannedNode) -> Result<bool, StageError> {
    Ok(host.virsh().domain_state(&node.name()).await?.is_some())
}

/// `--force`: the existing domain and its files go first.
pub async fn replace(host: &Hypervisor, node: &PlannedNode) -> Result<(), StageError> {
    Ok(host.remove_node(&node.name(), Keep::Nothing).await?)
}

/// Writes the node's overlay, seed and keys (blocking file work, off the async threads), with
/// `identity`'s host key and instance id when given (a fresh state's). `files` is held while the
/// files are written, also when the caller stops waiting.
pub async fn prepare(
    config: &Arc<Config>,
    host: &Hypervisor,
    node: &PlannedNode,
    files: Arc<tokio::sync::Mutex<()>>,
    identity: Option<crate::node::identity::Identity>,
) -> Result<NodeArtifacts, StageError> {
    let (config, node) = (config.clone(), node.clone());
    let (paths, known_hosts) = (host.node_paths(&node.name()), host.known_hosts());
    let guard = files.lock_owned().await;
    Ok(tokio::task::spawn_blocking(move || {
        let _writing = guard;
        node::prepare(&config, &node, &paths, &known_hosts, identity.as_ref())
    })
    .await
    .map_err(StageError::Task)??)
}

/// Puts the node's disks where its domain will use them (see [`Hypervisor::stage_disks`]). If
/// that fails, nothing of the node may stay behind.
pub async fn stage_disks(
    host: &Hypervisor,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    to_save: bool,
) -> Result<Staged, StageError> {
    match host.stage_disks(node, artifacts, progress, to_save).await {
        Ok(staged) => Ok(staged),
        Err(e) => {
            let _ = host.remove_files(&node.name()).await;
            Err(e.into())
        }
    }
}

/// virt-install defines and starts the domain; the number of attempts it took (transient
/// errors are retried). If it fails, the domain was not created and nothing of the node may stay
/// behind.
pub async fn define(
    host: &Hypervisor,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
    files: DomainFiles,
    accel: Accel,
    extra_args: &[String],
) -> Result<u32, StageError> {
    let command = VirtInstall::for_node(
        node,
        host.uri(),
        files,
        &artifacts.osinfo.id,
        accel,
        extra_args,
    );
    match command.run().await {
        Ok(attempts) => Ok(attempts),
        Err(e) => {
            let _ = host.remove_files(&node.name()).await;
            Err(e.into())
        }
    }
}

/// The virt-install command for a prepared node on this host's own files (`--prepare-only`).
pub fn virt_install(
    host: &Hypervisor,
    node: &PlannedNode,
    artifacts: &NodeArtifacts,
    accel: Accel,
    extra_args: &[String],
) -> VirtInstall {
    VirtInstall::for_node(
        node,
        host.uri(),
        artifacts.domain_files(),
        &artifacts.osinfo.id,
        accel,
        extra_args,
    )
}

/// The private address from a lease that appeared after the domain was created.
pub async fn lease(
    leases: &Leases,
    node: &PlannedNode,
    baseline: &[Lease],
    deadline: Instant,
) -> Result<Ipv4Addr, StageError> {
    Ok(leases
        .wait_new(&node.id.network, node.id.private_mac, baseline, deadline)
        .await?)
}

/// The address to wait on with `--wait-on public`: the plan's address, else the DNS name's.
pub async fn public_address(node: &PlannedNode) -> Result<Ipv4Addr, StageError> {
    if let Some(ip) = node.id.public_ip {
        return Ok(ip);
    }
    let host = node.id.fqdn.clone().unwrap_or_else(|| node.name());
    let addrs = tokio::net::lookup_host((host.as_str(), 22))
        .await
        .map_err(|source| StageError::PublicUnresolved {
            host: host.clone(),
            source,
        })?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            _ => None,
        })
        .next()
        .ok_or_else(|| StageError::PublicNoIpv4 { host: host.clone() })
}

/// How vnode reaches a guest's sshd: directly, or through its host's sshd (a guest on a
/// `[[hosts]]` host has a private address only that host can route to).
#[derive(Clone)]
pub enum Route {
    Direct(SocketAddr),
    Via(JumpPool, SocketAddr),
}

impl Route {
    /// The route to the guest with private `address` on `host`.
    pub fn of(host: &Hypervisor, address: Ipv4Addr) -> Route {
        let addr = host.guest_ssh(address);
        match host.jump() {
            Some(jump) => Route::Via(jump.clone(), addr),
            None => Route::Direct(addr),
        }
    }

    pub fn target(&self) -> SocketAddr {
        match self {
            Route::Direct(a) | Route::Via(_, a) => *a,
        }
    }
}

/// Waits until the guest answers with an SSH banner: directly, or through its host's sshd (a
/// channel of the shared connection per attempt).
pub async fn banner(route: &Route, deadline: Instant) -> Result<(), StageError> {
    let addr = route.target();
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let attempt = async {
            let mut buf = [0u8; 4];
            match route {
                Route::Direct(addr) => {
                    TcpStream::connect(addr).await?.read_exact(&mut buf).await?;
                }
                Route::Via(jump, addr) => {
                    let mut s = jump.channel(*addr).await.map_err(std::io::Error::other)?;
                    s.read_exact(&mut buf).await?;
                }
            }
            Ok::<_, std::io::Error>(buf)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(buf)) if &buf == b"SSH-" => return Ok(()),
            Ok(Ok(_)) => last = "something that is not sshd answers".into(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".into(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StageError::NoBanner { addr, last })
}

/// Logs in, retrying while the guest is still installing keys; a wrong host key ends it at once.
pub async fn login(
    route: &Route,
    host_key: &str,
    key: &ClientKey,
    deadline: Instant,
) -> Result<Session, StageError> {
    let mut last = None;
    let timeout = Duration::from_secs(10);
    while Instant::now() < deadline {
        let attempt = match route {
            Route::Direct(addr) => {
                Session::connect(&addr.to_string(), host_key, key, timeout).await
            }
            Route::Via(jump, addr) => {
                Session::connect_via(jump, *addr, host_key, key, timeout).await
            }
        };
        match attempt {
            Ok(s) => return Ok(s),
            Err(e @ SshError::WrongHostKey { .. }) => return Err(StageError::WrongHostKey(e)),
            // An unknown host key, rejected keys, forwarding refused: waiting cannot help.
            Err(e) if e.is_permanent() => return Err(StageError::Login(e)),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StageError::Login(last.unwrap_or(SshError::Session {
        addr: route.target().to_string(),
        message: "no attempt before the deadline".into(),
    })))
}

/// Waits for cloud-init's end (its `result.json`); errors in it fail the node with their lines.
pub async fn cloud_init(
    session: &Session,
    node: &PlannedNode,
    deadline: Instant,
) -> Result<(), StageError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let out = tokio::time::timeout(remaining, session.exec(guest_facts::CLOUD_INIT_COMMAND))
        .await
        .map_err(|_| StageError::CloudInitTimeout)?
        .map_err(StageError::Ssh)?;
    let errors = guest_facts::parse_cloud_init_result(&out.stdout).map_err(|e| {
        StageError::CloudInitFailed {
            node: node.name(),
            errors: vec![e.to_string()],
        }
    })?;
    if !errors.is_empty() {
        return Err(StageError::CloudInitFailed {
            node: node.name(),
            errors,
        });
    }
    Ok(())
}

/// How long the public NIC's DHCP answer may come after cloud-init is done.
const PUBLIC_GRACE: Duration = Duration::from_secs(20);

/// PRETTY_NAME, hostname and both NICs' addresses, read from the node; the hostname must be the
/// node's (else the seed was not applied). `read`: the facts when an earlier command of the
/// session read them already (a restored node's first one).
pub async fn facts(
    session: &Session,
    node: &PlannedNode,
    deadline: Instant,
    read: Option<Facts>,
) -> Result<Facts, StageError> {
    let mut facts = match read {
        Some(facts) => facts,
        None => {
            let out = session
                .exec(guest_facts::FACTS_COMMAND)
                .await
                .map_err(StageError::Ssh)?;
            guest_facts::parse_facts(&out.stdout)
        }
    };
    let until = (Instant::now() + PUBLIC_GRACE).min(deadline);
    while facts.address_of(node.id.public_mac).is_none() && Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(o) = session.exec(guest_facts::ADDRESSES_COMMAND).await {
            facts.addresses = guest_facts::parse_facts(&o.stdout).addresses;
        }
    }
    if facts.hostname != node.name() {
        return Err(StageError::WrongHostname {
            actual: facts.hostname,
            expected: node.name(),
        });
    }
    Ok(facts)
}

/// Each node is meant to have both addresses: a public NIC without one is the site DHCP missing
/// the node's line, which the error quotes.
pub fn require_public(node: &PlannedNode, facts: &Facts) -> Result<(), StageError> {
    if facts.address_of(node.id.public_mac).is_some() {
        return Ok(());
    }
    let plan = crate::plan::site_dhcp::Plan::for_nodes([(&node.pool, node.id.number)]);
    let plan_line = plan
        .render(crate::plan::site_dhcp::PlanFormat::Dnsmasq)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("dhcp-host="))
        .unwrap_or_default()
        .to_string();
    Err(StageError::NoPublicAddress {
        node: node.name(),
        mac: node.id.public_mac,
        seconds: PUBLIC_GRACE.as_secs(),
        private: facts
            .address_of(node.id.private_mac)
            .map_or_else(|| "-".into(), |ip| ip.to_string()),
        plan_line,
    })
}

/// " (host NAME)" for a configured host, nothing for the local one.
fn on_host(host: &Option<String>) -> String {
    host.as_ref()
        .map(|h| format!(" (host {h})"))
        .unwrap_or_default()
}

/// ` after 'CAUSE'`, or nothing.
fn after(cause: &Option<String>) -> String {
    cause
        .as_deref()
        .map(|c| format!(" after '{c}'"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::images::catalog::Catalog;
    use crate::plan::planned_node::{self, HostName};

    #[test]
    fn a_node_without_its_public_address_is_told_the_dhcp_line_it_lacks() {
        let config = Config::defaults();
        let catalog = Catalog::load(None).unwrap();
        let r =
            crate::plan::spec::resolve(&["5".into()], &config.pools, &catalog, None, &[]).unwrap();
        let node = planned_node::plan(r, None, &catalog, &HostName::local()).remove(0);
        let private = std::net::Ipv4Addr::new(192, 168, 122, 9);
        let mut facts = Facts {
            addresses: vec![(node.id.private_mac, private)],
            ..Facts::default()
        };
        let e = require_public(&node, &facts).unwrap_err().to_string();
        assert!(
            e.contains("public NIC 52:54:00:00:00:05 got no address from the site DHCP")
                && e.contains("private address 192.168.122.9")
                && e.contains("dhcp-host=52:54:00:00:00:05,vnode05")
                && e.contains("--public-optional"),
            "{e}"
        );
        facts
            .addresses
            .push((node.id.public_mac, std::net::Ipv4Addr::new(198, 18, 0, 105)));
        assert!(require_public(&node, &facts).is_ok());
    }
}
