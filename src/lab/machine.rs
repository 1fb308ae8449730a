//! Starting one machine of a lab: its network namespace, the holder of its namespaces and, for a
//! hypervisor, libvirt's daemons and `default` network in them. One sequence serves the lab
//! without hosts (whose site is its hypervisor) and each host of a lab with hosts. Every step is
//! recorded in the lab's state as soon as it is done, so a failure can be undone.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::namespace::Namespaces;
use super::paths::{LIBVIRT_DIRS, LabDir, MachineDir, QEMU_CAPS_CACHE, QEMU_CAPS_SUB};
use super::process::{self, Proc, wait_until};
use super::state::{LabState, Machine};
use super::{LabError, LabName, StepError, lab_virsh, tool};

const KVM: &str = "/dev/kvm";

/// The network libvirt's stock `default` is defined from when the machine's copy of
/// /etc/libvirt lacks it.
const DEFAULT_NETWORK_XML: &str = "/usr/share/libvirt/networks/default.xml";

/// The holder: drops its copies of the machine's `ip netns` mounts (each would keep that
/// namespace, another lab's or another host's, alive with its interfaces after its `ip netns
/// del`, for as long as this holder lives), bind-mounts each (source, target) pair given as
/// arguments (see `mounts`), then sleeps, keeping the namespaces alive. `-e`: a failed bind
/// mount ends it before it sleeps.
const HOLDER_SCRIPT: &str = "for ns in /run/netns/*; do umount \"$ns\" 2>/dev/null || :; done; \
     while [ $# -gt 0 ]; do mount --bind \"$1\" \"$2\"; shift 2; done; exec sleep infinity";

/// The state of a lab coming up, saved after every change; shared by the threads that start
/// the lab's hosts.
pub struct Record<'a> {
    dir: &'a LabDir,
    state: Mutex<LabState>,
}

/// Which machine of the lab's state a step changes.
#[derive(Clone, Copy, Debug)]
pub enum At {
    Site,
    Host(usize),
}

impl<'a> Record<'a> {
    pub fn new(dir: &'a LabDir, state: LabState) -> Record<'a> {
        Record {
            dir,
            state: Mutex::new(state),
        }
    }

    /// Changes the state and saves it.
    pub fn update(&self, change: impl FnOnce(&mut LabState)) -> Result<(), LabError> {
        let mut state = self.state.lock().expect("no step panics holding the state");
        change(&mut state);
        state.save(self.dir)
    }

    /// Changes one machine of the state and saves it.
    pub fn update_machine(
        &self,
        at: At,
        change: impl FnOnce(&mut Machine),
    ) -> Result<(), LabError> {
        self.update(|s| {
            change(match at {
                At::Site => &mut s.site,
                At::Host(i) => &mut s.hosts[i].machine,
            })
        })
    }

    pub fn read<T>(&self, f: impl FnOnce(&LabState) -> T) -> T {
        f(&self.state.lock().expect("no step panics holding the state"))
    }

    pub fn into_state(self) -> LabState {
        self.state
            .into_inner()
            .expect("no step panics holding the state")
    }
}

/// What a machine's copies of libvirt's directories start as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Libvirt {
    /// Copies of the machine's configuration and state, for a libvirtd of its own.
    Seeded,
    /// Empty: no libvirtd runs there, and `qemu:///system` reaches none (not the machine's).
    Empty,
}

/// One machine of a lab coming up.
pub struct MachineStarter<'a> {
    lab: &'a LabName,
    record: &'a Record<'a>,
    at: At,
    dir: MachineDir,
    netns: String,
    /// For messages: "" for the site, "h1: " for a host.
    label: String,
    ns: Option<Namespaces>,
}

impl<'a> MachineStarter<'a> {
    pub fn new(lab: &'a LabName, record: &'a Record<'a>, at: At, dir: MachineDir) -> Self {
        let (netns, label) = record.read(|s| match at {
            At::Site => (s.site.netns.clone(), String::new()),
            At::Host(i) => (
                s.hosts[i].machine.netns.clone(),
                format!("{}: ", s.hosts[i].name),
            ),
        });
        MachineStarter {
            lab,
            record,
            at,
            dir,
            netns,
            label,
            ns: None,
        }
    }

    /// A hypervisor: its own copies of libvirt's directories, the namespaces, virtlogd and
    /// libvirtd, and libvirt's `default` network.
    pub fn start_hypervisor(&mut self) -> Result<(), LabError> {
        self.prepare_dir(Libvirt::Seeded)?;
        self.create_netns()?;
        self.start_holder(&[])?;
        self.start_libvirt()?;
        self.start_default_network()
    }

    /// A machine without libvirt daemons (the site of a lab with hosts), with `extra` bind
    /// mounts (source, target) in its mount namespace.
    pub fn start_plain(&mut self, extra: &[(PathBuf, PathBuf)]) -> Result<(), LabError> {
        self.prepare_dir(Libvirt::Empty)?;
        self.create_netns()?;
        self.start_holder(extra)
    }

    pub fn dir(&self) -> &MachineDir {
        &self.dir
    }

    pub fn ns(&self) -> &Namespaces {
        self.ns.as_ref().expect("the holder runs")
    }

    pub fn fail(&self, stage: &str, message: impl Into<String>) -> LabError {
        LabError::Failed {
            lab: self.lab.clone(),
            stage: format!("{}{stage}", self.label),
            message: message.into(),
        }
    }

    /// A step of this machine that failed with a typed error.
    pub fn step_failed(&self, stage: &str, source: StepError) -> LabError {
        LabError::Step {
            lab: self.lab.clone(),
            stage: format!("{}{stage}", self.label),
            source: Box::new(source),
        }
    }

    /// A daemon that did not start; the message ends with the end of its `log`.
    pub fn daemon_failed(&self, stage: &str, source: tool::DaemonError, log: &Path) -> LabError {
        let tail = tool::tail_of(log);
        self.step_failed(stage, StepError::DaemonLog { source, tail })
    }

    pub fn io(&self, stage: &str, e: std::io::Error) -> LabError {
        LabError::io(self.lab, &format!("{}{stage}", self.label), e)
    }

    /// A tool inside the machine, with a deadline; its stdout.
    pub fn run_in(&self, stage: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
        let mut cmd = self.ns().command(program);
        cmd.args(args);
        crate::process::exec::stdout_blocking(&mut cmd, Duration::from_secs(30))
            .map_err(|e| self.step_failed(stage, e.into()))
    }

    fn virsh(&self, stage: &str, args: &[&str]) -> Result<String, LabError> {
        lab_virsh()
            .run_blocking(self.ns().command("virsh"), args, Duration::from_secs(30))
            .map_err(|e| self.fail(stage, e.to_string()))
    }

    /// The machine's directory with its copies of libvirt's configuration and state
    /// directories.
    fn prepare_dir(&mut self, libvirt: Libvirt) -> Result<(), LabError> {
        let stage = "prepare the lab directory";
        let io = |e| self.io(stage, e);
        fs::create_dir_all(self.dir.root()).map_err(io)?;
        // libvirt's qemu user must traverse it to the nodes' files.
        fs::set_permissions(self.dir.root(), fs::Permissions::from_mode(0o755)).map_err(io)?;
        for d in &LIBVIRT_DIRS {
            let copy = self.dir.libvirt(d.sub);
            fs::create_dir_all(&copy).map_err(io)?;
            // The mount point; libvirt's packages create all but /run/libvirt, which only a
            // running libvirtd would. An empty directory, left in place for the next lab.
            fs::create_dir_all(d.target).map_err(io)?;
            let mode = fs::metadata(d.target).map_err(io)?.permissions();
            fs::set_permissions(&copy, mode).map_err(io)?;
            if d.seed && libvirt == Libvirt::Seeded {
                let mut cp = Command::new("cp");
                cp.arg("-a").arg(Path::new(d.target).join(".")).arg(&copy);
                crate::process::exec::stdout_blocking(&mut cp, Duration::from_secs(30))
                    .map_err(|e| self.step_failed(stage, e.into()))?;
            }
        }
        fs::create_dir_all(self.dir.xdg_cache()).map_err(io)?;
        if libvirt == Libvirt::Empty {
            return Ok(());
        }
        self.make_kvm_node().map_err(io)?;
        let caps = self.dir.libvirt("cache").join(QEMU_CAPS_SUB);
        fs::create_dir_all(&caps).map_err(io)?;
        // A cache: a missing or unreadable one only costs time.
        let _ = copy_files(Path::new(QEMU_CAPS_CACHE), &caps);
        Ok(())
    }

    /// What the holder bind-mounts: the machine's copies over libvirt's directories, its
    /// /dev/kvm when there is one, and `extra`.
    fn mounts(&self, extra: &[(PathBuf, PathBuf)]) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = LIBVIRT_DIRS
            .iter()
            .map(|d| (self.dir.libvirt(d.sub), d.target.into()))
            .collect();
        if self.dir.kvm().exists() {
            out.push((self.dir.kvm(), KVM.into()));
        }
        out.extend_from_slice(extra);
        out
    }

    /// /dev/kvm for the machine as a stock Debian host has it: root:kvm 0660 (udev's rule), so
    /// the qemu user can open it. A host without udev (a container) may have it root-only;
    /// libvirt then judges KVM unusable while its qemu probe (as root) found it usable, throws
    /// its capability cache away on every lookup and probes qemu again: ~12 s for `lab up` and
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
        let mut add = Command::new("ip");
        add.args(["netns", "add", &self.netns]);
        crate::process::exec::stdout_blocking(&mut add, Duration::from_secs(10))
            .map_err(|e| self.step_failed(stage, e.into()))?;
        let mut lo = Command::new("ip");
        lo.args(["-n", &self.netns, "link", "set", "lo", "up"]);
        crate::process::exec::stdout_blocking(&mut lo, Duration::from_secs(10))
            .map_err(|e| self.step_failed(stage, e.into()))?;
        Ok(())
    }

    /// The holder: in the network namespace (through `ip netns exec`, which also mounts the
    /// namespace's own /sys, which libvirt reads bridges from) and a private mount namespace
    /// with libvirt's directories replaced by the machine's copies. In its own session, so it
    /// outlives this command.
    fn start_holder(&mut self, extra: &[(PathBuf, PathBuf)]) -> Result<(), LabError> {
        let stage = "start the namespace holder";
        let log = self.dir.holder_log();
        let out = tool::append(&log).map_err(|e| self.io(stage, e))?;
        let err = out.try_clone().map_err(|e| self.io(stage, e))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-ec", HOLDER_SCRIPT, "vnode-lab-holder"]);
        for (source, target) in self.mounts(extra) {
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
        self.record
            .update_machine(self.at, |m| m.holder = Some(holder))?;
        let ready = wait_until(Duration::from_secs(10), || {
            !holder.is_alive() || holder.comm().as_deref() == Some("sleep")
        });
        if !ready || !holder.is_alive() {
            return Err(self.fail(
                stage,
                format!("it did not get to sleep{}", tool::tail_of(&log)),
            ));
        }
        let inode = process::netns_inode(&holder);
        self.ns =
            Some(Namespaces::of(&holder, &self.dir.xdg_cache()).map_err(|e| self.io(stage, e))?);
        self.record
            .update_machine(self.at, |m| m.netns_inode = inode)
    }

    /// virtlogd, then libvirtd, each with its pidfile in the machine's /run/libvirt (their
    /// default is the host's /run) and its log in its /var/log/libvirt; done when virsh gets
    /// an answer.
    fn start_libvirt(&mut self) -> Result<(), LabError> {
        let virtlogd = self.start_libvirt_daemon("virtlogd")?;
        self.record
            .update_machine(self.at, |m| m.virtlogd = Some(virtlogd))?;
        let libvirtd = self.start_libvirt_daemon("libvirtd")?;
        self.record
            .update_machine(self.at, |m| m.libvirtd = Some(libvirtd))?;
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
        let pid_file = format!("/run/libvirt/{program}.pid");
        let reaper = (program == "libvirtd")
            .then(|| crate::process::exec::which("tini"))
            .flatten();
        let mut cmd = match &reaper {
            Some(tini) => {
                let mut cmd = self.ns().command(tini);
                cmd.args(["-s", "--", program, "-p", &pid_file]);
                cmd
            }
            None => {
                let mut cmd = self.ns().command(program);
                cmd.args(["-d", "-p", &pid_file]);
                cmd
            }
        };
        // Warnings and errors to the machine's log, unless the caller asks for more (debugging
        // the lab: LIBVIRT_LOG_OUTPUTS=1:file:/tmp/x.log LIBVIRT_LOG_FILTERS=... vnode lab up).
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
        if reaper.is_some() {
            self.start_under_reaper(&stage, &mut cmd, &out)?;
            return self.read_pid_file(&stage, &self.dir.libvirt_run(&format!("{program}.pid")));
        }
        tool::start_daemon(&mut cmd, &out, Duration::from_secs(30)).map_err(|e| {
            let log = self.dir.libvirt_log(&format!("{program}.log"));
            self.daemon_failed(&stage, e, &log)
        })?;
        self.read_pid_file(&stage, &self.dir.libvirt_run(&format!("{program}.pid")))
    }

    /// libvirtd in the foreground under tini, a subreaper (`-s`), in a session of its own so that
    /// it outlives this command (never waited for: it is the lab's). libvirtd double-forks QEMU,
    /// and an orphan goes to the nearest subreaper among its ancestors, else to PID 1; a
    /// zombie's PID stays until it is reaped, and libvirt's destroy returns only once QEMU's PID
    /// is gone. This machine's PID 1 reaps orphans about every 2 s, so every destroy waited
    /// 1.4-2 s for it; tini reaps at once, as a host's init does. Without tini, `libvirtd -d`.
    fn start_under_reaper(
        &self,
        stage: &str,
        cmd: &mut Command,
        log: &Path,
    ) -> Result<(), LabError> {
        let out = tool::append(log).map_err(|e| self.io(stage, e))?;
        let err = out.try_clone().map_err(|e| self.io(stage, e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.spawn()
            .map(drop)
            .map_err(|e| self.fail(stage, format!("cannot run tini: {e}")))
    }

    /// A daemon's PID from its pidfile (written by the daemon itself, so it may lag a little).
    pub fn read_pid_file(&self, stage: &str, path: &Path) -> Result<Proc, LabError> {
        read_pid_file(path)
            .ok_or_else(|| self.fail(stage, format!("no live process in {}", path.display())))
    }

    /// libvirt's NAT network `default` (virbr0, 192.168.122.0/24, its own dnsmasq) for the
    /// nodes' private NICs. Its iptables rules land in the machine's network namespace.
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
}

/// The live process a pidfile names, waiting up to 10 s for the daemon to write it.
pub fn read_pid_file(path: &Path) -> Option<Proc> {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .and_then(Proc::of);
        found.is_some()
    });
    found
}

/// Copies the files of `from` into `to`, each through a temporary name and a rename, so that a
/// lab starting at the same time (or another host of this one) reads each file whole or not at
/// all.
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    static COPIES: AtomicU64 = AtomicU64::new(0);
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let tmp = to.join(format!(
            ".{}.{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
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
