//! `vnode images derive` for real, in the namespace lab: a failing command leaves nothing behind;
//! a derived image (a marker file written in a temporary node of the Debian test image) spawns a
//! node that is a fresh instance: the marker, a machine-id other than the temporary node's, its own
//! hostname (cloud-init ran again) and its own pinned host key.

use crate::budget;
use crate::common;

use std::process::Output;

use common::e2e::{VmLab, assert_no_nodes};
use common::json;
use common::lab::Lab;

fn image_names(lab: &Lab) -> Vec<String> {
    lab.json(["images", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

/// `vnode images derive debian-12-test NAME -- sh -c SCRIPT`.
fn derive(lab: &Lab, name: &str, script: &str) -> Output {
    lab.vnode([
        "images",
        "derive",
        "debian-12-test",
        name,
        "--timeout",
        "600",
        "--",
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn derive_an_image_then_spawn_fresh_nodes_from_it() {
    let t0 = std::time::Instant::now();
    let Some(vms) = VmLab::up("derive") else {
        return;
    };
    let (lab, site) = (&vms.lab, &vms.site);
    lab.import(&vms.image, "debian-12-test", "debian11");

    // A failing command (in its own temporary node, vnode20) and the derived image (in the
    // first free node, vnode00) at once: on two cores, two single-vCPU TCG boots side by side
    // take little longer than one.
    let boots = budget::boots(2);
    let failing = lab
        .cli()
        .args([
            "images",
            "derive",
            "debian-12-test",
            "broken",
            "--node",
            "20",
        ])
        .args([
            "--timeout",
            "600",
            "--",
            "sh",
            "-c",
            "echo about to fail; exit 7",
        ])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let marker = derive(
        lab,
        "marker",
        "echo hi > /etc/vnode-marker; echo \"machine-id=$(cat /etc/machine-id)\"",
    );
    let out = failing.wait_with_output().unwrap();
    drop(boots);
    eprintln!("both derives done at {:?}", t0.elapsed());

    // The failing command: a clear error naming its node, nothing cached, no node left.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("vnode20"), "{stderr}");
    assert!(stderr.contains("about to fail"), "no live output: {stderr}");
    assert!(stderr.contains("exit status 7"), "{stderr}");
    assert!(stderr.contains("nothing was added"), "{stderr}");
    let hidden: Vec<_> = std::fs::read_dir(site.root.join("images"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "staged files left: {hidden:?}");

    // The derived image, and only it.
    let temporary_id = String::from_utf8_lossy(&marker.stderr)
        .lines()
        // (The command line, if echoed, has "machine-id=$(cat ...": only a 32-hex-digit value.)
        .filter_map(|l| {
            l.split_once("machine-id=")
                .map(|(_, id)| id.trim().to_string())
        })
        .find(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| {
            panic!(
                "no machine-id line: {}",
                String::from_utf8_lossy(&marker.stderr)
            )
        });
    assert_eq!(temporary_id.len(), 32, "{temporary_id:?}");
    let out = common::cli::ok("derive marker", marker);
    assert_eq!(out.trim(), "debian-12-test-marker");
    assert_eq!(
        image_names(lab),
        ["debian-12-test", "debian-12-test-marker"]
    );
    assert_no_nodes(lab, site);
    let listed = lab.json(["images", "list"]);
    let derived = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "debian-12-test-marker")
        .unwrap_or_else(|| panic!("not listed: {listed:#}"));
    assert_eq!(derived["meta"]["origin"], "derived", "{derived:#}");
    assert_eq!(derived["meta"]["parent"], "debian-12-test", "{derived:#}");
    assert_eq!(derived["meta"]["osinfo"], "debian11", "{derived:#}");
    assert!(
        derived["meta"]["source"]
            .as_str()
            .unwrap()
            .contains("echo hi > /etc/vnode-marker"),
        "{derived:#}"
    );
    let table = lab.vnode_ok(["images", "list"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("debian-12-test-marker"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("derived") && row.contains(" debian-12-test "),
        "{table}"
    );
    // Standalone: no backing file.
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(site.root.join("images/debian-12-test-marker.qcow2"))
        .output()
        .unwrap();
    let info = json::stdout(&info);
    assert!(info.get("backing-filename").is_none(), "{info:#}");
    lab.vnode_ok(["images", "verify", "debian-12-test-marker"]);
    eprintln!("derive done at {:?}", t0.elapsed());

    // A node from it: a fresh instance (one boot; the temporary node is the other instance).
    let boots = budget::boots(1);
    lab.spawn(["3:debian-12-test-marker", "--timeout", "600"])
        .expect_ready();
    drop(boots);
    let name = "vnode03";
    assert_eq!(lab.ssh(name, &["cat", "/etc/vnode-marker"]), "hi");
    // `vnode ssh` checks the pinned host key (StrictHostKeyChecking=yes).
    assert_eq!(lab.ssh(name, &["hostname"]), name);
    // The host key the guest presents is the one vnode generated for this node.
    let pinned =
        std::fs::read_to_string(site.nodes().join(name).join("ssh_host_ed25519_key.pub")).unwrap();
    let served = lab.ssh(name, &["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    let body = |k: &str| k.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(body(&served), body(&pinned), "{name}");
    // The image carried no authorized key of the temporary node: each key is there once.
    let authorized = lab.ssh(name, &["cat", "/root/.ssh/authorized_keys"]);
    let mut lines: Vec<_> = authorized
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let count = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), count, "{name}: duplicated keys:\n{authorized}");
    // The image carried no machine-id: the node made its own.
    let id = lab.ssh(name, &["cat", "/etc/machine-id"]);
    assert_eq!(id.len(), 32, "{name}: machine-id {id:?}");
    assert_ne!(
        id, temporary_id,
        "the node has the temporary node's machine-id"
    );
    lab.vnode_ok(["destroy", "3"]);
    assert_no_nodes(lab, site);
    eprintln!("all done at {:?}", t0.elapsed());
}

/// Ctrl-C while the derive's commands run: the temporary node goes (domain, files, known_hosts
/// line), nothing enters the cache, exit 130; a second Ctrl-C during that removal is refused with
/// a line, not obeyed. One boot.
#[test]
fn ctrl_c_during_the_commands_removes_the_temporary_node() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let Some(vms) = VmLab::up("dint") else {
        return;
    };
    let (lab, site) = (&vms.lab, &vms.site);
    lab.import(&vms.image, "debian-12-test", "debian11");
    let images = image_names(lab);
    let boots = budget::boots(1);
    // The marker is computed in the guest, so it cannot be an echo of the command line.
    let mut child = lab
        .cli()
        .args([
            "images",
            "derive",
            "debian-12-test",
            "slow",
            "--timeout",
            "900",
        ])
        .args(["--", "sh", "-c", "echo vnode-derive-$((6 * 7)); sleep 600"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, within: Duration| {
        let t0 = Instant::now();
        loop {
            let left = within.saturating_sub(t0.elapsed());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(what);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("no {what:?} within {within:?}:\n{}", seen.join("\n")),
            }
        }
    };
    let sigint = || {
        // SAFETY: kill(2) on the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    };
    wait_for("vnode-derive-42", Duration::from_secs(900));
    drop(boots); // the node only sleeps from here on
    sigint();
    let t_int = Instant::now();
    wait_for("removing the temporary node", Duration::from_secs(2));
    sigint();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t_int.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "derive did not exit within 60 s of SIGINT:\n{}",
                seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t_int.elapsed();
    // The rest of stderr (the reader ends at EOF).
    seen.extend(lines.iter());
    let err = seen.join("\n");
    eprintln!("{err}\n(exited {took:?} after the first SIGINT)");
    assert_eq!(status.code(), Some(130), "{err}");
    let node = err
        .split("in temporary node ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no temporary node named:\n{err}"))
        .to_string();
    assert!(
        err.contains(&format!(
            "vnode: interrupted; removing the temporary node {node} (Ctrl-C is ignored until it is removed)"
        )),
        "{err}"
    );
    // The second SIGINT races the removal (a destroy, an undefine, a directory): when it lands
    // during the removal it is answered; when the removal was quicker, nothing is left to answer.
    // Either way the node must be gone entirely (checked below) and vnode must end with 130.
    let answered = err.contains(&format!(
        "vnode: still removing the temporary node {node}; Ctrl-C is ignored until it is removed"
    ));
    eprintln!("second SIGINT answered during the removal: {answered}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some(
            format!(
                "vnode: interrupted: the temporary node {node} is removed; nothing was added to the cache"
            )
            .as_str()
        ),
        "{err}"
    );
    assert_no_nodes(lab, site);
    let kh = std::fs::read_to_string(site.nodes().join("known_hosts")).unwrap_or_default();
    assert!(!kh.contains(&node), "known_hosts keeps {node}:\n{kh}");
    assert_eq!(image_names(lab), images);
    let hidden: Vec<_> = std::fs::read_dir(site.root.join("images"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.contains("slow"))
        .collect();
    assert!(hidden.is_empty(), "files left in the cache: {hidden:?}");
}
