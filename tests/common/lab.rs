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
}

impl Lab {
    /// A lab with vnode's default config.
    pub fn up(tag: &str) -> Lab {
        Lab::with_config(tag, "")
    }

    /// A lab with `config` (TOML) as vnode's config file.
    pub fn with_config(tag: &str, config: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut lab = Lab {
            name: format!("{tag}-{}", std::process::id()),
            dir,
            config: config_path,
            up_time: Duration::ZERO,
            dump: Vec::new(),
            is_down: false,
        };
        // The guard exists before `up` runs, so a half-started lab is torn down too.
        let t0 = Instant::now();
        lab.vnode_ok(["lab", "up"]);
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

    /// Prints `path` too when the test fails.
    pub fn dump_on_failure(&mut self, path: impl Into<PathBuf>) {
        self.dump.push(path.into());
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
        let logs = [
            dir.join("holder.log"),
            dir.join("libvirt/log/libvirtd.log"),
            dir.join("public/dnsmasq.log"),
        ];
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
