//! Live per-node status while nodes come up: one spinner line per node on a terminal, or one plain
//! log line per stage change when stderr is not a terminal (CI logs, pipes).

use std::fmt;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::text::terminal;

/// Where a node is in its bring-up. Ordered: later stages compare greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Not started yet.
    Pending,
    /// Removing the existing domain (--force).
    Replacing,
    /// Writing overlay, seed and keys.
    Preparing,
    /// Putting the disks on a `[[hosts]]` host (the base image once per host, overlay, seed).
    Uploading,
    /// Files ready; waiting for one of the host's boot slots (`--parallel`).
    Queued,
    /// virt-install is defining and starting the domain.
    Defining,
    /// The node's fresh state is being restored (instead of defining and booting).
    Restoring,
    /// The domain runs; waiting for its private DHCP lease.
    Booting,
    /// Address known; waiting for sshd's banner.
    Lease,
    /// sshd answers; logging in with the pinned host key.
    Ssh,
    /// Logged in; waiting for cloud-init to finish.
    CloudInit,
    /// cloud-init done; reading the node's facts, waiting for its public address.
    Facts,
    /// Ready; its fresh state is being saved (the guest stops for a few seconds).
    Saving,
    Ready,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Pending => "pending",
            Stage::Replacing => "replacing",
            Stage::Preparing => "preparing",
            Stage::Uploading => "uploading",
            Stage::Queued => "queued",
            Stage::Defining => "defining",
            Stage::Restoring => "restoring",
            Stage::Booting => "booting",
            Stage::Lease => "lease",
            Stage::Ssh => "ssh",
            Stage::CloudInit => "cloud-init",
            Stage::Facts => "facts",
            Stage::Saving => "saving",
            Stage::Ready => "ready",
        })
    }
}

pub struct Progress {
    start: Instant,
    bars: Option<MultiProgress>,
    /// `--quiet`: no lines at all; the final table or JSON says it all.
    quiet: bool,
}

/// One node's status line.
pub struct NodeLine {
    name: String,
    start: Instant,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(start: Instant) -> Progress {
        let quiet = crate::text::terminal::quiet();
        let bars = (std::io::stderr().is_terminal() && !quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { start, bars, quiet }
    }

    pub fn node(&self, name: &str) -> NodeLine {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        NodeLine {
            name: name.to_string(),
            start: self.start,
            bar,
            quiet: self.quiet,
        }
    }
}

impl NodeLine {
    /// Reports a stage change with an optional detail (an address, a reason).
    pub fn stage(&self, stage: Stage, detail: &str) {
        let detail = terminal::escaped(detail);
        let secs = self.start.elapsed().as_secs_f64();
        let text = if detail.is_empty() {
            stage.to_string()
        } else {
            format!("{stage} {detail}")
        };
        match &self.bar {
            Some(bar) => bar.set_message(format!("{text}  ({secs:.1} s)")),
            None if self.quiet => {}
            None => eprintln!("[{secs:7.1}s] {:<10} {text}", self.name),
        }
    }

    /// The node's last line; `text` may hold a guest's words (its PRETTY_NAME, an error).
    pub fn finish(&self, text: &str) {
        let text = terminal::escaped(text);
        let secs = self.start.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => bar.finish_with_message(format!("{text}  ({secs:.1} s)")),
            None if self.quiet => {}
            None => eprintln!("[{secs:7.1}s] {:<10} {text}", self.name),
        }
    }
}
