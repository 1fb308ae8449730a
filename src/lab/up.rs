//! `vnode lab up`: the lab's machine with libvirt's daemons, the private network, the public
//! bridges and the site DHCP/DNS, in that order. With hosts (`--hosts N`) the site gets the
//! bridges and the DHCP/DNS but no libvirt daemon, and each host comes up as a hypervisor of its
//! own (the same sequence, see machine.rs), joined to the site's bridges and reached through its
//! sshd. The state is saved after every step, and a failing step undoes everything before it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::dnsmasq::PublicDhcp;
use super::down::{host_leftovers, teardown};
use super::machine::{At, MachineStarter, Record};
use super::paths::LabDir;
use super::pools::{lab_pools, public_nets};
use super::process::wait_until;
use super::site_hosts::{
    check_count, check_tools, host_addresses, host_name, host_uri, veth_names,
};
use super::ssh_keys::{self, CONTROLLER_KEY, ROOT_SSH};
use super::sshd::{PRIVSEP_DIR, SSHD, SshdConfig};
use super::state::{LabHost, LabLock, LabState, Machine, PublicNet, bridges};
use super::{LabError, LabName, netns_path, require_root, tool};
use crate::plan::pool::Pools;

pub enum UpOutcome {
    /// Started; `cleaned` names the stale state of an earlier lab that was removed first.
    Started {
        cleaned: Option<String>,
    },
    AlreadyUp,
}

pub struct UpReport {
    pub state: LabState,
    pub outcome: UpOutcome,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// Brings lab `name` up serving `pools`, with `hosts` hypervisor hosts (0: the lab is its own
/// single hypervisor).
pub fn up(name: &LabName, pools: &Pools, hosts: u8) -> Result<UpReport, LabError> {
    require_root()?;
    check_count(name, hosts)?;
    let t0 = Instant::now();
    let pools = lab_pools(pools, name)?;
    let nets = public_nets(&pools);
    // Before anything is created: a lab whose hosts have no addresses fails here.
    let addresses = match hosts {
        0 => Vec::new(),
        n => {
            check_tools(name)?;
            host_addresses(name, &pools, &nets, n.into())?
        }
    };
    let dir = LabDir::of(name);
    let _lock = LabLock::acquire(name, &dir)?;
    let mut cleaned = None;
    match LabState::load(name, &dir)? {
        Some(state) => {
            let problems = state.problems();
            if problems.is_empty() {
                let mut warnings = plan_changes(&state, &pools);
                warnings.extend(host_changes(&state, hosts));
                return Ok(UpReport {
                    warnings,
                    state,
                    outcome: UpOutcome::AlreadyUp,
                    elapsed: t0.elapsed(),
                });
            }
            teardown(name, &dir, Some(&state))?;
            cleaned = Some(problems.join(", "));
        }
        None if netns_path(name).exists()
            || dir.root().exists()
            || !host_leftovers(name).is_empty() =>
        {
            teardown(name, &dir, None)?;
            cleaned = Some("leftovers without a state file".into());
        }
        None => {}
    }
    let record = Record::new(&dir, LabState::new(name, &dir));
    let started = start(name, &dir, &record, &pools, &nets, &addresses);
    let state = record.into_state();
    if let Err(e) = started {
        return Err(match teardown(name, &dir, Some(&state)) {
            Ok(_) => e,
            Err(e2) => LabError::Failed {
                lab: name.clone(),
                stage: "up".into(),
                message: format!("{e}; undoing it failed too: {e2}"),
            },
        });
    }
    Ok(UpReport {
        warnings: other_networks(&pools),
        state,
        outcome: UpOutcome::Started { cleaned },
        elapsed: t0.elapsed(),
    })
}

/// The lab serves the plan it was started with; say so when the config now asks for another.
fn plan_changes(state: &LabState, pools: &Pools) -> Vec<String> {
    if state.public == public_nets(pools) {
        return Vec::new();
    }
    vec![format!(
        "the config's pools have changed since the lab was started; run `vnode {flag} lab down` \
         and `vnode {flag} lab up` to serve the new plan",
        flag = state.name.flag()
    )]
}

/// The lab has the hosts it was started with; say so when `up` now asks for another number.
fn host_changes(state: &LabState, hosts: u8) -> Vec<String> {
    let have = state.hosts.len();
    if have == usize::from(hosts) {
        return Vec::new();
    }
    vec![format!(
        "lab {lab} runs with {have} host(s), not {hosts}; run `vnode {flag} lab down` and \
         `vnode {flag} lab up --hosts {hosts}` for that",
        lab = state.name,
        flag = state.name.flag()
    )]
}

/// The lab provides libvirt's `default` network only.
fn other_networks(pools: &Pools) -> Vec<String> {
    pools
        .all()
        .iter()
        .filter(|p| p.network != "default")
        .map(|p| {
            format!(
                "pool '{}' uses libvirt network '{}', which the lab does not create (it has \
                 'default' only)",
                p.stem, p.network
            )
        })
        .collect()
}

/// Everything `up` starts, each step recorded; the caller undoes it all when this fails. The
/// machines' namespace handles are closed when this returns, before any teardown.
fn start(
    lab: &LabName,
    dir: &LabDir,
    record: &Record,
    pools: &Pools,
    nets: &[PublicNet],
    addresses: &[std::net::Ipv4Addr],
) -> Result<(), LabError> {
    prepare_lab_dir(lab, dir, record)?;
    let mut site = MachineStarter::new(lab, record, At::Site, dir.site());
    if addresses.is_empty() {
        site.start_hypervisor()?;
        create_bridges(&site, record, nets)?;
        start_dhcp(&site, dir, record, pools, nets)?;
    } else {
        prepare_hosts(lab, dir, record, addresses)?;
        start_with_hosts(lab, dir, record, &mut site, pools, nets)?;
    }
    record.update(|s| s.complete = true)
}

/// The lab directory, its state file and the site DHCP/DNS's directory.
fn prepare_lab_dir(lab: &LabName, dir: &LabDir, record: &Record) -> Result<(), LabError> {
    let io = |e| LabError::io(lab, "prepare the lab directory", e);
    fs::create_dir_all(dir.root()).map_err(io)?;
    fs::set_permissions(dir.root(), fs::Permissions::from_mode(0o755)).map_err(io)?;
    record.update(|_| {})?;
    fs::create_dir_all(dir.public("")).map_err(io)
}

/// The hosts' keys and records, before any of them is started: each host's sshd host key, the
/// controller key all of them authorize, the site's known_hosts pinning every host's key.
fn prepare_hosts(
    lab: &LabName,
    dir: &LabDir,
    record: &Record,
    addresses: &[std::net::Ipv4Addr],
) -> Result<(), LabError> {
    let stage = "prepare the hosts' ssh keys";
    let fail = |e: super::ssh_keys::KeygenError| LabError::Step {
        lab: lab.clone(),
        stage: stage.into(),
        source: Box::new(e.into()),
    };
    let io = |e| LabError::io(lab, stage, e);
    let ssh = dir.controller_ssh();
    fs::create_dir_all(&ssh).map_err(io)?;
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).map_err(io)?;
    ssh_keys::ensure_mount_point().map_err(io)?;
    let controller = ssh.join(CONTROLLER_KEY);
    let authorized =
        ssh_keys::generate(&controller, &format!("vnode-lab-{lab}-controller")).map_err(fail)?;
    let mut hosts = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let name = host_name(i + 1);
        let hdir = dir.host(&name);
        fs::create_dir_all(hdir.root()).map_err(io)?;
        fs::write(hdir.sshd("authorized_keys"), format!("{authorized}\n")).map_err(io)?;
        let host_key = ssh_keys::generate(
            &hdir.sshd(super::sshd::HOST_KEY),
            &format!("vnode-lab-{lab}-{name}"),
        )
        .map_err(fail)?;
        hosts.push(LabHost {
            machine: Machine::new(lab.host_netns(&name)),
            name,
            sshd: None,
            address: *address,
            uri: host_uri(*address),
            host_key,
        });
    }
    let known = ssh_keys::known_hosts(hosts.iter().map(|h| (h.address, h.host_key.as_str())));
    fs::write(ssh.join("known_hosts"), known).map_err(io)?;
    record.update(|s| s.hosts = hosts)
}

/// The "site LAN": each pool's bridge, with the lab's address in each subnet on it.
fn create_bridges(
    site: &MachineStarter,
    record: &Record,
    nets: &[PublicNet],
) -> Result<(), LabError> {
    let stage = "create the public bridges";
    for bridge in bridges(nets) {
        add_bridge(site, stage, bridge)?;
        for net in nets.iter().filter(|n| n.bridge == bridge) {
            site.run_in(
                stage,
                "ip",
                &["addr", "add", &net.host_cidr(), "dev", bridge],
            )?;
        }
        site.run_in(stage, "ip", &["link", "set", bridge, "up"])?;
    }
    record.update(|s| s.public = nets.to_vec())
}

/// A bridge as vnode's host bridges are made (no STP, no forwarding delay), still down.
fn add_bridge(machine: &MachineStarter, stage: &str, bridge: &str) -> Result<(), LabError> {
    let add: Vec<&str> = ["link", "add", bridge]
        .into_iter()
        .chain(crate::setup::bridge::BRIDGE_LINK_OPTIONS)
        .collect();
    machine.run_in(stage, "ip", &add).map(|_| ())
}

/// The site DHCP/DNS: dnsmasq on the bridges, serving the plan.
fn start_dhcp(
    site: &MachineStarter,
    dir: &LabDir,
    record: &Record,
    pools: &Pools,
    nets: &[PublicNet],
) -> Result<(), LabError> {
    let stage = "start the public DHCP/DNS (dnsmasq)";
    let io = |e| site.io(stage, e);
    let dhcp = PublicDhcp {
        nets: nets.to_vec(),
        pid_file: dir.public("dnsmasq.pid"),
        lease_file: dir.public("dnsmasq.leases"),
        log_file: dir.public("dnsmasq.log"),
        plan_file: dir.public("plan.conf"),
    };
    let conf = dir.public("dnsmasq.conf");
    fs::write(&dhcp.plan_file, PublicDhcp::plan(pools)).map_err(io)?;
    fs::write(&conf, dhcp.config()).map_err(io)?;
    let mut cmd = site.ns().command("dnsmasq");
    cmd.arg(format!("--conf-file={}", conf.display()));
    tool::start_daemon(
        &mut cmd,
        &dir.public("dnsmasq.out"),
        Duration::from_secs(30),
    )
    .map_err(|e| site.daemon_failed(stage, e, &dhcp.log_file))?;
    let dnsmasq = site.read_pid_file(stage, &dhcp.pid_file)?;
    record.update(|s| s.dnsmasq = Some(dnsmasq))
}

/// The site and the hosts. Each host comes up as a hypervisor in a thread of its own while the
/// site comes up in this one (most of it is waiting for daemons); then each host, again in its
/// own thread, is joined to the site's bridges and gets its sshd. Every thread is waited for;
/// the first failure is returned.
fn start_with_hosts(
    lab: &LabName,
    dir: &LabDir,
    record: &Record,
    site: &mut MachineStarter,
    pools: &Pools,
    nets: &[PublicNet],
) -> Result<(), LabError> {
    let hosts = record.read(|s| s.hosts.clone());
    std::thread::scope(|scope| {
        let threads: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                scope.spawn(move || {
                    let mut m = MachineStarter::new(lab, record, At::Host(i), dir.host(&host.name));
                    m.start_hypervisor().map(|()| m)
                })
            })
            .collect();
        let site_up = site
            .start_plain(&[(dir.controller_ssh(), PathBuf::from(ROOT_SSH))])
            .and_then(|()| create_bridges(site, record, nets))
            .and_then(|()| start_dhcp(site, dir, record, pools, nets));
        let machines = join_all(lab, threads)?;
        site_up?;
        let site = &*site;
        let threads: Vec<_> = machines
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let host = &hosts[i];
                scope.spawn(move || {
                    let holder = record
                        .read(|s| s.hosts[i].machine.holder)
                        .expect("a started machine has a holder");
                    connect_to_site(&m, site, nets, host, holder.pid)?;
                    start_sshd(&m, record, i, host)?;
                    wait_for_ssh(&m, site, host)
                })
            })
            .collect();
        join_all(lab, threads).map(|_| ())
    })
}

/// Waits for every thread; their results, or the first failure.
fn join_all<T>(
    lab: &LabName,
    threads: Vec<std::thread::ScopedJoinHandle<'_, Result<T, LabError>>>,
) -> Result<Vec<T>, LabError> {
    let mut out = Vec::new();
    let mut first = None;
    for (i, t) in threads.into_iter().enumerate() {
        let done = t.join().unwrap_or_else(|_| {
            Err(LabError::Failed {
                lab: lab.clone(),
                stage: format!("start host {}", host_name(i + 1)),
                message: "its thread panicked".into(),
            })
        });
        match done {
            Ok(v) => out.push(v),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A bridge in the host for each of the site's, joined to it by a veth pair (created in the
/// site with its peer straight in the host, so no end is ever in the machine's namespace), and
/// the host's address on the default pool's bridge.
fn connect_to_site(
    host_machine: &MachineStarter,
    site: &MachineStarter,
    nets: &[PublicNet],
    host: &LabHost,
    holder_pid: i32,
) -> Result<(), LabError> {
    let stage = "connect to the site LAN";
    let pid = holder_pid.to_string();
    // The subnet the host's address is from (the default pool's, see host_addresses).
    let home = nets.iter().find(|n| n.subnet.contains(&host.address));
    for (j, bridge) in bridges(nets).into_iter().enumerate() {
        let (site_end, host_end) = veth_names(&host.name, bridge, j);
        add_bridge(host_machine, stage, bridge)?;
        site.run_in(
            stage,
            "ip",
            &[
                "link", "add", &site_end, "type", "veth", "peer", "name", &host_end, "netns", &pid,
            ],
        )?;
        site.run_in(
            stage,
            "ip",
            &["link", "set", &site_end, "master", bridge, "up"],
        )?;
        host_machine.run_in(
            stage,
            "ip",
            &["link", "set", &host_end, "master", bridge, "up"],
        )?;
        if let Some(net) = home.filter(|n| n.bridge == bridge) {
            let cidr = format!("{}/{}", host.address, net.subnet.prefix_len());
            host_machine.run_in(stage, "ip", &["addr", "add", &cidr, "dev", bridge])?;
        }
        host_machine.run_in(stage, "ip", &["link", "set", bridge, "up"])?;
    }
    Ok(())
}

/// The host's sshd, in the host's namespaces (so its sessions reach the host's libvirtd), on
/// the host's address only.
fn start_sshd(
    machine: &MachineStarter,
    record: &Record,
    i: usize,
    host: &LabHost,
) -> Result<(), LabError> {
    let stage = "start sshd";
    let dir = machine.dir();
    let io = |e: std::io::Error| machine.fail(stage, e.to_string());
    fs::create_dir_all(PRIVSEP_DIR).map_err(io)?;
    let config = SshdConfig::for_host(dir, host.address);
    let conf = dir.sshd("sshd_config");
    fs::write(&conf, config.render()).map_err(io)?;
    let log = dir.sshd("sshd.log");
    let mut cmd = machine.ns().command(SSHD);
    cmd.arg("-f").arg(&conf).arg("-E").arg(&log);
    tool::start_daemon(&mut cmd, &dir.sshd("sshd.out"), Duration::from_secs(30))
        .map_err(|e| machine.daemon_failed(stage, e, &log))?;
    let sshd = machine
        .read_pid_file(stage, &config.pid_file)
        .map_err(|e| machine.fail(stage, format!("{e}{}", tool::tail_of(&log))))?;
    record.update(|s| s.hosts[i].sshd = Some(sshd))
}

/// Done when the host's libvirtd answers the site through ssh, as vnode will reach it.
fn wait_for_ssh(
    machine: &MachineStarter,
    site: &MachineStarter,
    host: &LabHost,
) -> Result<(), LabError> {
    let stage = "answer the site through ssh";
    let virsh = crate::libvirt::virsh::Virsh::new(&host.uri);
    let mut last = String::new();
    let answers = wait_until(Duration::from_secs(20), || {
        match virsh.run_blocking(
            site.ns().command("virsh"),
            &["version"],
            Duration::from_secs(10),
        ) {
            Ok(_) => true,
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    if answers {
        return Ok(());
    }
    let log = tool::tail_of(&machine.dir().sshd("sshd.log"));
    Err(machine.fail(stage, format!("{}: {last}{log}", host.uri)))
}
