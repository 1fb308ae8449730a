//! Runs the real vnode binary with an isolated HOME and an optional config, in the style of just's
//! test builder: `Vnode::new().config("...").args([...]).ok()`.

use std::path::PathBuf;
use std::process::Command;

pub struct Vnode {
    dir: tempfile::TempDir,
    args: Vec<String>,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Default for Vnode {
    fn default() -> Self {
        Self::new()
    }
}

impl Vnode {
    pub fn new() -> Vnode {
        Vnode {
            dir: tempfile::tempdir().unwrap(),
            args: Vec::new(),
            config: None,
            env: Vec::new(),
        }
    }

    /// A scratch directory that lives as long as this builder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// Uses `text` as the config file (passed with --config).
    pub fn config(mut self, text: &str) -> Vnode {
        self.config = Some(self.write("config.toml", text).into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Vnode {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Vnode {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vnode"));
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        cmd.env("HOME", &home)
            .env_remove("VNODE_CONFIG")
            .env_remove("VNODE_LAB");
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(self) -> String {
        let out = self.command().output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "vnode {:?} failed ({}):\n{stderr}",
            self.args,
            out.status
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; returns (exit code, stderr).
    pub fn fails(self) -> (i32, String) {
        let out = self.command().output().unwrap();
        assert!(
            !out.status.success(),
            "vnode {:?} should have failed",
            self.args
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}
