//! Runs the real vnode binary with an isolated HOME and an optional config, in the style of just's
//! test builder: `Vnode::new().config("...").args([...]).ok()`. Every integration test that runs
//! the binary goes through this builder (the lab's runs too, see lab.rs).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The scratch directory of a run: its own, or one a fixture keeps across runs.
enum Scratch {
    Own(tempfile::TempDir),
    At(PathBuf),
}

pub struct Vnode {
    dir: Scratch,
    args: Vec<OsString>,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
    lab: Option<String>,
    netns: Option<String>,
}

impl Default for Vnode {
    fn default() -> Self {
        Self::new()
    }
}

impl Vnode {
    /// A run in a fresh scratch directory, removed with the builder.
    pub fn new() -> Vnode {
        Vnode::with_scratch(Scratch::Own(tempfile::tempdir().unwrap()))
    }

    /// A run whose scratch directory (HOME is `dir/home`) is `dir`, for fixtures that run vnode
    /// several times against the same files.
    pub fn at(dir: &Path) -> Vnode {
        Vnode::with_scratch(Scratch::At(dir.to_path_buf()))
    }

    fn with_scratch(dir: Scratch) -> Vnode {
        Vnode {
            dir,
            args: Vec::new(),
            config: None,
            env: Vec::new(),
            lab: None,
            netns: None,
        }
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Scratch::Own(d) => d.path(),
            Scratch::At(p) => p,
        }
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Uses `text` as the config file (written to the scratch directory, passed with --config).
    pub fn config(self, text: &str) -> Vnode {
        let path = self.write("config.toml", text);
        self.config_file(path)
    }

    /// Passes `path` with --config.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Vnode {
        self.config = Some(path.into());
        self
    }

    /// Runs in the namespace lab `name` (`--lab=NAME`).
    pub fn lab(mut self, name: &str) -> Vnode {
        self.lab = Some(name.to_string());
        self
    }

    /// Runs inside the network namespace `name` (`ip netns exec NAME vnode ...`).
    pub fn netns(mut self, name: &str) -> Vnode {
        self.netns = Some(name.to_string());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Vnode {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Vnode {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn command(&self) -> Command {
        let bin = env!("CARGO_BIN_EXE_vnode");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let home = self.dir().join("home");
        std::fs::create_dir_all(&home).unwrap();
        cmd.env("HOME", &home)
            .env_remove("VNODE_CONFIG")
            .env_remove("VNODE_LAB");
        if let Some(lab) = &self.lab {
            cmd.arg(format!("--lab={lab}"));
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The run, for messages: `vnode --lab=NAME ["arg", ...]`.
    fn what(&self) -> String {
        let lab = self.lab.as_ref().map(|l| format!(" --lab={l}"));
        format!("vnode{} {:?}", lab.unwrap_or_default(), self.args)
    }

    /// Runs, whatever the outcome.
    pub fn output(&self) -> Output {
        self.command().output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(self) -> String {
        ok(&self.what(), self.output())
    }

    /// Runs and expects success; returns stdout as JSON (pass `--json` yourself).
    pub fn json(self) -> serde_json::Value {
        super::json::parse(&self.ok())
    }

    /// Runs and expects failure; returns (exit code, stderr).
    pub fn fails(self) -> (i32, String) {
        let out = self.output();
        assert!(
            !out.status.success(),
            "{} should have failed:\n{}",
            self.what(),
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

/// Asserts that `what` succeeded (printing both streams otherwise); returns its stdout.
pub fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
