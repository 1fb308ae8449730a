//! vnode under faults, for real, in one namespace lab (one real boot in all; the other guests run
//! a disk that only halts): a guest whose qemu dies, libvirtd stopped and started again while a
//! node boots, Ctrl-C at two stages,
//! and a virt-install that fails. Each asserts which node failed, at which stage, with which words,
//! the exit code, and that nothing is left afterwards.

use crate::budget;
use crate::common;
use crate::running::{Running, has_domain};

use std::time::{Duration, Instant};

use common::e2e::{VmLab, assert_no_nodes};
use common::lab::Lab;
use serde_json::Value;

/// How long a fault may take to show (the goal is 2 s; see its use).
const LATENCY_BOUND: Duration = Duration::from_secs(3);

fn node<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing in {report:#}"))
}

/// The PID of a daemon or guest as its pidfile in the lab's /run/libvirt says.
fn pid_in_lab(lab: &Lab, pidfile: &str) -> i32 {
    lab.exec_ok(["cat", pidfile]).trim().parse().unwrap()
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill only sends a signal; the PID was read from the pidfile of a process the lab
    // (this test) started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

/// Does the lab's libvirt know a domain called `name`?

#[test]
fn a_dead_guest_a_restarting_libvirtd_ctrl_c_and_a_failed_define() {
    let Some(vms) = VmLab::up("faults") else {
        return;
    };
    let (lab, site) = (&vms.lab, &vms.site);
    lab.import(&vms.image, "debian-12-test", "debian11");
    lab.import(&site.halting_disk("halt.qcow2"), "halt", "debian11");
    let spawn = |specs: &[&str]| {
        let mut args = vec!["--json", "-d", "debian-12-test", "--timeout", "600"];
        args.extend_from_slice(specs);
        Running::start(lab.cli().args(&args))
    };

    // 1. qemu killed while its node boots: that node fails within 2 s, with libvirt's state;
    //    its sibling goes on. vnode03 runs a disk that only halts (a qemu to kill, no boot to pay).
    // 2. Then libvirtd is stopped while that sibling, vnode04, still boots, and started again
    //    10 s later: vnode04 says libvirt is not answering, rides it out, and gets ready (qemu
    //    never depended on libvirtd). One real boot serves both.
    let boots = budget::boots(1);
    let run = spawn(&["3:halt", "4", "--libvirt-grace", "120"]);
    run.wait_for(&["vnode03", "booting"], Duration::from_secs(120));
    run.wait_for(&["vnode04", "booting"], Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let qemu = pid_in_lab(lab, "/run/libvirt/qemu/vnode03.pid");
    let killed = Instant::now();
    kill(qemu, libc::SIGKILL);
    let noticed = run.wait_for(&["vnode03", "failed at"], Duration::from_secs(30));
    let detection = noticed.duration_since(killed);
    eprintln!("qemu killed: noticed after {detection:?}");
    let libvirtd = pid_in_lab(lab, "/run/libvirt/libvirtd.pid");
    kill(libvirtd, libc::SIGTERM);
    run.wait_for(
        &["vnode04", "libvirt not answering, retrying"],
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(10));
    restart_libvirtd(lab);
    let (code, report, stderr, _) = run.finish();
    drop(boots);
    assert_eq!(code, 3, "{stderr}");
    let dead = node(&report, "vnode03");
    assert_eq!(dead["outcome"], "failed", "{dead:#}");
    let error = dead["error"].as_str().unwrap();
    assert!(
        error.contains("no longer running") && error.contains("shut off"),
        "{error}"
    );
    assert!(error.contains("vnode destroy"), "{error}");
    // vnode reads the states at libvirt's lifecycle event (one virsh call, tens of ms); libvirtd
    // itself sends the event only once it has cleaned up after qemu, which took 1.2 s here. On a
    // 2-core test machine the lab's libvirtd shares its CPU with TCG guests, so the test allows a
    // margin; the figure is printed.
    assert!(detection < LATENCY_BOUND, "{detection:?}");
    assert!(stderr.contains("libvirt answers again"), "{stderr}");
    assert_eq!(node(&report, "vnode04")["outcome"], "ready", "{report:#}");
    lab.vnode_ok(["destroy", "3", "4"]);
    assert_no_nodes(lab, site);

    // 3. Ctrl-C while the nodes boot: exit 130 within 2 s, each node reported, the domains kept
    //    with their files and the one command that removes them.
    //    (Halting disks: booting as far as vnode can tell, at no CPU cost.)
    let run = spawn(&["6:halt", "7:halt"]);
    run.wait_for(&["vnode06", "booting"], Duration::from_secs(120));
    run.wait_for(&["vnode07", "booting"], Duration::from_secs(120));
    let asked = Instant::now();
    run.interrupt();
    let (code, report, stderr, ended) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    let took = ended.duration_since(asked);
    eprintln!("Ctrl-C while booting: ended after {took:?}");
    assert!(took < LATENCY_BOUND, "{took:?}");
    for name in ["vnode06", "vnode07"] {
        let n = node(&report, name);
        assert_eq!(n["outcome"], "interrupted", "{n:#}");
        assert_eq!(n["kept"], true, "{n:#}");
        assert!(has_domain(lab, name));
        assert!(site.nodes().join(name).join("disk.qcow2").exists());
    }
    assert!(
        stderr.contains("remove with `vnode destroy vnode06 vnode07`"),
        "{stderr}"
    );
    lab.vnode_ok(["destroy", "vnode06", "vnode07"]);
    assert_no_nodes(lab, site);

    //    Ctrl-C at once, and a second one during the cleanup: whatever stage each node reached, a
    //    node directory exists exactly when its domain does.
    let run = spawn(&["8", "9"]);
    run.wait_for(&["preparing"], Duration::from_secs(60));
    run.interrupt();
    std::thread::sleep(Duration::from_millis(100));
    run.interrupt();
    let (code, report, stderr, _) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    for name in ["vnode08", "vnode09"] {
        let n = node(&report, name);
        assert_eq!(n["outcome"], "interrupted", "{n:#}");
        let dir = site.nodes().join(name).exists();
        assert_eq!(dir, has_domain(lab, name), "{name}: {n:#}");
        assert_eq!(n.get("kept").is_some(), dir, "{n:#}");
        if dir {
            lab.vnode_ok(["destroy", name]);
        }
    }
    assert_no_nodes(lab, site);

    // 4. virt-install refuses the domain (more vCPUs than the machine type takes): the node fails
    //    at "defining" with virt-install's words, and none of its files stay behind.
    let huge = lab
        .cli()
        .config_file(lab_config_with_huge_vcpus(site))
        .args(["--json", "-d", "debian-12-test", "10"]);
    let (code, report, stderr, _) = Running::start(huge).finish();
    assert_eq!(code, 3, "{stderr}");
    let n = node(&report, "vnode10");
    assert_eq!(n["outcome"], "failed", "{n:#}");
    assert_eq!(n["stage"], "defining", "{n:#}");
    assert!(
        n["error"].as_str().unwrap().contains("virt-install failed"),
        "{n:#}"
    );
    assert!(!has_domain(lab, "vnode10"));
    assert_no_nodes(lab, site);
}

/// Starts libvirtd again in the lab's namespaces (as `systemctl restart libvirtd` would on a host)
/// and tells the lab's state file its new PID, so later `vnode --lab` commands find the lab whole.
fn restart_libvirtd(lab: &Lab) {
    let mut state = lab.state();
    let holder = state["holder"]["pid"].as_i64().unwrap().to_string();
    let in_lab = |args: &[&str]| {
        let out = std::process::Command::new("nsenter")
            .args(["-t", &holder, "-m", "-n", "--"])
            .args(args)
            .output()
            .expect("nsenter runs (util-linux)");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    in_lab(&[
        "env",
        "LIBVIRT_LOG_OUTPUTS=3:file:/var/log/libvirt/libvirtd.log",
        "libvirtd",
        "-d",
        "-p",
        "/run/libvirt/libvirtd.pid",
    ]);
    let mut pid = None;
    for _ in 0..100 {
        pid = in_lab(&["cat", "/run/libvirt/libvirtd.pid"])
            .trim()
            .parse::<i64>()
            .ok();
        if pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = pid.expect("libvirtd wrote its pidfile");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let start_time: u64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    state["libvirtd"] = serde_json::json!({ "pid": pid, "start_time": start_time });
    std::fs::write(
        lab.dir().join("state.json"),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
}

/// The lab's config with pool resources no machine type takes.
fn lab_config_with_huge_vcpus(site: &common::e2e::Site) -> String {
    let path = site.root.join("huge-vcpus.toml");
    let config = site.config("").replace("vcpus = 1", "vcpus = 4096");
    assert!(config.contains("vcpus = 4096"), "{config}");
    std::fs::write(&path, config).unwrap();
    path.display().to_string()
}
