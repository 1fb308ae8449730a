//! Several libvirt hosts, one command: nodes spread over three hypervisor hosts of a namespace
//! lab (each its own libvirtd, `default` network, sshd and a `br0` joined to one site LAN), driven
//! from the site through libvirt's remote protocol only. One spawn serves most assertions; its
//! nodes' fresh states are saved on their hosts, and one node is reset and respawned from its
//! state there.

use crate::budget;
use crate::common;
use crate::fresh::check_restored;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::e2e::VmLab;
use serde_json::Value;

const IMAGE: &str = "debian-12-test";

/// The node volumes (not the shared base images) in host `h`'s vnode pool.
fn node_volumes(vms: &VmLab, h: &str) -> Vec<String> {
    // The console logs are written by the host's virtlogd, not through libvirt's storage API:
    // they are volumes after a refresh.
    vms.lab
        .exec_host_ok(h, ["virsh", "-q", "pool-refresh", "vnode"]);
    vms.lab
        .exec_host_ok(h, ["virsh", "-q", "vol-list", "vnode"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| !v.starts_with("base-"))
        .map(String::from)
        .collect()
}

/// Storage pools on host `h` named like a node (`vnode03`, `vnode03-1`: what virt-install names
/// the pool it makes for a disk's directory); vnode's own pool `vnode` is not one.
fn node_pools(vms: &VmLab, h: &str) -> Vec<String> {
    vms.lab
        .exec_host_ok(h, ["virsh", "-q", "pool-list", "--all", "--name"])
        .lines()
        .map(str::trim)
        .filter(|p| p.starts_with("vnode") && *p != "vnode")
        .map(String::from)
        .collect()
}

/// The domains on host `h`, sorted (virsh lists running domains by id).
fn domains(vms: &VmLab, h: &str) -> Vec<String> {
    let mut names: Vec<String> = vms
        .lab
        .exec_host_ok(h, ["virsh", "-q", "list", "--all", "--name"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    names
}

/// The volumes of a node's fresh state on its host.
fn state_volumes(node: &str) -> [String; 2] {
    [
        format!("{node}-fresh-disk.qcow2"),
        format!("{node}-fresh-memory.save"),
    ]
}

fn sorted<I: IntoIterator<Item = String>>(v: I) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().collect();
    v.sort();
    v
}

fn host_of(report: &Value, name: &str) -> String {
    let n = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing in {report:#}"));
    n["host"]
        .as_str()
        .unwrap_or_else(|| panic!("{n:#}"))
        .to_string()
}

#[test]
fn nodes_spread_over_three_hosts_then_move_destroy_and_a_host_down() {
    let Some(vms) = VmLab::up_hosts("spread", 3) else {
        return;
    };
    let lab = &vms.lab;
    lab.import(&vms.image, IMAGE, "debian11");
    // A blank disk for the node whose host is lost: its domain only has to run there (the
    // firmware retries forever), and it spares the machine a second full boot beside vnode03's.
    lab.import(
        &vms.site.blank_disk("blank.qcow2", "1G"),
        "blank",
        "debian11",
    );

    // Every host answers, none has nodes or base images yet.
    let hosts = lab.json(["hosts"]);
    let hosts = hosts["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3, "{hosts:#?}");
    for h in hosts {
        assert!(h["unreachable"].is_null(), "{h:#}");
        assert_eq!(h["nodes"].as_array().unwrap().len(), 0, "{h:#}");
        assert!(
            h["virt_types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "qemu"),
            "{h:#}"
        );
    }

    // The dry run shows the spread before anything runs: two nodes per host.
    let dry = lab.json(["-d", IMAGE, "3-8", "--dry-run"]);
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for n in dry["nodes"].as_array().unwrap() {
        *per_host
            .entry(n["host"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(
        per_host.values().collect::<Vec<_>>(),
        [&2, &2, &2],
        "{dry:#}"
    );

    // The spawn: three nodes, one per host (boots are what this test costs; the dry run above
    // showed how six would spread), all ready, each host's base uploaded by its node. That a
    // second node on a host does not upload again shows below, where vnode03 moves to a host that
    // has the base (and storage.rs holds concurrent pushes to one upload). Each node's fresh state
    // is saved on its host.
    let plan = lab.json(["plan", "3-5"]);
    let boots = budget::boots(3);
    let report = lab
        .spawn(["-d", IMAGE, "3-5", "--fresh-states", "--timeout", "900"])
        .expect_ready()
        .report;
    drop(boots);
    for n in report["nodes"].as_array().unwrap() {
        assert_eq!(n["fresh"]["how"], "saved", "{n:#}");
    }
    let mut uploads: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for n in report["nodes"].as_array().unwrap() {
        uploads
            .entry(n["host"].as_str().unwrap().into())
            .or_default()
            .push(n["base_uploaded_bytes"].as_u64().unwrap());
    }
    assert_eq!(uploads.len(), 3, "{report:#}");
    for (h, bytes) in &uploads {
        assert_eq!(bytes.len(), 1, "{h}: {bytes:?}");
        assert!(bytes[0] > 0, "{h}: {bytes:?}");
    }
    // `list` asks every host: the same placement.
    let listed = lab.json(["list"]);
    for n in listed["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        assert_eq!(n["host"].as_str().unwrap(), host_of(&report, name), "{n:#}");
        assert!(n["state"].as_str().unwrap().starts_with("running"), "{n:#}");
    }
    // Each host has its domain, and only its volumes: the node's, and its state's.
    let mine = |h: &str| -> Vec<String> {
        (3..=5)
            .map(|i| format!("vnode0{i}"))
            .filter(|n| host_of(&report, n) == h)
            .collect()
    };
    for h in ["h1", "h2", "h3"] {
        assert_eq!(domains(&vms, h), mine(h), "{h}");
        let vols: Vec<String> = mine(h)
            .iter()
            .flat_map(|n| {
                [
                    format!("{n}-console.log"),
                    format!("{n}-seed.iso"),
                    format!("{n}.qcow2"),
                ]
                .into_iter()
                .chain(state_volumes(n))
            })
            .collect();
        assert_eq!(sorted(node_volumes(&vms, h)), sorted(vols), "{h}");
    }
    // `vnode states` lists each on its host, its volumes there counted.
    let states = lab.json(["states"]);
    let states = states.as_array().unwrap();
    assert_eq!(states.len(), 3, "{states:#?}");
    for s in states {
        let name = s["node"].as_str().unwrap();
        assert_eq!(s["host"].as_str().unwrap(), host_of(&report, name), "{s:#}");
        assert_eq!(s["state"], "usable", "{s:#}");
        assert!(s["bytes"].as_u64().unwrap() > 64 << 20, "{s:#}");
    }

    // A reset restores vnode04 on its host, through libvirt alone: the pinned key, both
    // addresses, the clock, no trace of the earlier run.
    let h4 = host_of(&report, "vnode04");
    lab.ssh("vnode04", &["touch", "/root/earlier-run"]);
    let boots = budget::alone();
    let reset = lab.spawn(["reset", "4"]).expect_ready();
    drop(boots);
    let first = check_restored(lab, &reset, "vnode04", &plan);
    assert_eq!(reset.node("vnode04")["host"], h4.as_str());
    assert_eq!(lab.ssh("vnode04", &["ls", "/root"]), "");

    // `vnode ssh` reaches each node through its host; a node on h1 pings one on h3 publicly.
    for i in 3..=5 {
        let name = format!("vnode0{i}");
        assert_eq!(lab.ssh(&name, &["hostname"]), name);
    }
    let on = |h: &str| {
        (3..=5)
            .map(|i| format!("vnode0{i}"))
            .find(|n| host_of(&report, n) == h)
            .unwrap()
    };
    let (a, b) = (on("h1"), on("h3"));
    let b_public = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == b.as_str())
        .unwrap()["public_ip"]
        .as_str()
        .unwrap()
        .to_string();
    lab.ssh(&a, &["ping", "-c1", "-W5", &b_public]);
    // ssh-config names the host's sshd as ProxyJump.
    let ssh_config = lab.vnode_ok(["ssh-config"]);
    assert!(ssh_config.contains("ProxyJump root@"), "{ssh_config}");

    // destroy leaves no domain and no node volume on any host (the base images stay: a cache),
    // only the states' volumes.
    lab.vnode_ok(["destroy", "3-5"]);
    for h in ["h1", "h2", "h3"] {
        assert_eq!(domains(&vms, h), Vec::<String>::new(), "{h}");
        let vols: Vec<String> = mine(h).iter().flat_map(|n| state_volumes(n)).collect();
        assert_eq!(sorted(node_volumes(&vms, h)), sorted(vols), "{h}");
        assert_eq!(node_pools(&vms, h), Vec::<String>::new(), "{h}");
    }
    // A spawn puts vnode04 back on the host of its state and restores it: other random bytes
    // at the first login than the reset's restore of the same state.
    let boots = budget::alone();
    let respawn = lab.spawn(["-d", IMAGE, "4"]).expect_ready();
    drop(boots);
    assert_eq!(respawn.node("vnode04")["host"], h4.as_str());
    let second = check_restored(lab, &respawn, "vnode04", &plan);
    assert_ne!(first, second, "urandom repeated across two restores");
    // destroy --purge: the nodes and their states, here and on the hosts.
    lab.vnode_ok(["destroy", "--purge", "3-5"]);
    assert_eq!(lab.json(["states"]), serde_json::json!([]));
    for h in ["h1", "h2", "h3"] {
        assert_eq!(domains(&vms, h), Vec::<String>::new(), "{h}");
        assert_eq!(node_volumes(&vms, h), Vec::<String>::new(), "{h}");
    }

    // vnode03 comes back on another host: same MACs, same public address; that host had the
    // base image already, so nothing is uploaded. In the same spawn vnode09 (a blank disk) goes to
    // a third host whose libvirtd is stopped once vnode09's domain runs there: vnode09 fails
    // naming its host, and vnode03 goes on to ready.
    let from = host_of(&report, "vnode03");
    let to = ["h1", "h2", "h3"].into_iter().find(|h| *h != from).unwrap();
    let lost = ["h1", "h2", "h3"].into_iter().find(|h| *h != to).unwrap();
    let lost_host = lab.host(lost);
    let old_public = report["nodes"][0]["public_ip"].clone();
    let boots = budget::boots(1);
    let moved = std::thread::scope(|s| {
        let run = s.spawn(|| {
            lab.spawn([
                "-d",
                IMAGE,
                &format!("3@{to}"),
                &format!("9:blank@{lost}"),
                "--timeout",
                "900",
                "--libvirt-grace",
                "5",
            ])
        });
        wait_until_started(&vms, lost, "vnode09");
        stop_libvirtd(&vms, lost);
        run.join().unwrap()
    })
    .expect_code(3);
    drop(boots);
    let n = moved.node("vnode03");
    assert_eq!(n["outcome"], "ready", "{n:#}");
    assert_eq!(n["host"], to, "{n:#}");
    assert_eq!(n["public_ip"], old_public, "{n:#}");
    assert_eq!(n["base_uploaded_bytes"], 0, "{n:#}");
    let n = moved.node("vnode09");
    assert_eq!(n["outcome"], "failed", "{n:#}");
    assert_eq!(n["host"], lost, "{n:#}");
    let error = n["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("host {lost}")) && error.contains(&lost_host.uri),
        "{n:#}"
    );
    assert_eq!(lab.ssh("vnode03", &["hostname"]), "vnode03");

    // vnode03 goes again, with the state it saved on its new host (by default: an imported image
    // has no known network renderer, so the node waits for cloud-init anyway); the hosts that
    // answer have no domain or node volume left.
    assert_eq!(moved.node("vnode03")["fresh"]["how"], "saved");
    lab.vnode_ok(["destroy", "--purge", "3"]);
    let alive: Vec<&str> = ["h1", "h2", "h3"]
        .into_iter()
        .filter(|h| *h != lost)
        .collect();
    for h in &alive {
        assert_eq!(domains(&vms, h), Vec::<String>::new(), "{h}");
        assert_eq!(node_volumes(&vms, h), Vec::<String>::new(), "{h}");
        assert_eq!(node_pools(&vms, h), Vec::<String>::new(), "{h}");
    }

    // The lost host's libvirtd is still down: a spawn refuses before creating anything, naming
    // the host and how to leave it out.
    let (code, stderr) = lab.cli().args(["-d", IMAGE, "10-12"]).fails();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(lost) && stderr.contains(&lost_host.uri) && stderr.contains("--skip-host"),
        "{stderr}"
    );
    for h in &alive {
        assert_eq!(domains(&vms, h), Vec::<String>::new(), "{h}");
        assert_eq!(node_volumes(&vms, h), Vec::<String>::new(), "{h}");
        assert_eq!(node_pools(&vms, h), Vec::<String>::new(), "{h}");
    }
    // Nor can vnode09 be destroyed while its host is down: the error names the host, and
    // nothing is removed (its record stays, so a later destroy finds it again).
    let (code, stderr) = lab.cli().args(["destroy", "9"]).fails();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "vnode09: its host {lost} ({}) does not answer",
            lost_host.uri
        )) && stderr.contains("nothing was removed"),
        "{stderr}"
    );
    // Only the failed vnode09 keeps its record (its domain is on the lost host); `lab down`
    // stops its qemu by PID.
    let left: Vec<_> = std::fs::read_dir(vms.site.nodes())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vnode") || n.starts_with(".vnode"))
        .collect();
    assert_eq!(left, ["vnode09"], "{left:?}");
}

/// Waits until `node`'s domain runs on host `h` and vnode's virt-install for it has ended.
fn wait_until_started(vms: &VmLab, h: &str, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let running = vms
            .lab
            .exec_host(h, ["virsh", "-q", "domstate", node])
            .stdout
            .starts_with(b"running");
        if running && !virt_install_running(node) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node} did not start on {h} in 600 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a virt-install for `node` runs on this machine (vnode runs it on the controller).
fn virt_install_running(node: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|cmd| {
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.iter().any(|a| a.ends_with(b"virt-install")) && args.contains(&node.as_bytes())
        })
}

/// Stops host `h`'s libvirtd (SIGTERM, by the PID the lab recorded); its guests keep running.
fn stop_libvirtd(vms: &VmLab, h: &str) {
    let pid = vms.lab.state()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == h)
        .unwrap()["libvirtd"]["pid"]
        .as_i64()
        .unwrap();
    // SAFETY: kill(2) on the lab's own libvirtd, by the PID its state recorded.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while vms
        .lab
        .exec_host(h, ["virsh", "-q", "list", "--name"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "{h}'s libvirtd still answers");
        std::thread::sleep(Duration::from_millis(200));
    }
}
