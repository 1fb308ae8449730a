//! The one way vnode talks to libvirt: `virsh` (LC_ALL=C, `-q`, one process per call, never a
//! shell), async for the pipeline and the verbs, blocking with a deadline for the lab and the host
//! check, and the parsers of what virsh prints.
//!
//! vnode drives libvirt through its command-line tools rather than the C library: no FFI in the
//! binary, the same tools an admin uses to look at what vnode did, and the lab works by running
//! them inside its namespaces (a base command that joins the lab's namespaces before exec).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde::Serialize;

use super::LibvirtError;
use crate::plan::mac::Mac;

/// A DHCP lease from libvirt's dnsmasq, as `virsh net-dhcp-leases` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// "YYYY-MM-DD HH:MM:SS" as virsh prints it; only compared for equality.
    pub expiry: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

/// A domain as `virsh list --all` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DomainEntry {
    pub name: String,
    /// "running", "shut off", ...
    pub state: String,
}

/// A domain's state and the reason libvirt gives for it (`virDomainState` and its reason enums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainState {
    pub state: u32,
    pub reason: u32,
}

impl DomainState {
    pub fn is_running(self) -> bool {
        self.state == 1
    }

    /// Has the guest stopped for good, or been stopped by a fault? Shut off, shutting down or
    /// crashed; paused by an I/O error, the watchdog, a guest crash or a failed operation. Not a
    /// pause on the way (libvirt starts every domain paused, "starting up", and resumes it), nor a
    /// running or blocked guest.
    pub fn is_down(self) -> bool {
        match self.state {
            4..=6 => true,
            3 => matches!(self.reason, 5 | 6 | 10 | 13 | 14),
            _ => false,
        }
    }
}

impl std::fmt::Display for DomainState {
    /// As `virsh domstate --reason` words it: `shut off (crashed)`, `paused (ioerror)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pick =
            |names: &[&'static str], n: u32| names.get(n as usize).copied().unwrap_or("unknown");
        let (state, reason) = match self.state {
            1 => (
                "running",
                pick(
                    &[
                        "unknown",
                        "booted",
                        "migrated",
                        "restored",
                        "from snapshot",
                        "unpaused",
                        "migration canceled",
                        "save canceled",
                        "event wakeup",
                        "crashed",
                        "post-copy",
                    ],
                    self.reason,
                ),
            ),
            2 => ("blocked", pick(&["unknown"], self.reason)),
            3 => (
                "paused",
                pick(
                    &[
                        "unknown",
                        "user",
                        "migrating",
                        "saving",
                        "dumping",
                        "ioerror",
                        "watchdog",
                        "from snapshot",
                        "shutting down",
                        "snapshot",
                        "crashed",
                        "starting up",
                        "post-copy",
                        "post-copy failed",
                        "api error",
                    ],
                    self.reason,
                ),
            ),
            4 => ("shutting down", pick(&["unknown", "user"], self.reason)),
            5 => (
                "shut off",
                pick(
                    &[
                        "unknown",
                        "shutdown",
                        "destroyed",
                        "crashed",
                        "migrated",
                        "saved",
                        "failed",
                        "from snapshot",
                        "daemon",
                    ],
                    self.reason,
                ),
            ),
            6 => ("crashed", pick(&["unknown", "panicked"], self.reason)),
            7 => ("pmsuspended", pick(&["unknown"], self.reason)),
            _ => ("no state", "unknown"),
        };
        write!(f, "{state} ({reason})")
    }
}

/// A network as `virsh net-list --all` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkEntry {
    pub name: String,
    pub active: bool,
}

/// How long a libvirt (local, or a remote host through ssh) may take to answer at all.
pub const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// What a failed virsh that printed nothing is reported as (libvirtd gone mid-call).
pub const NO_MESSAGE: &str = "virsh failed without a message, as when libvirtd goes away mid-call";

#[derive(Clone, Debug)]
pub struct Virsh {
    uri: String,
    /// `virsh`, from PATH; a stand-in in tests.
    program: PathBuf,
}

impl Virsh {
    pub fn new(uri: &str) -> Virsh {
        Virsh::with_program("virsh", uri)
    }

    /// A runner that starts `program` in virsh's place (a stand-in that plays libvirt in tests).
    pub fn with_program(program: impl Into<PathBuf>, uri: &str) -> Virsh {
        Virsh {
            uri: uri.to_string(),
            program: program.into(),
        }
    }

    /// The libvirt URI this runner talks to (messages name the host by it).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// `virsh -q -c URI ARGS` on top of `base` (a plain `virsh`, or one that joins a lab); an
    /// ssh URI shares one connection per host (see [`super::ssh_mux`]).
    pub fn command_from(&self, mut base: Command, args: &[&str]) -> Command {
        base.env("LC_ALL", "C")
            .arg("-q")
            .arg("-c")
            .arg(super::ssh_mux::transport_uri(&self.uri))
            .args(args);
        base
    }

    /// Runs `virsh ARGS`; stdout on success, the error with virsh's own words otherwise. The
    /// child is killed if the caller stops waiting.
    pub async fn run(&self, args: &[&str]) -> Result<String, LibvirtError> {
        let mut cmd =
            tokio::process::Command::from(self.command_from(Command::new(&self.program), args));
        self.judge(args, crate::process::exec::run(&mut cmd).await)
    }

    /// Like [`Virsh::run`], blocking, with a deadline, on top of `base` (see [`Virsh::command_from`]).
    pub fn run_blocking(
        &self,
        base: Command,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, LibvirtError> {
        let mut cmd = self.command_from(base, args);
        self.judge(args, crate::process::exec::run_blocking(&mut cmd, timeout))
    }

    fn judge(&self, args: &[&str], out: std::io::Result<Output>) -> Result<String, LibvirtError> {
        let out = out.map_err(|e| LibvirtError::Tool {
            tool: "virsh".into(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("cannot run it: {e}; install libvirt-clients")
            } else {
                e.to_string()
            },
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let said = String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("error: ")
                .replace('\n', " ");
            Err(LibvirtError::Virsh {
                args: args.join(" "),
                // Seen when libvirtd went away in the middle of the call: a connection error.
                message: if said.is_empty() {
                    format!("{NO_MESSAGE} ({})", out.status)
                } else {
                    said
                },
            })
        }
    }

    fn unreachable(&self, e: LibvirtError) -> LibvirtError {
        LibvirtError::Unreachable {
            uri: self.uri.clone(),
            message: e.to_string(),
        }
    }

    /// [`Virsh::run`] that gives up after `timeout` (a remote host whose ssh never answers).
    pub async fn run_within(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, LibvirtError> {
        match tokio::time::timeout(timeout, self.run(args)).await {
            Ok(r) => r,
            Err(_) => Err(self.unreachable(LibvirtError::Tool {
                tool: "virsh".into(),
                message: format!("no answer within {} s", timeout.as_secs()),
            })),
        }
    }

    /// Checks that libvirt answers at the URI (within [`PING_TIMEOUT`]).
    pub async fn ping(&self) -> Result<(), LibvirtError> {
        self.run_within(&["version"], PING_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                e @ LibvirtError::Unreachable { .. } => e,
                e => self.unreachable(e),
            })
    }

    /// Follows libvirt's domain lifecycle events (`virsh event --loop --event lifecycle`):
    /// `seen` is called with each event's line, from the moment the connection is made until it
    /// breaks (libvirtd restarting) or the future is dropped. Ok when virsh ended by itself.
    pub async fn follow_lifecycle(&self, seen: impl FnMut(&str)) -> Result<(), LibvirtError> {
        let args = ["event", "--loop", "--event", "lifecycle"];
        let mut cmd =
            tokio::process::Command::from(self.command_from(Command::new(&self.program), &args));
        let status = crate::process::exec::follow_lines(&mut cmd, seen).await;
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(LibvirtError::Virsh {
                args: args.join(" "),
                message: format!("{NO_MESSAGE} ({s})"),
            }),
            Err(e) => Err(LibvirtError::Tool {
                tool: "virsh".into(),
                message: e.to_string(),
            }),
        }
    }

    /// The domain's state ("running", "shut off", ...), or None when no such domain exists.
    pub async fn domain_state(&self, name: &str) -> Result<Option<String>, LibvirtError> {
        no_domain_is_none(
            self.run(&["domstate", name])
                .await
                .map(|s| s.trim().to_string()),
        )
    }

    /// Every domain with its state and libvirt's reason for it, in one call.
    pub async fn domain_states(&self) -> Result<Vec<(String, DomainState)>, LibvirtError> {
        Ok(parse_domstats(&self.run(&["domstats", "--state"]).await?))
    }

    /// Stops a domain at once; a domain that is not running, or none at all, is fine.
    pub async fn destroy(&self, name: &str) -> Result<(), LibvirtError> {
        match self.run(&["destroy", name]).await {
            Err(LibvirtError::Virsh { message, .. }) if message.contains("not running") => Ok(()),
            other => no_domain_is_none(other).map(drop),
        }
    }

    /// Removes a domain's definition (not its disks); a missing domain is fine.
    pub async fn undefine(&self, name: &str) -> Result<(), LibvirtError> {
        no_domain_is_none(self.run(&["undefine", name]).await).map(drop)
    }

    /// Asks the guest to power off (ACPI).
    pub async fn shutdown(&self, name: &str) -> Result<(), LibvirtError> {
        self.run(&["shutdown", name]).await.map(drop)
    }

    /// Names of all domains, running or not.
    pub async fn domains(&self) -> Result<Vec<String>, LibvirtError> {
        Ok(parse_names(&self.run(&["list", "--all", "--name"]).await?))
    }

    /// Is the libvirt network defined and active? (None: not defined.)
    pub async fn network_active(&self, net: &str) -> Result<Option<bool>, LibvirtError> {
        match self.run(&["net-info", net]).await {
            Ok(info) => Ok(Some(parse_net_info_active(&info))),
            Err(LibvirtError::Virsh { message, .. }) if is_no_network(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The current DHCP leases of a libvirt network.
    pub async fn leases(&self, net: &str) -> Result<Vec<Lease>, LibvirtError> {
        Ok(parse_leases(&self.run(&["net-dhcp-leases", net]).await?))
    }
}

/// A "no such domain" error means there is none: `Ok(None)`.
fn no_domain_is_none<T>(r: Result<T, LibvirtError>) -> Result<Option<T>, LibvirtError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(LibvirtError::Virsh { message, .. }) if is_no_domain(&message) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_no_domain(message: &str) -> bool {
    message.contains("failed to get domain")
        || message.contains("Domain not found")
        || message.contains("no domain with matching name")
}

fn is_no_network(message: &str) -> bool {
    message.contains("ot found") || message.contains("no network")
}

/// `--name` listings (`list --all --name`, `net-list --name`): one name a line.
pub fn parse_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// `virsh net-info NET`: is the `Active:` line `yes`?
pub fn parse_net_info_active(text: &str) -> bool {
    text.lines().any(|l| {
        let mut parts = l.splitn(2, ':');
        parts.next().map(str::trim) == Some("Active") && parts.next().map(str::trim) == Some("yes")
    })
}

/// `virsh -q list --all`: "ID NAME STATE", the state possibly two words ("shut off").
pub fn parse_domain_list(text: &str) -> Vec<DomainEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _id = f.next()?;
            Some(DomainEntry {
                name: f.next()?.into(),
                state: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// `virsh -q net-list --all`: "NAME STATE AUTOSTART PERSISTENT".
pub fn parse_network_list(text: &str) -> Vec<NetworkEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(NetworkEntry {
                name: f.next()?.into(),
                active: f.next()? == "active",
            })
        })
        .collect()
}

/// `virsh domstats --state`: blocks of `Domain: 'NAME'` then `  state.state=N`, `  state.reason=N`.
pub fn parse_domstats(text: &str) -> Vec<(String, DomainState)> {
    let mut out: Vec<(String, DomainState)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("Domain: ") {
            let name = name.trim_matches(|c| c == '\'' || c == '"');
            out.push((
                name.to_string(),
                DomainState {
                    state: 0,
                    reason: 0,
                },
            ));
        } else if let (Some((key, value)), Some(last)) = (line.split_once('='), out.last_mut()) {
            let Ok(n) = value.parse() else { continue };
            match key {
                "state.state" => last.1.state = n,
                "state.reason" => last.1.reason = n,
                _ => {}
            }
        }
    }
    out
}

/// Parses `virsh -q net-dhcp-leases` output:
/// ` 2026-11-25 05:12:33   52:54:00:10:00:03   ipv4   192.168.122.45/24   vnode03   ff:00:...`
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[3] != "ipv4" {
                return None;
            }
            Some(Lease {
                expiry: format!("{} {}", f[0], f[1]),
                mac: f[2].parse().ok()?,
                ip: f[4].split('/').next()?.parse().ok()?,
                hostname: f.get(5).filter(|h| **h != "-").map(|h| h.to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_without_a_message_counts_as_libvirt_not_answering() {
        use std::os::unix::process::ExitStatusExt;
        let v = Virsh::new("qemu:///system");
        let out = |stderr: &[u8]| Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: stderr.to_vec(),
        };
        let silent = v
            .judge(&["net-dhcp-leases", "default"], Ok(out(b"")))
            .unwrap_err();
        assert!(silent.is_connection(), "{silent}");
        assert!(silent.to_string().contains("without a message"), "{silent}");
        let refused = v
            .judge(
                &["domstate", "x"],
                Ok(out(b"error: failed to get domain 'x'\n")),
            )
            .unwrap_err();
        assert!(!refused.is_connection(), "{refused}");
    }

    #[test]
    fn parses_lease_lines() {
        let text = " 2026-11-25 05:12:33   52:54:00:10:00:03   ipv4       192.168.122.45/24   vnode03   ff:00:01\n \
                    2026-11-25 05:13:00   52:54:00:10:00:04   ipv4       192.168.122.46/24   -         -\n \
                    2026-11-25 05:13:00   52:54:00:10:00:05   ipv6       fd00::5/64          -         -\n";
        let leases = parse_leases(text);
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].ip, Ipv4Addr::new(192, 168, 122, 45));
        assert_eq!(leases[0].mac.to_string(), "52:54:00:10:00:03");
        assert_eq!(leases[0].hostname.as_deref(), Some("vnode03"));
        assert_eq!(leases[1].hostname, None);
        assert!(parse_leases("garbage\n\n").is_empty());
    }

    #[test]
    fn parses_listings_and_net_info() {
        let d = parse_domain_list(" 1    vnode03   running\n -    vnode04   shut off\n");
        assert_eq!(
            d[1],
            DomainEntry {
                name: "vnode04".into(),
                state: "shut off".into()
            }
        );
        let n = parse_network_list(" default   active   no   yes\n other inactive no yes\n");
        assert!(n[0].active && !n[1].active);
        assert_eq!(parse_names(" a\n\n b \n"), ["a", "b"]);
        assert!(parse_net_info_active(
            "Name:           default\nActive:         yes\n"
        ));
        assert!(!parse_net_info_active(
            "Name: default\nActive:         no\nPersistent: yes\n"
        ));
    }

    #[test]
    fn domstats_give_state_and_reason_in_virshs_words() {
        let text = "Domain: 'vnode03'\n  state.state=5\n  state.reason=3\n\nDomain: 'vnode04'\n  state.state=1\n  state.reason=1\n\nDomain: 'x'\n  state.state=3\n  state.reason=5\n";
        let d = parse_domstats(text);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].0, "vnode03");
        assert_eq!(d[0].1.to_string(), "shut off (crashed)");
        assert!(d[1].1.is_running() && !d[1].1.is_down());
        assert!(d[0].1.is_down());
        assert_eq!(d[2].1.to_string(), "paused (ioerror)");
        assert!(d[2].1.is_down());
        let starting = DomainState {
            state: 3,
            reason: 11,
        };
        assert_eq!(starting.to_string(), "paused (starting up)");
        assert!(!starting.is_down(), "libvirt starts every domain paused");
        assert_eq!(
            DomainState {
                state: 9,
                reason: 0
            }
            .to_string(),
            "no state (unknown)"
        );
        assert!(parse_domstats("garbage\nstate.state=1\n").is_empty());
    }

    #[test]
    fn a_missing_domain_is_none_other_errors_stay() {
        let missing = LibvirtError::Virsh {
            args: "domstate x".into(),
            message: "failed to get domain 'x'".into(),
        };
        assert!(matches!(no_domain_is_none::<()>(Err(missing)), Ok(None)));
        let other = LibvirtError::Virsh {
            args: "domstate x".into(),
            message: "Failed to connect socket".into(),
        };
        assert!(no_domain_is_none::<()>(Err(other)).is_err());
    }
}
