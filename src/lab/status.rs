//! `vnode lab status`: what the state file says, checked against what really runs.

use std::time::Duration;

use serde::Serialize;

use super::namespace::Namespaces;
use super::paths::LabDir;
use super::state::{LabHost, LabState, PublicNet};
use super::{LabError, LabName, netns_path, require_root};
use crate::libvirt::virsh::{DomainEntry, NetworkEntry, parse_domain_list, parse_network_list};

#[derive(Debug, Serialize)]
pub struct LabStatus {
    pub name: LabName,
    /// Everything `up` started runs.
    pub up: bool,
    pub dir: String,
    pub netns: String,
    pub netns_exists: bool,
    pub processes: Vec<ProcessStatus>,
    pub public: Vec<PublicNet>,
    pub interfaces: Vec<Interface>,
    pub networks: Vec<NetworkEntry>,
    pub domains: Vec<DomainEntry>,
    /// The lab's hosts (`lab up --hosts N`); empty for a lab without.
    pub hosts: Vec<HostStatus>,
    /// Why the lab is not fully up.
    pub problems: Vec<String>,
}

/// One host of the lab, checked.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub netns: String,
    pub address: std::net::Ipv4Addr,
    pub uri: String,
    pub processes: Vec<ProcessStatus>,
    /// Its libvirtd answers the site through ssh (`virsh -c URI version` in the site).
    pub answers: bool,
    /// What the site got instead of an answer.
    pub error: Option<String>,
    /// Its libvirt networks and domains (asked inside the host).
    pub networks: Vec<NetworkEntry>,
    pub domains: Vec<DomainEntry>,
}

#[derive(Debug, Serialize)]
pub struct ProcessStatus {
    pub role: &'static str,
    pub pid: i32,
    pub alive: bool,
}

#[derive(Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub state: String,
    pub addresses: Vec<String>,
}

pub fn status(name: &LabName) -> Result<LabStatus, LabError> {
    require_root()?;
    let dir = LabDir::of(name);
    let state = LabState::load(name, &dir)?;
    let mut st = LabStatus {
        name: name.clone(),
        up: false,
        dir: dir.root().display().to_string(),
        netns: name.netns(),
        netns_exists: netns_path(name).exists(),
        processes: Vec::new(),
        public: Vec::new(),
        interfaces: Vec::new(),
        networks: Vec::new(),
        domains: Vec::new(),
        hosts: Vec::new(),
        problems: Vec::new(),
    };
    let Some(state) = state else {
        if st.netns_exists || dir.root().exists() {
            st.problems
                .push("leftovers of a lab without a state file".into());
        }
        return Ok(st);
    };
    st.problems = state.problems();
    st.up = st.problems.is_empty();
    st.public = state.public.clone();
    st.processes = processes(state.processes());
    let site = state
        .site
        .holder
        .and_then(|h| Namespaces::of(&h, &dir.site().xdg_cache()).ok());
    st.hosts = state
        .hosts
        .iter()
        .map(|h| host_status(h, &dir, site.as_ref()))
        .collect();
    let Some(ns) = site else {
        return Ok(st);
    };
    let run = |program: &str, args: &[&str]| {
        let mut cmd = ns.command(program);
        cmd.args(args);
        crate::process::exec::stdout_blocking(&mut cmd, Duration::from_secs(10))
    };
    match run("ip", &["-j", "addr", "show"]) {
        Ok(json) => st.interfaces = interfaces(&json),
        Err(e) => st.problems.push(e.to_string()),
    }
    if state.site.libvirtd.is_some_and(|p| p.is_alive()) {
        let (networks, domains) = libvirt_view(&ns, &mut st.problems);
        (st.networks, st.domains) = (networks, domains);
    }
    for h in &st.hosts {
        if let Some(e) = &h.error {
            st.problems.push(format!("{} does not answer: {e}", h.name));
        }
    }
    st.up = st.problems.is_empty();
    Ok(st)
}

fn processes(list: Vec<(&'static str, super::Proc)>) -> Vec<ProcessStatus> {
    list.into_iter()
        .map(|(role, p)| ProcessStatus {
            role,
            pid: p.pid,
            alive: p.is_alive(),
        })
        .collect()
}

/// The networks and domains of the libvirtd in `ns`; failures go to `problems`.
fn libvirt_view(
    ns: &Namespaces,
    problems: &mut Vec<String>,
) -> (Vec<NetworkEntry>, Vec<DomainEntry>) {
    let virsh = |args: &[&str]| {
        super::lab_virsh().run_blocking(ns.command("virsh"), args, Duration::from_secs(10))
    };
    let mut out = (Vec::new(), Vec::new());
    match virsh(&["net-list", "--all"]) {
        Ok(text) => out.0 = parse_network_list(&text),
        Err(e) => problems.push(e.to_string()),
    }
    match virsh(&["list", "--all"]) {
        Ok(text) => out.1 = parse_domain_list(&text),
        Err(e) => problems.push(e.to_string()),
    }
    out
}

/// A host: its processes, whether it answers the site through ssh, and what its libvirtd has.
fn host_status(host: &LabHost, dir: &LabDir, site: Option<&Namespaces>) -> HostStatus {
    let mut st = HostStatus {
        name: host.name.clone(),
        netns: host.machine.netns.clone(),
        address: host.address,
        uri: host.uri.clone(),
        processes: processes(host.processes()),
        answers: false,
        error: None,
        networks: Vec::new(),
        domains: Vec::new(),
    };
    match site {
        None => st.error = Some("the site is down".into()),
        Some(site) => {
            let virsh = crate::libvirt::virsh::Virsh::new(&host.uri);
            match virsh.run_blocking(site.command("virsh"), &["version"], Duration::from_secs(10)) {
                Ok(_) => st.answers = true,
                Err(e) => st.error = Some(e.to_string()),
            }
        }
    }
    let ns = host
        .machine
        .holder
        .and_then(|h| Namespaces::of(&h, &dir.host(&host.name).xdg_cache()).ok());
    if let Some(ns) = ns
        && host.machine.libvirtd.is_some_and(|p| p.is_alive())
    {
        // Its own problems are already in the state's (a dead libvirtd) or in `error`.
        (st.networks, st.domains) = libvirt_view(&ns, &mut Vec::new());
    }
    st
}

/// `ip -j addr show` → interfaces with their addresses.
fn interfaces(json: &str) -> Vec<Interface> {
    crate::process::ip_json::parse(json)
        .unwrap_or_default()
        .into_iter()
        .map(|l| Interface {
            addresses: l.cidrs(),
            state: l.operstate.unwrap_or_else(|| "?".into()),
            name: l.ifname,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_output_is_read() {
        let i = interfaces(
            r#"[{"ifname":"br0","operstate":"UP","addr_info":[{"local":"198.18.0.254","prefixlen":24}]}]"#,
        );
        assert_eq!(i[0].addresses, ["198.18.0.254/24"]);
    }
}
