//! vnode's main job, for real: nodes spawned in parallel in the namespace lab (TCG guests from the
//! Debian test image), reachable with their pinned host keys, with the addresses the plan says.

mod common;

use std::net::Ipv4Addr;

use common::e2e::{Site, test_image};
use common::lab::{self, Lab};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn node<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {report}"))
}

fn ssh(lab: &Lab, node: &str, cmd: &[&str]) -> String {
    let mut args = vec!["ssh", node, "--"];
    args.extend_from_slice(cmd);
    lab.vnode_ok(args).trim().to_string()
}

#[test]
fn three_nodes_in_parallel_then_refuse_replace_and_destroy() {
    if !lab::available() {
        return;
    }
    let image = test_image();
    let site = Site::new("spawn");
    let lab = Lab::with_config("spawn", &site.config(""));
    for name in ["debian-12-test", "debtest"] {
        lab.vnode_ok([
            "images",
            "import",
            image.to_str().unwrap(),
            "--name",
            name,
            "--osinfo",
            "debian11",
        ]);
    }

    // Three nodes, two image names, in parallel.
    let out = lab.vnode([
        "--json",
        "-d",
        "debian-12-test",
        "3",
        "4",
        "5:debtest",
        "--timeout",
        "600",
    ]);
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = json(&lab.vnode_ok(["--json", "plan", "3-5"]));
    for (i, name) in ["vnode03", "vnode04", "vnode05"].iter().enumerate() {
        let n = node(&report, name);
        assert_eq!(n["outcome"], "ready", "{n:#}");
        assert_eq!(n["hostname"], *name);
        assert!(n["os"].as_str().unwrap().contains("Debian"), "{n:#}");
        let private: Ipv4Addr = n["private_ip"].as_str().unwrap().parse().unwrap();
        assert_eq!(private.octets()[..3], [192, 168, 122], "{n:#}");
        assert_eq!(
            n["public_ip"], plan["entries"][i]["public_ip"],
            "public address is not the plan's: {n:#}"
        );
        // The system ssh with vnode's known_hosts and StrictHostKeyChecking=yes.
        assert_eq!(ssh(&lab, name, &["hostname"]), *name);
    }
    assert_eq!(node(&report, "vnode05")["image"], "debtest");
    // Public LAN: a sibling's public address and the host side of the bridge answer.
    let sibling = node(&report, "vnode04")["public_ip"]
        .as_str()
        .unwrap()
        .to_string();
    ssh(&lab, "vnode03", &["ping", "-c1", "-W5", &sibling]);
    let gateway = plan["entries"][0]["public_ip"]
        .as_str()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string()
        + ".254";
    ssh(&lab, "vnode03", &["ping", "-c1", "-W5", &gateway]);
    let listed = json(&lab.vnode_ok(["--json", "list"]));
    assert_eq!(listed["nodes"].as_array().unwrap().len(), 3, "{listed:#}");

    // Again without --force: refused and left alone.
    let instance = ssh(&lab, "vnode03", &["cat", "/var/lib/cloud/data/instance-id"]);
    let out = lab.vnode(["--json", "-d", "debian-12-test", "3"]);
    assert_eq!(out.status.code(), Some(3));
    let again = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(node(&again, "vnode03")["outcome"], "exists");
    assert_eq!(
        ssh(&lab, "vnode03", &["cat", "/var/lib/cloud/data/instance-id"]),
        instance
    );

    // With --force: re-created, a new instance, and the new host key is pinned.
    let out = lab.vnode([
        "--json",
        "-d",
        "debian-12-test",
        "--force",
        "3",
        "--timeout",
        "600",
    ]);
    let forced = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{forced:#}");
    assert_ne!(
        ssh(&lab, "vnode03", &["cat", "/var/lib/cloud/data/instance-id"]),
        instance
    );

    // Destroy leaves nothing of the nodes.
    lab.vnode_ok(["destroy", "3", "4", "5"]);
    let domains = lab.exec_ok(["virsh", "-q", "list", "--all", "--name"]);
    assert!(domains.trim().is_empty(), "domains left: {domains}");
    let left: Vec<_> = std::fs::read_dir(site.nodes())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("vnode0")),
        "{left:?}"
    );
    let known = std::fs::read_to_string(site.nodes().join("known_hosts")).unwrap_or_default();
    assert!(!known.contains("vnode0"), "{known}");
    drop(lab);
}

#[test]
fn a_node_that_cannot_boot_fails_clearly_while_its_sibling_gets_ready() {
    if !lab::available() {
        return;
    }
    let image = test_image();
    let site = Site::new("broken");
    let blank = site.root.join("blank.qcow2");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&blank)
        .arg("2G")
        .status()
        .unwrap();
    assert!(status.success());
    let lab = Lab::with_config("broken", &site.config(""));
    lab.vnode_ok([
        "images",
        "import",
        image.to_str().unwrap(),
        "--name",
        "debian-12-test",
        "--osinfo",
        "debian11",
    ]);
    lab.vnode_ok([
        "images",
        "import",
        blank.to_str().unwrap(),
        "--name",
        "broken",
        "--osinfo",
        "debian11",
    ]);

    let out = lab.vnode([
        "--json",
        "-d",
        "debian-12-test",
        "6:broken",
        "7",
        "--timeout",
        "240",
    ]);
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(3), "{report:#}");
    let broken = node(&report, "vnode06");
    assert_eq!(broken["outcome"], "failed");
    assert_eq!(broken["stage"], "booting", "{broken:#}");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("no DHCP lease") && error.contains("serial console"),
        "{error}"
    );
    assert_eq!(node(&report, "vnode07")["outcome"], "ready", "{report:#}");
    lab.vnode_ok(["destroy", "6", "7"]);
}
