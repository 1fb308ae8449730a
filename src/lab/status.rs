//! `vnode lab status`: what the state file says, checked against what really runs.

use std::time::Duration;

use serde::Serialize;

use super::namespace::Namespaces;
use super::paths::LabDir;
use super::state::LabState;
use super::state::PublicNet;
use super::{LabError, LabName, netns_path, require_root, tool};

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
    pub networks: Vec<Network>,
    pub domains: Vec<Domain>,
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

#[derive(Debug, Serialize)]
pub struct Network {
    pub name: String,
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct Domain {
    pub name: String,
    pub state: String,
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
        tool::output(&mut cmd, Duration::from_secs(10))
    };
    match run("ip", &["-j", "addr", "show"]) {
        Ok(json) => st.interfaces = interfaces(&json),
        Err(e) => st.problems.push(e),
    }
    if state.libvirtd.is_some_and(|p| p.is_alive()) {
        let virsh = |args: &[&str]| {
            let mut all = vec!["-c", "qemu:///system", "-q"];
            all.extend_from_slice(args);
            run("virsh", &all)
        };
        match virsh(&["net-list", "--all"]) {
            Ok(out) => st.networks = networks(&out),
            Err(e) => st.problems.push(e),
        }
        match virsh(&["list", "--all"]) {
            Ok(out) => st.domains = domains(&out),
            Err(e) => st.problems.push(e),
        }
    }
    st.up = st.problems.is_empty();
    Ok(st)
}

/// `ip -j addr show` → interfaces with their IPv4/IPv6 addresses.
fn interfaces(json: &str) -> Vec<Interface> {
    let Ok(serde_json::Value::Array(links)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    links
        .iter()
        .map(|l| Interface {
            name: l["ifname"].as_str().unwrap_or("?").into(),
            state: l["operstate"].as_str().unwrap_or("?").into(),
            addresses: l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
                .collect(),
        })
        .collect()
}

/// `virsh -q net-list --all`: "NAME STATE AUTOSTART PERSISTENT".
fn networks(out: &str) -> Vec<Network> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(Network {
                name: f.next()?.into(),
                active: f.next()? == "active",
            })
        })
        .collect()
}

/// `virsh -q list --all`: "ID NAME STATE", the state possibly two words ("shut off").
fn domains(out: &str) -> Vec<Domain> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _id = f.next()?;
            Some(Domain {
                name: f.next()?.into(),
                state: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_and_ip_output_is_read() {
        let d = domains(" 1    vnode03   running\n -    vnode04   shut off\n");
        assert_eq!(
            (d[1].name.as_str(), d[1].state.as_str()),
            ("vnode04", "shut off")
        );
        let n = networks(" default   active   no   yes\n");
        assert!(n[0].active);
        let i = interfaces(
            r#"[{"ifname":"br0","operstate":"UP","addr_info":[{"local":"198.18.0.254","prefixlen":24}]}]"#,
        );
        assert_eq!(i[0].addresses, ["198.18.0.254/24"]);
    }
}
