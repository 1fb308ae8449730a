//! The namespace lab through the real binary (root only): `lab up` brings libvirtd, its
//! `default` network, br0 and the site DHCP/DNS serving vnode's plan; `lab down` leaves nothing;
//! a crashed lab is detected and cleaned; a node boots in the lab and gets both addresses.
//! `lab up --hosts N`: each host answers the site through its sshd (`qemu+ssh://`) with the
//! lab's pinned host keys, has its own default network, pool directory and guests, and `down`
//! leaves nothing of any of them.

use crate::common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cli::Vnode;
use common::gate::{Needs, require_root_or_skip};
use common::lab::{self, Lab};

/// The plan's entry for `node` in the lab (`vnode --lab plan`).
fn planned(lab: &Lab, node: &str) -> serde_json::Value {
    lab.json(["plan", node])["entries"][0].clone()
}

/// PIDs of the lab's processes, from its state.json.
fn recorded_pids(lab: &Lab) -> Vec<(String, i64, u64)> {
    let state = lab.state();
    ["holder", "virtlogd", "libvirtd", "dnsmasq"]
        .iter()
        .map(|role| {
            let p = &state[role];
            (
                role.to_string(),
                p["pid"].as_i64().unwrap(),
                p["start_time"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Whether that process still runs (a zombie waiting for init to reap it does not).
fn runs(pid: i64, start_time: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[0] != "Z" && f[19].parse::<u64>().unwrap() == start_time
}

/// The start time of a running process (/proc/PID/stat field 22).
fn start_time(pid: i64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn assert_gone(name: &str, pids: &[(String, i64, u64)]) {
    let netns = format!("vnode-{name}");
    assert!(
        !netns_list()
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&netns)),
        "netns {netns} is still there"
    );
    for (role, pid, start) in pids {
        assert!(!runs(*pid, *start), "{role} (pid {pid}) still runs");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains(&netns) || l.contains(&format!("/lab/{name}"))),
        "a mount of the lab is left:\n{mounts}"
    );
    assert!(!Path::new(lab::LAB_ROOT).join(name).exists());
}

#[test]
fn up_serves_the_plan_and_down_leaves_nothing_twice() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    for round in 1..=2 {
        let lab = Lab::up("updown");
        let name = lab.name().to_string();
        eprintln!(
            "round {round}: lab up took {:.1} s",
            lab.up_time().as_secs_f64()
        );

        let nets = lab.exec_ok(["virsh", "-q", "net-list"]);
        assert!(
            nets.lines()
                .any(|l| l.split_whitespace().take(2).eq(["default", "active"])),
            "{nets}"
        );
        let br0 = lab.exec_ok(["ip", "-br", "addr", "show", "br0"]);
        assert!(br0.contains("198.18.0.254/24"), "{br0}");
        let virbr0 = lab.exec_ok(["ip", "-br", "addr", "show", "virbr0"]);
        assert!(virbr0.contains("192.168.122.1/24"), "{virbr0}");

        // The site DNS answers with the plan's address, forward and reverse.
        let entry = planned(&lab, "vnode03");
        let ip = entry["public_ip"].as_str().unwrap();
        assert_eq!(ip, "198.18.0.103");
        assert_eq!(entry["fqdn"], format!("vnode03.{}", lab.domain()));
        let fqdn = format!("vnode03.{}", lab.domain());
        let answer = lab.exec_ok(["dig", "+short", "+time=2", "@198.18.0.254", &fqdn]);
        assert_eq!(answer.trim(), ip);
        let reverse = lab.exec_ok(["dig", "+short", "+time=2", "@198.18.0.254", "-x", ip]);
        assert_eq!(reverse.trim(), format!("{fqdn}."));

        // Up again: says so and changes nothing.
        let pids = recorded_pids(&lab);
        assert!(lab.vnode_ok(["lab", "up"]).contains("already up"));
        assert_eq!(recorded_pids(&lab), pids);
        for (role, pid, start) in &pids {
            assert!(runs(*pid, *start), "{role} (pid {pid}) does not run");
        }
        let status = lab.json(["lab", "status"]);
        assert_eq!(status["up"], true, "{status:#}");

        let down = lab.down();
        eprintln!("round {round}: lab down took {:.1} s", down.as_secs_f64());
        assert_gone(&name, &pids);
    }
}

#[test]
fn a_crashed_lab_is_detected_and_cleaned() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    let lab = Lab::up("crash");
    let pids = recorded_pids(&lab);
    // "Crash": libvirtd and the site dnsmasq die without cleaning up (this test started them).
    for (role, pid, _) in &pids {
        if role == "libvirtd" || role == "dnsmasq" {
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.vnode(["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is broken") && stderr.contains("libvirtd") && stderr.contains("lab down"),
        "{stderr}"
    );
    assert_eq!(lab.json(["lab", "status"])["up"], false);
    // `up` cleans the stale lab (its holder and virtlogd still run) and starts a new one.
    let out = lab.vnode_ok(["lab", "up"]);
    assert!(out.contains("removed stale state"), "{out}");
    for (role, pid, start) in &pids {
        assert!(!runs(*pid, *start), "old {role} (pid {pid}) still runs");
    }
    lab.exec_ok(["virsh", "-q", "version"]);
    let name = lab.name().to_string();
    let new_pids = recorded_pids(&lab);
    lab.down();
    assert_gone(&name, &new_pids);
}

#[test]
fn commands_in_a_lab_that_is_not_up_say_how_to_start_it() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    let name = format!("absent-{}", std::process::id());
    let (code, stderr) = Vnode::new().lab(&name).args(["plan"]).fails();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("run `vnode --lab={name} lab up`")),
        "{stderr}"
    );
    let down = Vnode::new().lab(&name).args(["lab", "down"]).ok();
    assert!(down.contains("not up"), "{down}");
}

/// The address `mac` holds in a dnsmasq lease file ("EXPIRY MAC IP NAME CLIENT-ID" lines).
fn leased(lease_file: &Path, mac: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string(lease_file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&mac)).then(|| f.get(2)?.parse().ok())?
    })
}

/// `Cpus_allowed_list` of a process ("self" for this one).
fn cpus_allowed(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_node_boots_and_gets_the_addresses_of_the_plan() {
    if require_root_or_skip(Needs::Vms) {
        return;
    }
    // Declared before the lab so that it is removed after the lab (and its VM) is gone.
    let work = work_dir();
    let mut lab = Lab::up("boot");
    let booted = boot_vnode03(&mut lab, None, work.path());
    // The lab runs libvirtd on one CPU; its guests must not inherit that.
    let pid = std::fs::read_to_string(lab.dir().join("libvirt/run/qemu/vnode03.pid")).unwrap();
    assert_eq!(
        cpus_allowed(pid.trim()),
        cpus_allowed("self"),
        "qemu's CPU affinity"
    );
    let down = lab.down();
    eprintln!(
        "boot test: lab down with a running VM took {:.1} s (boot {:.1} s)",
        down.as_secs_f64(),
        booted.as_secs_f64()
    );
}

#[test]
fn a_node_on_a_host_gets_its_public_address_from_the_site() {
    if require_root_or_skip(Needs::Vms) {
        return;
    }
    let work = work_dir();
    let mut lab = Lab::up_hosts("hostboot", 2);
    // On h2: its public NIC on h2's br0, joined to the site's by a veth; its private one on
    // h2's own default network.
    let booted = boot_vnode03(&mut lab, Some("h2"), work.path());
    assert!(
        lab.exec_host_ok("h2", ["virsh", "-q", "list", "--name"])
            .contains("vnode03")
    );
    assert!(
        !lab.exec_host_ok("h1", ["virsh", "-q", "list", "--all", "--name"])
            .contains("vnode03")
    );
    let down = lab.down();
    eprintln!(
        "host boot test: boot {:.1} s, lab down with a VM on h2 {:.1} s",
        booted.as_secs_f64(),
        down.as_secs_f64()
    );
}

/// A scratch directory the lab's qemu can read (libvirt's qemu user traverses it).
fn work_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    work
}

/// Boots the plan's vnode03 from the test image in the lab (`host`: on that host of it, else
/// on the lab's own libvirtd), files in `work`; asserts that it gets a private lease from its
/// libvirt's default network and the plan's public address from the site DHCP, and answers
/// the site there. Returns how long that took.
fn boot_vnode03(lab: &mut Lab, host: Option<&str>, work: &Path) -> Duration {
    let _boots = crate::budget::boots(1);
    let image = common::e2e::test_image();
    let image = image.to_str().unwrap();
    let run = |lab: &Lab, cmd: &[&str]| match host {
        Some(h) => lab.exec_host_ok(h, cmd),
        None => lab.exec_ok(cmd),
    };
    let entry = planned(lab, "vnode03");
    let (public_mac, private_mac) = (
        entry["public_mac"].as_str().unwrap(),
        entry["private_mac"].as_str().unwrap(),
    );
    let planned_ip: Ipv4Addr = entry["public_ip"].as_str().unwrap().parse().unwrap();

    // The node's files: an overlay on the test image and a NoCloud seed whose network config
    // asks for DHCP on both NICs, found by MAC.
    let w = work;
    let disk = w.join("vnode03.qcow2");
    let seed = w.join("seed.iso");
    let console = w.join("console.log");
    lab.dump_on_failure(&console);
    std::fs::write(
        w.join("meta-data"),
        "instance-id: vnode03-lab-test\nlocal-hostname: vnode03\n",
    )
    .unwrap();
    std::fs::write(w.join("user-data"), "#cloud-config\nhostname: vnode03\n").unwrap();
    std::fs::write(
        w.join("network-config"),
        format!(
            "version: 2\nethernets:\n  private:\n    match: {{macaddress: \"{private_mac}\"}}\n    dhcp4: true\n  \
             public:\n    match: {{macaddress: \"{public_mac}\"}}\n    dhcp4: true\n"
        ),
    )
    .unwrap();
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image])
        .arg(&disk)
        .arg("4G")
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("cloud-localds")
        .arg(format!(
            "--network-config={}",
            w.join("network-config").display()
        ))
        .arg(&seed)
        .arg(w.join("user-data"))
        .arg(w.join("meta-data"))
        .status()
        .unwrap();
    assert!(status.success());

    let t0 = Instant::now();
    // TCG (KVM hangs on this kind of host); the seed on virtio-scsi, since the Debian cloud
    // kernel has no AHCI driver for q35's SATA cdrom; qemu's translation cache capped.
    run(
        lab,
        &[
            "virt-install",
            "--connect",
            "qemu:///system",
            "--name",
            "vnode03",
            "--virt-type",
            "qemu",
            "--memory",
            "512",
            "--vcpus",
            "1",
            "--osinfo",
            "debian11",
            "--import",
            "--disk",
            &format!("path={},format=qcow2,bus=virtio", disk.display()),
            "--disk",
            &format!("path={},device=cdrom,bus=scsi,readonly=on", seed.display()),
            "--network",
            &format!("network=default,model=virtio,mac={private_mac}"),
            "--network",
            &format!("bridge=br0,model=virtio,mac={public_mac}"),
            "--graphics",
            "none",
            "--noautoconsole",
            "--serial",
            &format!("pty,log.file={},log.append=off", console.display()),
            "--xml",
            "./features/tcg/tb-cache=128",
            "--xml",
            "./features/tcg/tb-cache/@unit=MiB",
        ],
    );

    // The private lease from libvirt's network, the public one from the lab's site DHCP.
    let deadline = t0 + Duration::from_secs(300);
    let mut private = None;
    let public_leases = lab.dir().join("public/dnsmasq.leases");
    let mut public = None;
    while Instant::now() < deadline && (private.is_none() || public.is_none()) {
        std::thread::sleep(Duration::from_secs(1));
        if private.is_none() {
            let leases = run(
                lab,
                &[
                    "virsh",
                    "-q",
                    "net-dhcp-leases",
                    "default",
                    "--mac",
                    private_mac,
                ],
            );
            private = leases
                .split_whitespace()
                .find_map(|f| f.split('/').next()?.parse::<Ipv4Addr>().ok());
        }
        public = public.or_else(|| leased(&public_leases, public_mac));
    }
    let boot = t0.elapsed();
    eprintln!(
        "boot on {}: private lease {private:?}, public lease {public:?} after {:.1} s (lab up {:.1} s)",
        host.unwrap_or("the lab"),
        boot.as_secs_f64(),
        lab.up_time().as_secs_f64()
    );
    let private = private.expect("no private lease within 300 s");
    assert!(private.octets()[..3] == [192, 168, 122], "{private}");
    assert_eq!(public, Some(planned_ip), "public lease for {public_mac}");
    // The guest really holds the address: it answers the site on it.
    lab.exec_ok(["ping", "-c", "1", "-W", "5", &planned_ip.to_string()]);
    boot
}

/// Every process the lab's state.json records, the site's and each host's: (who, pid, start).
fn all_recorded_pids(lab: &Lab) -> Vec<(String, i64, u64)> {
    let state = lab.state();
    let mut machines = vec![("site".to_string(), state.clone())];
    for h in state["hosts"].as_array().unwrap() {
        machines.push((h["name"].as_str().unwrap().to_string(), h.clone()));
    }
    let mut out = Vec::new();
    for (who, m) in machines {
        for role in ["holder", "virtlogd", "libvirtd", "dnsmasq", "sshd"] {
            let p = &m[role];
            if p.is_object() {
                out.push((
                    format!("{who} {role}"),
                    p["pid"].as_i64().unwrap(),
                    p["start_time"].as_u64().unwrap(),
                ));
            }
        }
    }
    out
}

/// The names of the machine's own network interfaces (the root namespace's).
fn root_links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| Some(l.split(": ").nth(1)?.split('@').next()?.to_string()))
        .collect()
}

#[test]
fn hosts_answer_the_site_through_ssh_and_down_leaves_nothing() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    let lab = Lab::up_hosts("hosts", 2);
    let name = lab.name().to_string();
    eprintln!("lab up --hosts 2 took {:.1} s", lab.up_time().as_secs_f64());
    let hosts = lab.hosts();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h1", "h2"]);
    assert_eq!(
        [hosts[0].address.as_str(), hosts[1].address.as_str()],
        ["198.18.0.253", "198.18.0.252"]
    );

    // The site is the controller's LAN: bridges and DHCP/DNS, no libvirtd of its own.
    let state = lab.state();
    assert!(
        state["libvirtd"].is_null() && state["virtlogd"].is_null(),
        "{state:#}"
    );
    assert!(
        !lab.exec(["virsh", "-q", "-c", "qemu:///system", "version"])
            .status
            .success()
    );

    for h in &hosts {
        // From the site, with the lab's key and pinned known_hosts as root's ~/.ssh.
        lab.exec_ok([
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            &format!("root@{}", h.address),
            "true",
        ]);
        lab.exec_ok(["virsh", "-q", "-c", &h.uri, "version"]);
        // Each host has its own default network, seen through ssh and inside the host.
        for nets in [
            lab.exec_ok(["virsh", "-q", "-c", &h.uri, "net-list"]),
            lab.exec_host_ok(&h.name, ["virsh", "-q", "-c", "qemu:///system", "net-list"]),
        ] {
            assert!(
                nets.lines()
                    .any(|l| l.split_whitespace().take(2).eq(["default", "active"])),
                "{}: {nets}",
                h.name
            );
        }
        lab.exec_ok(["ping", "-c", "1", "-W", "5", &h.address]);
        let br0 = lab.exec_host_ok(&h.name, ["ip", "-br", "addr", "show", "br0"]);
        assert!(br0.contains(&format!("{}/24", h.address)), "{br0}");
    }

    // A pinned key that is not the host's: ssh refuses (then the right one again).
    let known = lab.dir().join("controller-ssh/known_hosts");
    let good = std::fs::read_to_string(&known).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let h2_key = lines[1].split_once(' ').unwrap().1;
    std::fs::write(
        &known,
        format!("{} {h2_key}\n{}\n", hosts[0].address, lines[1]),
    )
    .unwrap();
    let out = lab.exec([
        "ssh",
        "-o",
        "BatchMode=yes",
        &format!("root@{}", hosts[0].address),
        "true",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ssh accepted a wrong host key");
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
    std::fs::write(&known, &good).unwrap();
    lab.exec_ok(["virsh", "-q", "-c", &hosts[0].uri, "version"]);

    // vnode's pool directory is each host's own, below its own /var/lib/libvirt.
    let mark = format!("owner-{name}");
    for h in &hosts {
        lab.exec_host_ok(
            &h.name,
            [
                "sh",
                "-c",
                &format!(
                    "mkdir -p /var/lib/libvirt/vnode && echo {} > /var/lib/libvirt/vnode/{mark}",
                    h.name
                ),
            ],
        );
    }
    for h in &hosts {
        let seen = lab.exec_host_ok(&h.name, ["cat", &format!("/var/lib/libvirt/vnode/{mark}")]);
        assert_eq!(seen.trim(), h.name);
        let on_disk = lab.host_dir(&h.name).join("libvirt/lib/vnode").join(&mark);
        assert_eq!(std::fs::read_to_string(on_disk).unwrap().trim(), h.name);
    }
    assert!(!Path::new("/var/lib/libvirt/vnode").join(&mark).exists());

    // Commands in the lab have the lab's hosts as their [[hosts]].
    let config = lab.json(["config", "show"]);
    let uris: Vec<&str> = config["config"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, [hosts[0].uri.as_str(), hosts[1].uri.as_str()]);

    let status = lab.json(["lab", "status"]);
    assert_eq!(status["up"], true, "{status:#}");
    for (h, st) in hosts.iter().zip(status["hosts"].as_array().unwrap()) {
        assert_eq!(st["name"], h.name.as_str());
        assert_eq!(st["uri"], h.uri.as_str());
        assert_eq!(st["answers"], true, "{st:#}");
        let roles: Vec<&str> = st["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["holder", "virtlogd", "libvirtd", "sshd"]);
    }
    let (code, stderr) = lab
        .cli()
        .args(["lab", "exec", "--host", "h3", "--", "true"])
        .fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no host 'h3' (it has h1, h2)"), "{stderr}");

    // A guest on h2, defined from the site through ssh: no disk (it idles in the firmware), its
    // NICs on h2's own br0 and default network.
    let xml = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        xml.path(),
        "<domain type='qemu'><name>probe</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
         <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>\
         <interface type='network'><source network='default'/><model type='virtio'/></interface>\
         </devices></domain>",
    )
    .unwrap();
    let h2 = &hosts[1];
    lab.exec_ok([
        "virsh",
        "-q",
        "-c",
        &h2.uri,
        "define",
        xml.path().to_str().unwrap(),
    ]);
    lab.exec_ok(["virsh", "-q", "-c", &h2.uri, "start", "probe"]);
    let on_br0 = lab.exec_host_ok("h2", ["ip", "-br", "link", "show", "master", "br0"]);
    assert!(on_br0.contains("vnet"), "{on_br0}");
    let qemu_pid: i64 =
        std::fs::read_to_string(lab.host_dir("h2").join("libvirt/run/qemu/probe.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    let qemu = ("h2 qemu".to_string(), qemu_pid, start_time(qemu_pid));
    assert!(
        !lab.exec_host_ok("h1", ["virsh", "-q", "list", "--all"])
            .contains("probe")
    );

    // A host whose libvirtd is gone: the lab is still entered (vnode finds the host
    // unreachable, as a real one), status says so, and the host's namespaces are still there.
    let h2_libvirtd = &lab.state()["hosts"][1]["libvirtd"];
    let pid = h2_libvirtd["pid"].as_i64().unwrap().to_string();
    assert!(Command::new("kill").arg(&pid).status().unwrap().success());
    let gone = Instant::now() + Duration::from_secs(10);
    while runs(
        h2_libvirtd["pid"].as_i64().unwrap(),
        h2_libvirtd["start_time"].as_u64().unwrap(),
    ) && Instant::now() < gone
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.vnode_ok(["plan", "vnode03"]);
    let status = lab.json(["lab", "status"]);
    assert_eq!(status["up"], false);
    assert_eq!(status["hosts"][0]["answers"], true);
    assert_eq!(status["hosts"][1]["answers"], false, "{status:#}");
    lab.exec_host_ok("h2", ["true"]);

    // `up` again finds it broken, removes it all and starts a new lab with the same hosts.
    let mut old = all_recorded_pids(&lab);
    // Its guest too, which only a stop by namespace reaches now.
    old.push(qemu);
    let out = lab.vnode_ok(["lab", "up", "--hosts", "2"]);
    assert!(out.contains("removed stale state"), "{out}");
    for (who, pid, start) in &old {
        assert!(!runs(*pid, *start), "old {who} (pid {pid}) still runs");
    }
    for h in lab.hosts() {
        lab.exec_ok(["virsh", "-q", "-c", &h.uri, "version"]);
    }

    let mut pids = all_recorded_pids(&lab);
    assert_eq!(pids.len(), 2 + 2 * 4, "{pids:?}");
    // A guest on h1 of the new lab, for `down` to remove through h1's libvirtd.
    let h1 = lab.host("h1");
    lab.exec_ok([
        "virsh",
        "-q",
        "-c",
        &h1.uri,
        "define",
        xml.path().to_str().unwrap(),
    ]);
    lab.exec_ok(["virsh", "-q", "-c", &h1.uri, "start", "probe"]);
    let qemu_pid: i64 =
        std::fs::read_to_string(lab.host_dir("h1").join("libvirt/run/qemu/probe.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    pids.push(("h1 qemu".into(), qemu_pid, start_time(qemu_pid)));
    let links_before = root_links();
    let down = lab.down();
    eprintln!("lab down with 2 hosts took {:.1} s", down.as_secs_f64());
    assert_gone(&name, &pids);
    let netns = netns_list();
    assert!(
        !netns.contains(&format!("vnode-{name}.")),
        "a host's netns is left: {netns}"
    );
    let links = root_links();
    assert_eq!(links, links_before, "the machine's interfaces changed");
    for l in &links {
        assert!(!l.starts_with("h1-") && !l.starts_with("site-"), "{l}");
    }
}

#[test]
fn lab_up_refuses_hosts_it_cannot_make() {
    if require_root_or_skip(Needs::Lab) {
        return;
    }
    let name = format!("nohosts-{}", std::process::id());
    let (code, stderr) = Vnode::new()
        .lab(&name)
        .args(["lab", "up", "--hosts", "9"])
        .fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--hosts") && stderr.contains("0..=8"),
        "{stderr}"
    );
    // No room for a host on the default pool's subnet: nodes take .1-.61 of a /26, the site .62.
    let (code, stderr) = Vnode::new()
        .config(
            "[[pool]]\nstem = \"a\"\nfirst = 0\nlast = 60\npublic_offset = 1\n\
             public_subnet = \"10.0.0.0/26\"\n",
        )
        .lab(&name)
        .args(["lab", "up", "--hosts", "1"])
        .fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no addresses for 1 host(s)") && stderr.contains("10.0.0.0/26"),
        "{stderr}"
    );
    assert!(!Path::new(lab::LAB_ROOT).join(&name).exists());
    assert!(!netns_list().contains(&format!("vnode-{name}")));
}
