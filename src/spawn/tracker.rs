//! One node's report and status line during a spawn: every stage it enters is stamped in the
//! report and shown on its line, and its end (ready, left alone, failed, interrupted) is written
//! into both.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::live_status::{NodeLine, Stage};
use super::report::{self, CloudInitState, NodeReport, Outcome};
use super::stages::StageError;
use crate::hosts::hypervisor::Hypervisor;
use crate::plan::planned_node::PlannedNode;

/// One node's report and status line, updated as it goes.
pub(super) struct Tracker {
    report: Mutex<NodeReport>,
    line: NodeLine,
    start: Instant,
    /// Held while the node's files are being written.
    pub(super) files: Arc<tokio::sync::Mutex<()>>,
    /// The host the node is created on.
    host: Hypervisor,
}

impl Tracker {
    /// A tracker for `node`, shown on `line`, its times counted from `start`.
    pub(super) fn new(
        node: &PlannedNode,
        line: NodeLine,
        start: Instant,
        host: Hypervisor,
    ) -> Tracker {
        Tracker {
            report: Mutex::new(NodeReport::new(&node.name(), &node.image.name)),
            line,
            start,
            files: Arc::default(),
            host,
        }
    }

    pub(super) fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub(super) fn update<T>(&self, f: impl FnOnce(&mut NodeReport) -> T) -> T {
        f(&mut self.report.lock().expect("not poisoned"))
    }

    pub(super) fn snapshot(&self) -> NodeReport {
        self.update(|r| r.clone())
    }

    /// Something worth saying about the node's current stage (libvirt not answering, say).
    pub(super) fn note(&self, message: &str) {
        let stage = self.update(|r| r.stage);
        self.line.stage(stage, message);
    }

    /// The node enters `stage` (with a detail: an address, a reason).
    pub(super) fn enter(&self, stage: Stage, detail: &str) {
        let at = self.elapsed();
        let name = self.update(|r| {
            r.stage = stage;
            r.stages.push((stage, at));
            r.name.clone()
        });
        tracing::debug!("{name}: stage {stage} at {at:.1} s {detail}");
        self.line.stage(stage, detail);
    }

    /// The node's end: ready, left alone, or failed at its stage with the reason and its console.
    pub(super) async fn finish(&self, result: Result<Outcome, StageError>) {
        let at = self.elapsed();
        let name = self.update(|r| r.name.clone());
        let console = match &result {
            Err(_) => Some(self.host.console_log(&name).await),
            Ok(_) => None,
        };
        let mut r = self.report.lock().expect("not poisoned");
        r.seconds = at;
        match result {
            Ok(Outcome::Ready) => {
                r.outcome = Outcome::Ready;
                r.stage = Stage::Ready;
                r.stages.push((Stage::Ready, at));
                let still = match r.cloud_init {
                    CloudInitState::Done => "",
                    _ => " (cloud-init still finishing)",
                };
                self.line.finish(&format!(
                    "ready {}{still}",
                    r.os.clone().unwrap_or_default()
                ));
            }
            Ok(outcome) => {
                r.outcome = outcome;
                self.line.finish(r.error.as_deref().unwrap_or("left alone"));
            }
            Err(e) => {
                r.outcome = Outcome::Failed;
                if let Some(console) = &console {
                    r.console_tail = report::console_tail(console, 15);
                }
                let hint = if r.console_tail.is_empty() && r.stage >= Stage::Booting {
                    "; the node printed nothing on its serial console: is its image bootable?"
                } else {
                    ""
                };
                self.line.finish(&format!("failed at {}: {e}", r.stage));
                r.error = Some(format!("failed at stage {}: {e}{hint}", r.stage));
            }
        }
    }

    /// After Ctrl-C: a node that was not ready is interrupted. A node whose domain was never
    /// defined loses its files (none may stay without a domain); a node with a domain keeps it
    /// and its files, and the report says so.
    pub(super) async fn interrupted(&self) {
        let host = &self.host;
        let (name, outcome) = self.update(|r| (r.name.clone(), r.outcome));
        if outcome == Outcome::Ready {
            return;
        }
        // Preparation runs on a blocking thread that an abort does not stop: wait for it.
        let _files = self.files.lock().await;
        let domain = host.virsh().domain_state(&name).await;
        let kept = match domain {
            Ok(None) => host.remove_files(&name).await.is_err(),
            _ => host.node_paths(&name).dir.exists() || domain.is_err(),
        };
        let at = self.elapsed();
        self.update(|r| {
            r.outcome = Outcome::Interrupted;
            r.seconds = at;
            r.kept = kept;
        });
    }
}
