//! vnode's namespace lab for end-to-end tests: `Lab::up("boot")` starts a lab of its own (its
//! name is made unique per test process, so tests run in parallel), runs the real vnode binary
//! in it, and tears it down when dropped, also when the test panics (after printing the lab's
//! status and logs).
//!
//! ```ignore
//! if gate::require_root_or_skip(Needs::Lab) { return; }
//! let lab = Lab::up("plan");
//! let ip = lab.exec_ok(["dig", "+short", "@198.18.0.254", &format!("vnode03.{}", lab.domain())]);
//! let report = lab.spawn(["3", "4:debian-12-test"]).expect_ready();
//! assert_eq!(lab.ssh("vnode03", &["hostname"]), "vnode03");
//! ```
//!
//! A lab with hypervisor hosts (`lab up --hosts N`): vnode runs in its site and reaches the
//! hosts `h1`..`hN` as its `[[hosts]]` through `qemu+ssh://`.
//!
//! ```ignore
//! let lab = Lab::up_hosts("multi", 3);
//! let h2 = lab.host("h2");                     // name, address, uri
//! lab.exec_ok(["virsh", "-c", &h2.uri, "version"]);          // from the site, through ssh
//! lab.exec_host_ok("h2", ["virsh", "-q", "vol-list", "vnode"]); // inside h2 itself
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{self, Vnode};
use super::json;

/// Where vnode keeps its labs (vnode's `lab::LAB_ROOT`).
pub const LAB_ROOT: &str = "/var/lib/vnode/lab";

pub struct Lab {
    name: String,
    /// HOME and the config file of every vnode run, so the host's config plays no part.
    dir: tempfile::TempDir,
    config: PathBuf,
    up_time: Duration,
    /// Files printed when the test fails (console logs, ...), besides the lab's own logs.
    dump: Vec<PathBuf>,
    is_down: bool,
    /// This lab's tag, held while it lives (no two labs of a test process share one).
    _tag: TagClaim,
}

/// One host of a lab with hosts, as its state.json has it.
#[derive(Clone, Debug)]
pub struct LabHost {
    /// `h1`, `h2`, ...
    pub name: String,
    /// Its address on the site LAN (where its sshd listens).
    pub address: String,
    /// `qemu+ssh://root@ADDRESS/system`.
    pub uri: String,
    /// Its `ip netns` name.
    pub netns: String,
}

impl Lab {
    /// A lab with vnode's default config.
    pub fn up(tag: &str) -> Lab {
        Lab::with_config(tag, "")
    }

    /// A lab with `hosts` hypervisor hosts (`lab up --hosts N`) and vnode's default config.
    pub fn up_hosts(tag: &str, hosts: u8) -> Lab {
        Lab::with_config_hosts(tag, "", hosts)
    }

    /// A lab with `config` (TOML) as vnode's config file.
    pub fn with_config(tag: &str, config: &str) -> Lab {
        Lab::with_config_hosts(tag, config, 0)
    }

    /// A lab with `config` as vnode's config file and `hosts` hypervisor hosts (0: none, the
    /// lab is its own host).
    pub fn with_config_hosts(tag: &str, config: &str, hosts: u8) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut lab = Lab {
            _tag: TagClaim::new(tag),
            name: format!("{tag}-{}", std::process::id()),
            dir,
            config: config_path,
            up_time: Duration::ZERO,
            dump: Vec::new(),
            is_down: false,
        };
        // The guard exists before `up` runs, so a half-started lab is torn down too.
        let t0 = Instant::now();
        let hosts = hosts.to_string();
        lab.vnode_ok(["lab", "up", "--hosts", &hosts]);
        lab.up_time = t0.elapsed();
        lab
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lab's DNS domain for pools without one.
    pub fn domain(&self) -> String {
        format!("{}.test", self.name)
    }

    pub fn dir(&self) -> PathBuf {
        Path::new(LAB_ROOT).join(&self.name)
    }

    /// How long `lab up` took.
    pub fn up_time(&self) -> Duration {
        self.up_time
    }

    /// The lab's state.json.
    pub fn state(&self) -> Value {
        json::parse(&std::fs::read_to_string(self.dir().join("state.json")).unwrap())
    }

    /// The lab's hosts, from its state.json (empty for a lab without hosts).
    pub fn hosts(&self) -> Vec<LabHost> {
        let state = self.state();
        state["hosts"]
            .as_array()
            .map(|hosts| {
                hosts
                    .iter()
                    .map(|h| LabHost {
                        name: h["name"].as_str().unwrap().into(),
                        address: h["address"].as_str().unwrap().into(),
                        uri: h["uri"].as_str().unwrap().into(),
                        netns: h["netns"].as_str().unwrap().into(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Host `name` of the lab.
    pub fn host(&self, name: &str) -> LabHost {
        self.hosts()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("lab {} has no host {name}", self.name))
    }

    /// The directory of host `name` (its libvirt copies, sshd files).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.dir().join("hosts").join(name)
    }

    /// Prints `path` too when the test fails.
    pub fn dump_on_failure(&mut self, path: impl Into<PathBuf>) {
        self.dump.push(path.into());
    }

    /// Replaces vnode's config file of this lab with `config` (TOML).
    pub fn set_config(&self, config: &str) {
        std::fs::write(&self.config, config).unwrap();
    }

    /// The binary runner for this lab: `--lab=NAME`, the lab's config and a scratch HOME.
    pub fn cli(&self) -> Vnode {
        Vnode::at(self.dir.path())
            .config_file(&self.config)
            .lab(&self.name)
    }

    /// Runs vnode in the lab, whatever the outcome.
    pub fn vnode<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Output {
        self.cli().args(args).output()
    }

    /// Runs vnode in the lab, expects success, returns stdout.
    pub fn vnode_ok<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> String {
        self.cli().args(args).ok()
    }

    /// `vnode --json ARGS...` in the lab, expecting success.
    pub fn json<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Value {
        self.cli().args(["--json"]).args(args).json()
    }

    /// `vnode lab exec -- CMD...`.
    pub fn exec<S: AsRef<OsStr>>(&self, cmd: impl IntoIterator<Item = S>) -> Output {
        self.cli().args(["lab", "exec", "--"]).args(cmd).output()
    }

    /// Runs CMD in the lab, expects success, returns stdout.
    pub fn exec_ok<S: AsRef<OsStr>>(&self, cmd: impl IntoIterator<Item = S>) -> String {
        let cmd: Vec<_> = cmd.into_iter().map(|a| a.as_ref().to_owned()).collect();
        cli::ok(&format!("in lab {}: {cmd:?}", self.name), self.exec(&cmd))
    }

    /// `vnode lab exec --host HOST -- CMD...`: CMD inside that host's own namespaces.
    pub fn exec_host<S: AsRef<OsStr>>(
        &self,
        host: &str,
        cmd: impl IntoIterator<Item = S>,
    ) -> Output {
        self.cli()
            .args(["lab", "exec", "--host", host, "--"])
            .args(cmd)
            .output()
    }

    /// Runs CMD in host `host`, expects success, returns stdout.
    pub fn exec_host_ok<S: AsRef<OsStr>>(
        &self,
        host: &str,
        cmd: impl IntoIterator<Item = S>,
    ) -> String {
        let cmd: Vec<_> = cmd.into_iter().map(|a| a.as_ref().to_owned()).collect();
        cli::ok(
            &format!("in lab {} host {host}: {cmd:?}", self.name),
            self.exec_host(host, &cmd),
        )
    }

    /// `vnode images import IMAGE --name NAME --osinfo OSINFO` in the lab.
    pub fn import(&self, image: &Path, name: &str, osinfo: &str) {
        self.cli()
            .args(["images", "import"])
            .args([image])
            .args(["--name", name, "--osinfo", osinfo])
            .ok();
    }

    /// `vnode --json ARGS...` (a spawn): its report and exit code, checked by the caller.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Spawned {
        let out = self.cli().args(["--json"]).args(args).output();
        Spawned {
            report: json::stdout(&out),
            code: out.status.code(),
            stderr: cli::stderr(&out),
        }
    }

    /// `vnode ssh NODE -- CMD...` (the system ssh, vnode's pinned host keys), expecting success;
    /// returns the trimmed stdout.
    pub fn ssh(&self, node: &str, cmd: &[&str]) -> String {
        self.cli()
            .args(["ssh", node, "--"])
            .args(cmd)
            .ok()
            .trim()
            .to_string()
    }

    /// `lab down`, expecting success; returns how long it took.
    pub fn down(mut self) -> Duration {
        self.is_down = true;
        let t0 = Instant::now();
        self.vnode_ok(["lab", "down"]);
        t0.elapsed()
    }

    /// The lab's status and logs, for a failed test.
    fn print_diagnostics(&self) {
        eprintln!("---- lab {}: status", self.name);
        let st = self.vnode(["lab", "status"]);
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&st.stdout),
            String::from_utf8_lossy(&st.stderr)
        );
        let dir = self.dir();
        let mut logs = vec![
            dir.join("holder.log"),
            dir.join("libvirt/log/libvirtd.log"),
            dir.join("public/dnsmasq.log"),
        ];
        // Read without panicking: this runs while the test panics.
        let state = std::fs::read_to_string(dir.join("state.json")).unwrap_or_default();
        if let Ok(state) = serde_json::from_str::<Value>(&state) {
            for h in state["hosts"].as_array().into_iter().flatten() {
                let hdir = self.host_dir(h["name"].as_str().unwrap_or("?"));
                for log in ["holder.log", "libvirt/log/libvirtd.log", "sshd.log"] {
                    logs.push(hdir.join(log));
                }
            }
        }
        for path in logs.iter().chain(&self.dump) {
            if let Ok(text) = std::fs::read_to_string(path) {
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("---- {} (last 40 lines)", path.display());
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.is_down {
            return;
        }
        if std::thread::panicking() {
            self.print_diagnostics();
        }
        let out = self.vnode(["lab", "down"]);
        if !out.status.success() {
            eprintln!(
                "lab {}: `lab down` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A spawn's JSON report and exit code.
pub struct Spawned {
    pub report: Value,
    pub code: Option<i32>,
    pub stderr: String,
}

impl Spawned {
    /// Asserts the exit code, showing the report and stderr otherwise.
    pub fn expect_code(self, code: i32) -> Spawned {
        assert_eq!(self.code, Some(code), "{:#}\n{}", self.report, self.stderr);
        self
    }

    /// Asserts that every node is ready (exit 0).
    pub fn expect_ready(self) -> Spawned {
        self.expect_code(0)
    }

    /// The report's entry for `name`.
    pub fn node(&self, name: &str) -> &Value {
        self.report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing in {:#}", self.report))
    }
}

/// The tags of the labs of this test process that live now.
static TAGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A lab's tag, claimed while it lives: two labs of one test process that share a tag would have
/// one name (`TAG-PID`), and tests running side by side would take each other's lab down.
struct TagClaim(String);

impl TagClaim {
    fn new(tag: &str) -> TagClaim {
        let mut tags = TAGS.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !tags.iter().any(|t| t == tag),
            "two labs of this test process are tagged '{tag}' at once: give each test its own tag"
        );
        tags.push(tag.to_string());
        TagClaim(tag.to_string())
    }
}

impl Drop for TagClaim {
    fn drop(&mut self) {
        let mut tags = TAGS.lock().unwrap_or_else(|e| e.into_inner());
        tags.retain(|t| *t != self.0);
    }
}
