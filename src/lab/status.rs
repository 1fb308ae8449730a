//! `vnode lab status`: what the state file says, checked against what really runs.

use std::time::Duration;

use serde::Serialize;

use super::namespace::Namespaces;
use super::paths::LabDir;
use super::state::LabState;
use super::state::PublicNet;
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
    /// Why the lab is not fully up.
    pub problems: Vec<String>,
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
    st.processes = state
        .processes()
        .into_iter()
        .map(|(role, p)| ProcessStatus {
            role,
            pid: p.pid,
            alive: p.is_alive(),
        })
        .collect();
    let Some(ns) = state
        .holder
        .and_then(|h| Namespaces::of(&h, &dir.xdg_cache()).ok())
    else {
        return Ok(st);
    };
    let run = |program: &str, args: &[&str]| {
        let mut cmd = ns.command(program);
        cmd.args(args);
        crate::exec::stdout_blocking(&mut cmd, Duration::from_secs(10))
    };
    match run("ip", &["-j", "addr", "show"]) {
        Ok(json) => st.interfaces = interfaces(&json),
        Err(e) => st.problems.push(e),
    }
    if state.libvirtd.is_some_and(|p| p.is_alive()) {
        let virsh = |args: &[&str]| {
            super::lab_virsh().run_blocking(ns.command("virsh"), args, Duration::from_secs(10))
        };
        match virsh(&["net-list", "--all"]) {
            Ok(out) => st.networks = parse_network_list(&out),
            Err(e) => st.problems.push(e.to_string()),
        }
        match virsh(&["list", "--all"]) {
            Ok(out) => st.domains = parse_domain_list(&out),
            Err(e) => st.problems.push(e.to_string()),
        }
    }
    st.up = st.problems.is_empty();
    Ok(st)
}

/// `ip -j addr show` → interfaces with their addresses.
fn interfaces(json: &str) -> Vec<Interface> {
    crate::ip_json::parse(json)
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
