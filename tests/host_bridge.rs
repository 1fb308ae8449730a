//! `vnode host bridge create|delete` for real, with iproute2, inside a network namespace this test
//! creates (and always deletes): the uplink is one end of a veth pair inside the namespace.

mod common;

use common::cli::Vnode;
use common::gate::{Needs, require_root_or_skip};
use common::netns::Netns;

/// `vnode host bridge ARGS...` inside the namespace.
fn bridge(ns: &Netns, args: &[&str]) -> Vnode {
    Vnode::new()
        .netns(&ns.name)
        .args(["host", "bridge"])
        .args(args)
}

fn ip_json(ns: &Netns, args: &[&str]) -> serde_json::Value {
    let out = ns.command("ip").arg("-j").args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn addresses(ns: &Netns, dev: &str) -> Vec<String> {
    ip_json(ns, &["addr", "show", "dev", dev])[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["family"] == "inet")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

fn default_route_dev(ns: &Netns) -> Option<String> {
    ip_json(ns, &["route", "show", "default"])[0]["dev"]
        .as_str()
        .map(String::from)
}

#[test]
fn iproute2_bridge_create_and_delete() {
    if require_root_or_skip(Needs::Netns) {
        return;
    }
    let ns = Netns::new("br");
    ns.run(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.run(&["ip", "addr", "add", "198.18.9.10/24", "dev", "up0"]);
    ns.run(&["ip", "link", "set", "up0", "up"]);
    ns.run(&["ip", "link", "set", "peer0", "up"]);
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "198.18.9.1",
        "dev",
        "up0",
    ]);
    let mac = ip_json(&ns, &["link", "show", "up0"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string();

    // A dry run shows the plan and changes nothing.
    let create = ["create", "--uplink", "up0", "--name", "br0"];
    let plan = bridge(&ns, &create).args(["--dry-run"]).ok();
    assert!(plan.contains("ip link set up0 master br0"), "{plan}");
    assert!(ip_json(&ns, &["link", "show", "br0"]).is_null());

    bridge(&ns, &create).args(["--yes"]).ok();
    let br = &ip_json(&ns, &["link", "show", "br0"])[0];
    assert_eq!(
        br["address"].as_str(),
        Some(mac.as_str()),
        "the bridge keeps the uplink's MAC"
    );
    assert_eq!(ip_json(&ns, &["link", "show", "up0"])[0]["master"], "br0");
    assert_eq!(addresses(&ns, "br0"), ["198.18.9.10/24"]);
    assert!(addresses(&ns, "up0").is_empty());
    assert_eq!(default_route_dev(&ns).as_deref(), Some("br0"));

    // A second create is refused: the bridge exists.
    let (code, stderr) = bridge(&ns, &create).args(["--yes"]).fails();
    assert_eq!(code, 2, "{stderr}");

    bridge(&ns, &["delete", "--name", "br0", "--yes"]).ok();
    assert!(ip_json(&ns, &["link", "show", "br0"]).is_null());
    assert_eq!(addresses(&ns, "up0"), ["198.18.9.10/24"]);
    assert_eq!(default_route_dev(&ns).as_deref(), Some("up0"));
    assert!(ip_json(&ns, &["link", "show", "up0"])[0]["master"].is_null());
}
