//! `vnode lab up`: namespaces, libvirt's daemons, the private network, the public bridges and
//! the site DHCP/DNS, in that order. The state is saved after every step, and a failing step
//! undoes everything before it.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::dnsmasq::PublicDhcp;
use super::down::teardown;
use super::namespace::Namespaces;
use super::paths::{LIBVIRT_DIRS, LabDir, QEMU_CAPS_CACHE, QEMU_CAPS_SUB};
use super::pools::{lab_pools, public_nets};
use super::process::{self, Proc, wait_until};
use super::state::{LabLock, LabState, PublicNet, bridges};
use super::{LabError, LabName, lab_virsh, netns_path, require_root, tool};
use crate::pool::Pools;

const KVM: &str = "/dev/kvm";

/// The network libvirt's stock `default` is defined from when the lab's copy of /etc/libvirt
/// lacks it.
const DEFAULT_NETWORK_XML: &str = "/usr/share/libvirt/networks/default.xml";

/// The holder: bind-mounts each (source, target) pair given as arguments (see `mounts`), then
/// sleeps, keeping the namespaces alive. `-e`: a failed mount ends it before it sleeps.
const HOLDER_SCRIPT: &str =
    "while [ $# -gt 0 ]; do mount --bind \"$1\" \"$2\"; shift 2; done; exec sleep infinity";

pub enum UpOutcome {
    /// Started; `cleaned` names the stale state of an earlier lab that was removed first.
    Started {
        cleaned: Option<String>,
    },
    AlreadyUp,
}

pub struct UpReport {
    pub state: LabState,
    pub outcome: UpOutcome,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

pub fn up(name: &LabName, pools: &Pools) -> Result<UpReport, LabError> {
    require_root()?;
    let t0 = Instant::now();
    let pools = lab_pools(pools, name)?;
    let dir = LabDir::of(name);
    let _lock = LabLock::acquire(name, &dir)?;
    let mut cleaned = None;
    match LabState::load(name, &dir)? {
        Some(state) => {
            let problems = state.problems();
            if problems.is_empty() {
                return Ok(UpReport {
                    warnings: plan_changes(&state, &pools),
                    state,
                    outcome: UpOutcome::AlreadyUp,
                    elapsed: t0.elapsed(),
                });
            }
            teardown(name, &dir, Some(&state))?;
            cleaned = Some(problems.join(", "));
        }
        None if netns_path(name).exists() || dir.root().exists() => {
            teardown(name, &dir, None)?;
            cleaned = Some("leftovers without a state file".into());
        }
        None => {}
    }
    let mut starter = Starter {
        name,
        dir: &dir,
        state: LabState::new(name, &dir),
        ns: None,
    };
    if let Err(e) = starter.start(&pools) {
        drop(starter.ns.take());
        return Err(match teardown(name, &dir, Some(&starter.state)) {
            Ok(_) => e,
            Err(e2) => LabError::Failed {
                lab: name.clone(),
                stage: "up".into(),
                message: format!("{e}; undoing it failed too: {e2}"),
            },
        });
    }
    Ok(UpReport {
        warnings: other_networks(&pools),
        state: starter.state,
        outcome: UpOutcome::Started { cleaned },
        elapsed: t0.elapsed(),
    })
}

/// The lab serves the plan it was started with; say so when the config now asks for another.
fn plan_changes(state: &LabState, pools: &Pools) -> Vec<String> {
    if state.public == public_nets(pools) {
        return Vec::new();
    }
    vec![format!(
        "the config's pools have changed since the lab was started; run `vnode {flag} lab down` \
         and `vnode {flag} lab up` to serve the new plan",
        flag = state.name.flag()
    )]
}

/// The lab provides libvirt's `default` network only.
fn other_networks(pools: &Pools) -> Vec<String> {
    pools
        .all()
        .iter()
        .filter(|p| p.network != "default")
        .map(|p| {
            format!(
                "pool '{}' uses libvirt network '{}', which the lab does not create (it has \
                 'default' only)",
                p.stem, p.network
            )
        })
        .collect()
}

struct Starter<'a> {
    name: &'a LabName,
    dir: &'a LabDir,
    state: LabState,
    ns: Option<Namespaces>,
}

impl Starter<'_> {
    fn start(&mut self, pools: &Pools) -> Result<(), LabError> {
        self.prepare_dir()?;
        self.create_netns()?;
        self.start_holder()?;
        self.start_libvirt()?;
        self.start_default_network()?;
        let nets = public_nets(pools);
        self.create_bridges(&nets)?;
        self.start_dhcp(pools, nets)?;
        self.state.complete = true;
        self.save()
    }

    fn fail(&self, stage: &str, message: impl Into<String>) -> LabError {
        LabError::Failed {
            lab: self.name.clone(),
            stage: stage.into(),
            message: message.into(),
        }
    }

    fn save(&self) -> Result<(), LabError> {
        self.state.save(self.dir)
    }

    fn ns(&self) -> &Namespaces {
        self.ns.as_ref().expect("the holder runs")
    }

    /// A tool inside the lab, with a deadline; its stdout.
    fn run_in(&self, stage: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
        let mut cmd = self.ns().command(program);
        cmd.args(args);
        crate::exec::stdout_blocking(&mut cmd, Duration::from_secs(30))
            .map_err(|m| self.fail(stage, m))
    }

    fn virsh(&self, stage: &str, args: &[&str]) -> Result<String, LabError> {
        lab_virsh()
            .run_blocking(self.ns().command("virsh"), args, Duration::from_secs(30))
            .map_err(|e| self.fail(stage, e.to_string()))
    }

    /// The lab directory with fresh copies of libvirt's configuration and state directories.
    fn prepare_dir(&mut self) -> Result<(), LabError> {
        let stage = "prepare the lab directory";
        let io = |e| LabError::io(self.name, stage, e);
        fs::create_dir_all(self.dir.root()).map_err(io)?;
        fs::set_permissions(self.dir.root(), fs::Permissions::from_mode(0o755)).map_err(io)?;
        self.save()?;
        for d in &LIBVIRT_DIRS {
            let copy = self.dir.libvirt(d.sub);
            fs::create_dir_all(&copy).map_err(io)?;
            // The mount point; libvirt's packages create all but /run/libvirt, which only a
            // running libvirtd would. An empty directory, left in place for the next lab.
            fs::create_dir_all(d.target).map_err(io)?;
            let mode = fs::metadata(d.target).map_err(io)?.permissions();
            fs::set_permissions(&copy, mode).map_err(io)?;
            if d.seed {
                let mut cp = Command::new("cp");
                cp.arg("-a").arg(Path::new(d.target).join(".")).arg(&copy);
                crate::exec::stdout_blocking(&mut cp, Duration::from_secs(30))
                    .map_err(|m| self.fail(stage, m))?;
            }
        }
        for sub in [self.dir.public(""), self.dir.xdg_cache()] {
            fs::create_dir_all(sub).map_err(io)?;
        }
        self.make_kvm_node().map_err(io)?;
        let caps = self.dir.libvirt("cache").join(QEMU_CAPS_SUB);
        fs::create_dir_all(&caps).map_err(io)?;
        // A cache: a missing or unreadable one only costs time.
        let _ = copy_files(Path::new(QEMU_CAPS_CACHE), &caps);
        Ok(())
    }

    /// What the holder bind-mounts: the lab's copies over libvirt's directories, and the lab's
    /// /dev/kvm when there is one.
    fn mounts(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = LIBVIRT_DIRS
            .iter()
            .map(|d| (self.dir.libvirt(d.sub), d.target.into()))
            .collect();
        if self.dir.kvm().exists() {
            out.push((self.dir.kvm(), KVM.into()));
        }
        out
    }

    /// /dev/kvm for the lab as a stock Debian host has it: root:kvm 0660 (udev's rule), so the
    /// qemu user can open it. A host without udev (a container) may have it root-only; libvirt
    /// then judges KVM unusable while its qemu probe (as root) found it usable, throws its
    /// capability cache away on every lookup and probes qemu again: ~12 s for `lab up` and
    /// 4-7 s for every capabilities query (virt-install makes several). The host's node is
    /// left as it is.
    fn make_kvm_node(&self) -> std::io::Result<()> {
        let Ok(meta) = fs::metadata(KVM) else {
            return Ok(());
        };
        let Some(kvm_gid) = group_id("kvm") else {
            return Ok(());
        };
        if !meta.file_type().is_char_device() {
            return Ok(());
        }
        let node = self.dir.kvm();
        let path = std::ffi::CString::new(node.as_os_str().as_bytes()).expect("no NUL in paths");
        // SAFETY: mknod and chown read a valid C string and plain integers.
        unsafe {
            if libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o660, meta.rdev()) != 0
                || libc::chown(path.as_ptr(), 0, kvm_gid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        // mknod's mode is filtered by the umask.
        fs::set_permissions(&node, fs::Permissions::from_mode(0o660))
    }

    fn create_netns(&mut self) -> Result<(), LabError> {
        let stage = "create the network namespace";
        let netns = self.state.netns.clone();
        let mut add = Command::new("ip");
        add.args(["netns", "add", &netns]);
        crate::exec::stdout_blocking(&mut add, Duration::from_secs(10))
            .map_err(|m| self.fail(stage, m))?;
        let mut lo = Command::new("ip");
        lo.args(["-n", &netns, "link", "set", "lo", "up"]);
        crate::exec::stdout_blocking(&mut lo, Duration::from_secs(10))
            .map_err(|m| self.fail(stage, m))?;
        Ok(())
    }

    /// The holder: in the network namespace (through `ip netns exec`, which also mounts the
    /// namespace's own /sys, which libvirt reads bridges from) and a private mount namespace
    /// with libvirt's directories replaced by the lab's copies. In its own session, so it
    /// outlives this command.
    fn start_holder(&mut self) -> Result<(), LabError> {
        let stage = "start the namespace holder";
        let log = self.dir.holder_log();
        let out = tool::append(&log).map_err(|e| LabError::io(self.name, stage, e))?;
        let err = out
            .try_clone()
            .map_err(|e| LabError::io(self.name, stage, e))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.state.netns])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-ec", HOLDER_SCRIPT, "vnode-lab-holder"]);
        for (source, target) in self.mounts() {
            cmd.arg(source).arg(target);
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        // `ip netns exec`, unshare and sh each exec the next, so the child's PID is the holder's.
        // The child is never waited for: it is the lab's, not this command's.
        let child = cmd
            .spawn()
            .map_err(|e| self.fail(stage, format!("cannot run `ip netns exec`: {e}")))?;
        let holder = Proc::of(child.id() as i32)
            .ok_or_else(|| self.fail(stage, format!("it exited at once{}", tool::tail_of(&log))))?;
        self.state.holder = Some(holder);
        self.save()?;
        let ready = wait_until(Duration::from_secs(10), || {
            !holder.is_alive() || holder.comm().as_deref() == Some("sleep")
        });
        if !ready || !holder.is_alive() {
            return Err(self.fail(
                stage,
                format!("it did not get to sleep{}", tool::tail_of(&log)),
            ));
        }
        self.state.netns_inode = process::netns_inode(&holder);
        self.ns = Some(
            Namespaces::of(&holder, &self.dir.xdg_cache())
                .map_err(|e| LabError::io(self.name, stage, e))?,
        );
        self.save()
    }

    /// virtlogd, then libvirtd, each with its pidfile in the lab's /run/libvirt (their default is
    /// the host's /run) and its log in the lab's /var/log/libvirt; done when virsh gets an answer.
    fn start_libvirt(&mut self) -> Result<(), LabError> {
        self.state.virtlogd = Some(self.start_libvirt_daemon("virtlogd")?);
        self.save()?;
        self.state.libvirtd = Some(self.start_libvirt_daemon("libvirtd")?);
        self.save()?;
        let mut last = String::new();
        let answers = wait_until(Duration::from_secs(60), || {
            match self.virsh("wait for libvirtd", &["version"]) {
                Ok(_) => true,
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if !answers {
            let log = tool::tail_of(&self.dir.libvirt_log("libvirtd.log"));
            return Err(self.fail("wait for libvirtd", format!("{last}{log}")));
        }
        // libvirtd has probed qemu by now (its first answer waits for that); keep the probe.
        let caps = self.dir.libvirt("cache").join(QEMU_CAPS_SUB);
        let shared = Path::new(QEMU_CAPS_CACHE);
        let _ = fs::create_dir_all(shared).and_then(|()| copy_files(&caps, shared));
        Ok(())
    }

    fn start_libvirt_daemon(&self, program: &str) -> Result<Proc, LabError> {
        let stage = format!("start {program}");
        let mut cmd = self.ns().command(program);
        cmd.args(["-d", "-p", &format!("/run/libvirt/{program}.pid")]);
        // Warnings and errors to the lab's log, unless the caller asks for more (debugging the
        // lab: LIBVIRT_LOG_OUTPUTS=1:file:/tmp/x.log LIBVIRT_LOG_FILTERS=... vnode lab up).
        if std::env::var_os("LIBVIRT_LOG_OUTPUTS").is_none() {
            cmd.env(
                "LIBVIRT_LOG_OUTPUTS",
                format!("3:file:/var/log/libvirt/{program}.log"),
            );
        }
        if program == "libvirtd" {
            pin_to_one_cpu(&mut cmd);
        }
        let out = self.dir.libvirt_log(&format!("{program}.out"));
        tool::start_daemon(&mut cmd, &out, Duration::from_secs(30)).map_err(|m| {
            self.fail(
                &stage,
                format!(
                    "{m}{}",
                    tool::tail_of(&self.dir.libvirt_log(&format!("{program}.log")))
                ),
            )
        })?;
        self.read_pid_file(&stage, &self.dir.libvirt_run(&format!("{program}.pid")))
    }

    /// The daemon's PID from its pidfile (written by the daemon itself, so it may lag a little).
    fn read_pid_file(&self, stage: &str, path: &Path) -> Result<Proc, LabError> {
        let mut found = None;
        wait_until(Duration::from_secs(10), || {
            found = fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .and_then(Proc::of);
            found.is_some()
        });
        found.ok_or_else(|| self.fail(stage, format!("no live process in {}", path.display())))
    }

    /// libvirt's NAT network `default` (virbr0, 192.168.122.0/24, its own dnsmasq) for the
    /// nodes' private NICs. Its iptables rules land in the lab's network namespace.
    fn start_default_network(&mut self) -> Result<(), LabError> {
        let stage = "start libvirt's default network";
        let names = |out: String| -> Vec<String> {
            out.lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        };
        let defined = names(self.virsh(stage, &["net-list", "--all", "--name"])?);
        if !defined.iter().any(|n| n == "default") {
            self.virsh(stage, &["net-define", DEFAULT_NETWORK_XML])?;
        }
        let active = names(self.virsh(stage, &["net-list", "--name"])?);
        if !active.iter().any(|n| n == "default") {
            self.virsh(stage, &["net-start", "default"])?;
        }
        Ok(())
    }

    /// The "site LAN": each pool's bridge, with the lab's address in each subnet on it.
    fn create_bridges(&mut self, nets: &[PublicNet]) -> Result<(), LabError> {
        let stage = "create the public bridges";
        for bridge in bridges(nets) {
            let add: Vec<&str> = ["link", "add", bridge]
                .into_iter()
                .chain(crate::host::bridge::BRIDGE_LINK_OPTIONS)
                .collect();
            self.run_in(stage, "ip", &add)?;
            for net in nets.iter().filter(|n| n.bridge == bridge) {
                self.run_in(
                    stage,
                    "ip",
                    &["addr", "add", &net.host_cidr(), "dev", bridge],
                )?;
            }
            self.run_in(stage, "ip", &["link", "set", bridge, "up"])?;
        }
        self.state.public = nets.to_vec();
        self.save()
    }

    /// The site DHCP/DNS: dnsmasq on the bridges, serving the plan.
    fn start_dhcp(&mut self, pools: &Pools, nets: Vec<PublicNet>) -> Result<(), LabError> {
        let stage = "start the public DHCP/DNS (dnsmasq)";
        let io = |e| LabError::io(self.name, stage, e);
        let dhcp = PublicDhcp {
            nets,
            pid_file: self.dir.public("dnsmasq.pid"),
            lease_file: self.dir.public("dnsmasq.leases"),
            log_file: self.dir.public("dnsmasq.log"),
            plan_file: self.dir.public("plan.conf"),
        };
        let conf = self.dir.public("dnsmasq.conf");
        fs::write(&dhcp.plan_file, PublicDhcp::plan(pools)).map_err(io)?;
        fs::write(&conf, dhcp.config()).map_err(io)?;
        let mut cmd = self.ns().command("dnsmasq");
        cmd.arg(format!("--conf-file={}", conf.display()));
        tool::start_daemon(
            &mut cmd,
            &self.dir.public("dnsmasq.out"),
            Duration::from_secs(30),
        )
        .map_err(|m| self.fail(stage, format!("{m}{}", tool::tail_of(&dhcp.log_file))))?;
        self.state.dnsmasq = Some(self.read_pid_file(stage, &dhcp.pid_file)?);
        self.save()
    }
}

/// Copies the files of `from` into `to`, each through a temporary name and a rename, so that a
/// lab starting at the same time reads each file whole or not at all.
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let tmp = to.join(format!(
            ".{}.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        fs::copy(entry.path(), &tmp)?;
        fs::rename(&tmp, to.join(&name))?;
    }
    Ok(())
}

/// The id of a group of the host (from /etc/group).
fn group_id(name: &str) -> Option<u32> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Runs the command on one CPU (the first this process may use).
///
/// libvirtd compares the CPUID data it reads at start-up with what it read when it probed qemu,
/// and probes again (~8 s) when they differ. On some virtual machines (this project's test host)
/// the vCPUs report different CPUID data, so a libvirtd that happens to start on another CPU
/// than the one that filled the shared capability cache throws it away. On one fixed CPU it
/// reads the same data every time. Guests do not inherit this: libvirt gives each qemu all host
/// CPUs unless the domain says otherwise.
fn pin_to_one_cpu(cmd: &mut Command) {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return;
    }
    let Some(first) =
        (0..libc::CPU_SETSIZE as usize).find(|&c| unsafe { libc::CPU_ISSET(c, &allowed) })
    else {
        return;
    };
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `first` < CPU_SETSIZE.
    unsafe { libc::CPU_SET(first, &mut one) };
    // SAFETY: sched_setaffinity is async-signal-safe and only reads `one`, a copy owned by the
    // closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, size, &one) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
