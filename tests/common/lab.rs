//! vnode's namespace lab for end-to-end tests: `Lab::up("boot")` starts a lab of its own (its
//! name is made unique per test process, so tests run in parallel), runs the real vnode binary
//! in it, and tears it down when dropped, also when the test panics (after printing the lab's
//! status and logs).
//!
//! ```ignore
//! let lab = Lab::up("plan");
//! let ip = lab.exec_ok(["dig", "+short", "@198.18.0.254", &format!("vnode03.{}", lab.domain())]);
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// Labs need root (namespaces, mounts). Tests call this first and return early without it.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: the lab needs root");
    }
    root
}

/// For tests that boot VMs: true if they should run. They need root; without it the test fails,
/// unless `VNODE_SKIP_VM_TESTS=1` says to skip them (printed, so a skip is never silent).
pub fn vm_tests_enabled() -> bool {
    if std::env::var_os("VNODE_SKIP_VM_TESTS").is_some_and(|v| v == "1") {
        eprintln!("skipped: VNODE_SKIP_VM_TESTS=1");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test boots VMs in a namespace lab and needs root; set VNODE_SKIP_VM_TESTS=1 to skip it"
    );
    true
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
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
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
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir().join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Prints `path` too when the test fails.
    pub fn dump_on_failure(&mut self, path: impl Into<PathBuf>) {
        self.dump.push(path.into());
    }

    /// vnode with `--lab=NAME`, the lab's config and a scratch HOME.
    pub fn command<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vnode"));
        cmd.env("HOME", self.dir.path().join("home"))
            .env_remove("VNODE_CONFIG")
            .env_remove("VNODE_LAB")
            .arg(format!("--lab={}", self.name))
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd
    }

    pub fn vnode<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs vnode in the lab, expects success, returns stdout.
    pub fn vnode_ok<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> String {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        ok(
            &format!("vnode --lab={} {args:?}", self.name),
            self.vnode(&args),
        )
    }

    /// `vnode lab exec -- CMD...`.
    pub fn exec<S: AsRef<OsStr>>(&self, cmd: impl IntoIterator<Item = S>) -> Output {
        let mut c = self.command(["lab", "exec", "--"]);
        c.args(cmd);
        c.output().unwrap()
    }

    /// Runs CMD in the lab, expects success, returns stdout.
    pub fn exec_ok<S: AsRef<OsStr>>(&self, cmd: impl IntoIterator<Item = S>) -> String {
        let cmd: Vec<_> = cmd.into_iter().map(|a| a.as_ref().to_owned()).collect();
        ok(&format!("in lab {}: {cmd:?}", self.name), self.exec(&cmd))
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

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
