//! What a spawn reports about each node: its outcome, the stages it went through, its addresses.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use super::live_status::Stage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ready,
    Failed,
    /// A domain of that name existed and was left alone (no --force).
    Exists,
    Interrupted,
    /// `vnode warm`: the node's fresh state exists and matches; nothing was done.
    Warm,
}

/// What fresh states did for a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FreshHow {
    /// Restored from its state.
    Restored,
    /// Booted cold, its state saved.
    Saved,
    /// Booted cold, nothing saved.
    #[default]
    Cold,
    /// `vnode warm`: its state was there and matched; nothing was done.
    Warm,
}

impl std::fmt::Display for FreshHow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FreshHow::Restored => "restored",
            FreshHow::Saved => "saved",
            FreshHow::Cold => "cold",
            FreshHow::Warm => "warm",
        })
    }
}

/// What fresh states did for a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FreshReport {
    pub how: FreshHow,
    /// Why the node was not restored, when it had a state, or why nothing was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The watcher's line after a restore (`41 s later: RNG reseeded ..., clock set ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_guest: Option<String>,
    /// The first 16 bytes of `/dev/urandom` read by the first login after a restore (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urandom_at_login: Option<String>,
    /// The guest clock's distance from its RTC at that login, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_seconds: Option<i64>,
    /// Which network manager renewed DHCP after the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp_renewed_by: Option<String>,
    /// Seconds the save took (definition, snapshot, record), and the snapshot alone (the guest
    /// paused while its memory was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saving_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_seconds: Option<f64>,
    /// The state's bytes on disk after the save.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_bytes: Option<u64>,
    /// When a restored guest did not answer and the node was booted cold instead: the restored
    /// guest's last console lines (without control characters), read before its domain was removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restored_console_tail: Vec<String>,
}

/// Where cloud-init was when the node was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudInitState {
    /// Not waited for: its config and final stages may still run (`--wait ssh`, or `auto` with
    /// nothing for them to do).
    NotWaited,
    Done,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub image: String,
    /// The `[[hosts]]` entry it runs on; absent without `[[hosts]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// On a `[[hosts]]` host: bytes of the base image this node's staging uploaded (0 when the
    /// host had it or a sibling uploaded it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_uploaded_bytes: Option<u64>,
    pub outcome: Outcome,
    /// The last stage the node reached.
    pub stage: Stage,
    pub private_ip: Option<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    pub os: Option<String>,
    pub hostname: Option<String>,
    /// Seconds from the start of the command to ready (or to the failure).
    pub seconds: f64,
    /// Seconds to the ssh moment: logged in with the pinned host key, facts read.
    pub ssh_seconds: Option<f64>,
    /// How many virt-install runs defining the domain took (more than 1: transient define errors
    /// were retried); absent before the define.
    pub define_attempts: Option<u32>,
    /// Seconds to cloud-init's end, when it was waited for.
    pub cloud_init_seconds: Option<f64>,
    pub cloud_init: CloudInitState,
    /// Seconds from the start of the command to each stage the node entered.
    pub stages: Vec<(Stage, f64)>,
    pub error: Option<String>,
    /// After Ctrl-C: the node's domain (and its files) were kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub kept: bool,
    /// The last lines of the node's serial console, for failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
    /// Fresh states: restored, saved, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh: Option<FreshReport>,
}

impl NodeReport {
    pub fn new(name: &str, image: &str) -> NodeReport {
        NodeReport {
            name: name.into(),
            image: image.into(),
            host: None,
            base_uploaded_bytes: None,
            outcome: Outcome::Failed,
            stage: Stage::Pending,
            private_ip: None,
            public_ip: None,
            os: None,
            hostname: None,
            seconds: 0.0,
            ssh_seconds: None,
            define_attempts: None,
            cloud_init_seconds: None,
            cloud_init: CloudInitState::NotWaited,
            stages: Vec::new(),
            error: None,
            kept: false,
            console_tail: Vec::new(),
            fresh: None,
        }
    }
}

/// The last `n` non-empty lines of a console log, without terminal control characters.
pub fn console_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}
