//! `vnode host bridge create|delete`: the public bridge, without the seed's hole.
//!
//! The seed made br0 with nmcli and then disabled netfilter on every bridge of the host
//! (`bridge-nf-call-iptables=0`). vnode instead keeps bridge netfilter as it is and, only when
//! br_netfilter is loaded and would filter bridged frames, lets through exactly the frames bridged
//! between guests' tap devices (`vnet*`) and the uplink.
//!
//! The bridge takes the uplink's MAC, so the site's DHCP keeps giving the host its address, and
//! the uplink's addresses and routes move to the bridge. The host's connectivity drops for a few
//! seconds while that happens.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// `ip link add NAME` + these: a bridge without STP or forwarding delay, so ports forward at once
/// (the lab's bridge and `vnode host bridge create` alike).
pub const BRIDGE_LINK_OPTIONS: [&str; 6] =
    ["type", "bridge", "stp_state", "0", "forward_delay", "0"];

/// One command of a plan, as an argument vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub argv: Vec<String>,
    /// A failure of this step does not stop the plan (cleanup of things that may not exist).
    pub optional: bool,
}

impl Step {
    fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Step {
        Step {
            argv: argv.into_iter().map(Into::into).collect(),
            optional: false,
        }
    }
    fn optional(mut self) -> Step {
        self.optional = true;
        self
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    NetworkManager,
    Iproute2,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub backend: Backend,
    pub steps: Vec<Step>,
    pub notes: Vec<String>,
}

/// What the plan is made from: the uplink as it is now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uplink {
    pub name: String,
    pub mac: String,
    /// Addresses with prefix length ("192.0.2.10/24").
    pub addresses: Vec<String>,
    /// Gateways of default routes through the uplink.
    pub gateways: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BridgeError(pub String);

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    gateway: Option<IpAddr>,
}

fn run_json(args: &[&str]) -> Result<String, BridgeError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BridgeError(format!("cannot run ip ({e}); install iproute2")))?;
    if !out.status.success() {
        return Err(BridgeError(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads an interface's MAC, global addresses and default gateways.
pub fn read_uplink(name: &str) -> Result<Uplink, BridgeError> {
    let links = crate::process::ip_json::parse(&run_json(&["-j", "addr", "show", "dev", name])?)
        .map_err(|e| BridgeError(format!("cannot read `ip -j addr` output: {e}")))?;
    let link = links
        .into_iter()
        .next()
        .ok_or_else(|| BridgeError(format!("no interface {name}")))?;
    let routes: Vec<IpRoute> =
        serde_json::from_str(&run_json(&["-j", "route", "show", "dev", name])?).unwrap_or_default();
    Ok(Uplink {
        addresses: link.global_cidrs(),
        name: link.ifname,
        mac: link.address.unwrap_or_default(),
        gateways: routes
            .into_iter()
            .filter(|r| r.dst == "default")
            .filter_map(|r| r.gateway)
            .collect(),
    })
}

/// Is NetworkManager managing this host?
pub fn network_manager_running() -> bool {
    Command::new("nmcli")
        .args(["-t", "-f", "RUNNING", "general"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "running")
}

/// bridge-nf-call-iptables: None when br_netfilter is not loaded.
pub fn bridge_netfilter() -> Option<bool> {
    std::fs::read_to_string(Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables"))
        .ok()
        .map(|s| s.trim() == "1")
}

fn comment(bridge: &str) -> String {
    format!("vnode-bridge-{bridge}")
}

/// iptables rules that pass frames bridged between guests' taps and the uplink, and between guests.
fn forward_rules(bridge: &str, uplink: &str, action: &str) -> Vec<Step> {
    [("vnet+", uplink), (uplink, "vnet+"), ("vnet+", "vnet+")]
        .into_iter()
        .map(|(i, o)| {
            let step = Step::new([
                "iptables",
                action,
                "FORWARD",
                "-m",
                "physdev",
                "--physdev-is-bridged",
                "--physdev-in",
                i,
                "--physdev-out",
                o,
                "-m",
                "comment",
                "--comment",
                &comment(bridge),
                "-j",
                "ACCEPT",
            ]);
            if action == "-D" {
                step.optional()
            } else {
                step
            }
        })
        .collect()
}

fn netfilter_note(nf: Option<bool>) -> String {
    match nf {
        None => "br_netfilter is not loaded: bridged frames bypass iptables, so no rule is needed".into(),
        Some(false) => "bridge-nf-call-iptables is 0: bridged frames bypass iptables, so no rule is needed".into(),
        Some(true) => "bridge-nf-call-iptables is 1: narrow FORWARD rules let only frames bridged between guests (vnet*) and the uplink through; bridge netfilter stays on".into(),
    }
}

pub fn create_plan(bridge: &str, uplink: &Uplink, backend: Backend, nf: Option<bool>) -> Plan {
    let mut steps = Vec::new();
    match backend {
        Backend::Iproute2 => {
            steps.push(Step::new(
                ["ip", "link", "add", bridge]
                    .into_iter()
                    .chain(BRIDGE_LINK_OPTIONS),
            ));
            steps.push(Step::new([
                "ip",
                "link",
                "set",
                bridge,
                "address",
                &uplink.mac,
            ]));
            steps.push(Step::new([
                "ip",
                "link",
                "set",
                &uplink.name,
                "master",
                bridge,
            ]));
            steps.push(Step::new(["ip", "link", "set", bridge, "up"]));
            move_addresses(&mut steps, uplink, &uplink.name, bridge);
        }
        Backend::NetworkManager => {
            steps.push(Step::new([
                "nmcli",
                "connection",
                "add",
                "type",
                "bridge",
                "ifname",
                bridge,
                "con-name",
                bridge,
                "bridge.stp",
                "no",
                "bridge.mac-address",
                &uplink.mac,
            ]));
            let port = format!("{bridge}-port-{}", uplink.name);
            steps.push(Step::new([
                "nmcli",
                "connection",
                "add",
                "type",
                "bridge-slave",
                "ifname",
                &uplink.name,
                "master",
                bridge,
                "con-name",
                &port,
            ]));
            steps.push(Step::new(["nmcli", "connection", "up", bridge]));
            steps.push(Step::new(["nmcli", "connection", "up", &port]));
        }
    }
    if nf == Some(true) {
        steps.extend(forward_rules(bridge, &uplink.name, "-I"));
    }
    let notes = vec![
        format!(
            "{bridge} takes {}'s MAC {}, so the site's DHCP keeps giving the host its address",
            uplink.name, uplink.mac
        ),
        "the host's network connectivity drops for a few seconds while addresses move".into(),
        netfilter_note(nf),
    ];
    Plan {
        backend,
        steps,
        notes,
    }
}

/// Moves the addresses and default routes of `state` (read off interface `from`) to `to`.
fn move_addresses(steps: &mut Vec<Step>, state: &Uplink, from: &str, to: &str) {
    for a in &state.addresses {
        steps.push(Step::new(["ip", "addr", "del", a, "dev", from]));
        steps.push(Step::new(["ip", "addr", "add", a, "dev", to]));
    }
    for gw in &state.gateways {
        let gw = gw.to_string();
        steps.push(Step::new([
            "ip", "route", "replace", "default", "via", &gw, "dev", to,
        ]));
    }
}

/// Reverts `create_plan`: the uplink gets its addresses back, the bridge goes away.
pub fn delete_plan(bridge: &str, bridge_state: &Uplink, uplink: &str, backend: Backend) -> Plan {
    let mut steps = forward_rules(bridge, uplink, "-D");
    match backend {
        Backend::Iproute2 => {
            steps.push(Step::new(["ip", "link", "set", uplink, "nomaster"]));
            steps.push(Step::new(["ip", "link", "set", uplink, "up"]));
            move_addresses(&mut steps, bridge_state, bridge, uplink);
            steps.push(Step::new(["ip", "link", "del", bridge]));
        }
        Backend::NetworkManager => {
            steps.push(
                Step::new([
                    "nmcli",
                    "connection",
                    "delete",
                    &format!("{bridge}-port-{uplink}"),
                ])
                .optional(),
            );
            steps.push(Step::new(["nmcli", "connection", "delete", bridge]));
            steps.push(Step::new(["nmcli", "device", "connect", uplink]));
        }
    }
    Plan {
        backend,
        steps,
        notes: vec![
            "the host's network connectivity drops for a few seconds while addresses move back"
                .into(),
        ],
    }
}

/// The bridge's uplink: its one member that is not a guest's tap device.
pub fn bridge_uplink(bridge: &str) -> Result<String, BridgeError> {
    let brif = Path::new("/sys/class/net").join(bridge).join("brif");
    let members: Vec<String> = std::fs::read_dir(&brif)
        .map_err(|_| BridgeError(format!("{bridge} is not a bridge on this host")))?
        .filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
        .filter(|n| !n.starts_with("vnet") && !n.starts_with("tap"))
        .collect();
    match members.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(BridgeError(format!(
            "{bridge} has no uplink member; delete it with `ip link del {bridge}`"
        ))),
        many => Err(BridgeError(format!(
            "{bridge} has several uplinks ({}); vnode did not make it this way",
            many.join(", ")
        ))),
    }
}

/// Runs the steps in order; stops at the first failure of a required step.
pub fn apply(plan: &Plan) -> Result<(), BridgeError> {
    for step in &plan.steps {
        let out = Command::new(&step.argv[0])
            .args(&step.argv[1..])
            .output()
            .map_err(|e| BridgeError(format!("cannot run `{step}`: {e}")))?;
        if !out.status.success() && !step.optional {
            return Err(BridgeError(format!(
                "`{step}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink() -> Uplink {
        Uplink {
            name: "eth0".into(),
            mac: "02:fc:00:00:00:01".into(),
            addresses: vec!["192.0.2.10/24".into()],
            gateways: vec!["192.0.2.1".parse().unwrap()],
        }
    }

    #[test]
    fn iproute2_plan_keeps_the_mac_and_moves_addresses() {
        let plan = create_plan("br0", &uplink(), Backend::Iproute2, None);
        let text: Vec<String> = plan.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(text[1], "ip link set br0 address 02:fc:00:00:00:01");
        assert!(text.contains(&"ip addr add 192.0.2.10/24 dev br0".to_string()));
        assert!(text.contains(&"ip route replace default via 192.0.2.1 dev br0".to_string()));
        assert!(
            !text
                .iter()
                .any(|t| t.contains("bridge-nf-call") || t.contains("iptables")),
            "{text:?}"
        );
        assert!(plan.notes.iter().any(|n| n.contains("no rule is needed")));
    }

    #[test]
    fn with_bridge_netfilter_only_narrow_rules_are_added() {
        let plan = create_plan("br0", &uplink(), Backend::Iproute2, Some(true));
        let rules: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| s.argv[0] == "iptables")
            .map(|s| s.to_string())
            .collect();
        assert_eq!(rules.len(), 3);
        assert!(
            rules
                .iter()
                .all(|r| r.contains("--physdev-is-bridged") && r.contains("vnet+")),
            "{rules:?}"
        );
        assert!(
            !plan
                .steps
                .iter()
                .any(|s| s.argv.iter().any(|a| a.contains("sysctl")))
        );
    }

    #[test]
    fn network_manager_plan_uses_nmcli_with_the_uplink_mac() {
        let plan = create_plan("br0", &uplink(), Backend::NetworkManager, None);
        assert!(plan.steps.iter().all(|s| s.argv[0] == "nmcli"));
        assert!(
            plan.steps[0]
                .argv
                .contains(&"02:fc:00:00:00:01".to_string())
        );
        let del = delete_plan("br0", &Uplink::default(), "eth0", Backend::NetworkManager);
        assert!(
            del.steps
                .iter()
                .any(|s| s.to_string() == "nmcli connection delete br0")
        );
    }
}
