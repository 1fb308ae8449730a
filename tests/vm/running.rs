//! A vnode command running in the background for the VM tests that interrupt it (faults, fresh
//! states): its stderr lines as they come, Ctrl-C, its end.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::json;
use common::lab::Lab;
use serde_json::Value;

/// A vnode spawn running in the background, its stderr lines collected as they come, each with
/// the instant it arrived.
pub struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn start(vnode: common::cli::Vnode) -> Running {
        let mut cmd = vnode.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("vnode starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits until a stderr line contains every one of `words`; the instant it came.
    pub fn wait_for(&self, words: &[&str], timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((at, _)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| words.iter().all(|w| l.contains(w)))
            {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {words:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        // SAFETY: kill only sends a signal, to our own child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) },
            0
        );
    }

    /// Waits for the end; exit code, the JSON report, stderr, and when it ended.
    pub fn finish(mut self) -> (i32, Value, String, Instant) {
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        let ended = Instant::now();
        self.reader.take().unwrap().join().unwrap();
        let stderr: Vec<String> = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        let report = if stdout.trim().is_empty() {
            Value::Null
        } else {
            json::parse(&stdout)
        };
        (
            status.code().unwrap_or(-1),
            report,
            stderr.join("\n"),
            ended,
        )
    }
}

/// Does the lab's libvirt have a domain `name`?
pub fn has_domain(lab: &Lab, name: &str) -> bool {
    lab.exec_ok(["virsh", "-c", "qemu:///system", "list", "--all", "--name"])
        .lines()
        .any(|l| l.trim() == name)
}
