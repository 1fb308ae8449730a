//! What runs in the guest for fresh states: the watcher started before a save ([`WATCHER`],
//! which reseeds the RNG and sets the clock on every restore before vnode logs in), its line on
//! the serial console, and the fixes of the first login after a restore (the first bytes of
//! `/dev/urandom` read before anything else, the clock checked, DHCP renewed on every NIC).

use std::time::{Duration, Instant};

use crate::ssh::{Session, SshError};

/// The watcher's script (Python 3, which every cloud image has for cloud-init).
pub const WATCHER: &str = include_str!("watcher.py");

/// Where the script goes in the guest, and its systemd unit.
const SCRIPT_PATH: &str = "/run/vnode-fresh-watch.py";
const UNIT: &str = "vnode-fresh-watch";

/// What the watcher writes on the kernel log after a restore.
pub const RESTORED_MARK: &str = "vnode-fresh: restored";

/// The command that starts the watcher (as a transient systemd unit, else detached), unless it
/// runs already; it prints `watcher=started`, `watcher=running` or `watcher=no-python3`.
pub fn start_command() -> String {
    format!(
        "command -v python3 >/dev/null || {{ echo watcher=no-python3; exit 0; }}; \
         if systemctl is-active -q {UNIT} 2>/dev/null; then echo watcher=running; exit 0; fi; \
         umask 077; printf '%s' {script} > {SCRIPT_PATH} || exit 1; \
         systemd-run --quiet --collect --unit={UNIT} python3 {SCRIPT_PATH} 2>/dev/null \
         || setsid -f python3 {SCRIPT_PATH} </dev/null >/dev/null 2>&1; echo watcher=started",
        script = crate::text::shell::quote(WATCHER),
    )
}

/// Why the watcher could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    #[error("cannot start the fresh-state watcher in the guest: {0}")]
    Ssh(#[source] SshError),
    #[error("the guest has no python3: the fresh-state watcher cannot run there")]
    NoPython,
    #[error("the fresh-state watcher did not start (the guest said '{0}')")]
    NotStarted(String),
}

/// Starts the watcher over `session`, then runs `then` in the same round trip (its output must
/// start with a `== ` section): whether the watcher runs, and the whole output for `then`'s
/// reader.
pub async fn start_watcher_then(
    session: &Session,
    then: &str,
) -> Result<(Result<(), WatcherError>, String), SshError> {
    // The watcher's command ends with `exit` when there is nothing to start: `then` runs in a
    // subshell of its own, after it.
    let out = session
        .exec(&format!("( {} ); {then}", start_command()))
        .await?;
    Ok((watcher_started(&out.stdout, &out.stderr), out.stdout))
}

/// What [`start_command`] said, in the lines before the first `== ` section.
fn watcher_started(stdout: &str, stderr: &str) -> Result<(), WatcherError> {
    let said = stdout
        .lines()
        .take_while(|l| !l.starts_with("== "))
        .find_map(|l| l.trim().strip_prefix("watcher="));
    match said {
        Some("started" | "running") => Ok(()),
        Some("no-python3") => Err(WatcherError::NoPython),
        other => Err(WatcherError::NotStarted(
            crate::text::terminal::escaped(&format!("{} {}", other.unwrap_or(""), stderr.trim()))
                .into_owned(),
        )),
    }
}

/// The watcher's line on the node's serial console after a restore, waited for up to `patience`
/// (`console`: the log's bytes, read again every `poll`); its text after the mark (escaped), or
/// `None`.
pub async fn restored_line<F, R>(
    mut console: F,
    patience: Duration,
    poll: Duration,
) -> Option<String>
where
    F: FnMut() -> R,
    R: Future<Output = Option<Vec<u8>>>,
{
    let until = Instant::now() + patience;
    loop {
        if let Some(bytes) = console().await
            && let Some(line) = find_restored(&String::from_utf8_lossy(&bytes))
        {
            return Some(line);
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(poll).await;
    }
}

/// The last watcher line in a console log: the text after the mark, escaped.
pub fn find_restored(console: &str) -> Option<String> {
    let at = console.rfind(RESTORED_MARK)?;
    let rest = &console[at + RESTORED_MARK.len()..];
    let line = rest.lines().next().unwrap_or("").trim();
    Some(crate::text::terminal::escaped(line).into_owned())
}

/// The first login's command after a restore: 16 bytes of `/dev/urandom` first (before anything
/// of vnode's changes the RNG), then the clock's distance from the RTC (set from it when over a
/// second), then DHCP renewed on every NIC by the guest's own network manager.
pub const FIXES_COMMAND: &str = "printf 'urandom='; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; \
    r=$(cat /sys/class/rtc/rtc0/since_epoch); d=$((r - $(date +%s))); \
    if [ \"$d\" -gt 1 ] || [ \"$d\" -lt -1 ]; then date -s \"@$r\" >/dev/null; echo clock=set; fi; \
    echo \"clock_offset=$d\"; \
    ifs=$(ls /sys/class/net | grep -vx lo); \
    set -- $(systemctl is-active systemd-networkd NetworkManager 2>/dev/null); \
    if [ \"$1\" = active ]; then networkctl renew $ifs && echo renew=networkd; \
    elif [ \"$2\" = active ]; then for i in $ifs; do nmcli device reapply \"$i\" >/dev/null; done; echo renew=networkmanager; \
    else echo renew=none; fi";

/// What the first login after a restore saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fixes {
    /// The first 16 bytes of `/dev/urandom`, in hex.
    pub urandom: Option<String>,
    /// The guest clock's distance from the RTC in seconds (RTC - clock).
    pub clock_offset: Option<i64>,
    /// Whether the clock had to be set.
    pub clock_set: bool,
    /// Which network manager renewed DHCP (`networkd`, `networkmanager`, `none`).
    pub renewed_by: Option<String>,
}

/// Reads [`FIXES_COMMAND`]'s output (any text: never panics), up to the first `== ` section of
/// whatever ran after it in the same command.
pub fn parse_fixes(output: &str) -> Fixes {
    let mut f = Fixes::default();
    for line in output.lines().take_while(|l| !l.starts_with("== ")) {
        if let Some(v) = line.strip_prefix("urandom=") {
            let v = v.trim();
            if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                f.urandom = Some(v.to_string());
            }
        } else if let Some(v) = line.strip_prefix("clock_offset=") {
            f.clock_offset = v.trim().parse().ok();
        } else if line.trim() == "clock=set" {
            f.clock_set = true;
        } else if let Some(v) = line.strip_prefix("renew=") {
            let v = v.trim();
            if ["networkd", "networkmanager", "none"].contains(&v) {
                f.renewed_by = Some(v.to_string());
            }
        }
    }
    f
}

/// Runs the fixes over `session`, then `then` in the same round trip (its output must start
/// with a `== ` section); the fixes, and the whole output for `then`'s reader.
pub async fn fix_after_restore(session: &Session, then: &str) -> Result<(Fixes, String), SshError> {
    let out = session
        .exec(&format!("{FIXES_COMMAND}; {then}"))
        .await?
        .stdout;
    Ok((parse_fixes(&out), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchers_line_is_found_and_escaped() {
        let log = "boot\r\n[   12.1] vnode-fresh: restored 41 s later: RNG reseeded from the host (virtio-rng), clock set from the RTC\r\nlogin:";
        assert_eq!(
            find_restored(log).unwrap(),
            "41 s later: RNG reseeded from the host (virtio-rng), clock set from the RTC"
        );
        assert_eq!(find_restored("nothing"), None);
        assert!(
            !find_restored("vnode-fresh: restored \u{1b}[2J")
                .unwrap()
                .contains('\u{1b}')
        );
    }

    #[test]
    fn the_fixes_output_is_read_and_junk_ignored() {
        let f = parse_fixes(
            "urandom=00112233445566778899aabbccddeeff\nclock_offset=0\nrenew=networkd\n",
        );
        assert_eq!(
            f.urandom.as_deref(),
            Some("00112233445566778899aabbccddeeff")
        );
        assert_eq!(f.clock_offset, Some(0));
        assert!(!f.clock_set);
        assert_eq!(f.renewed_by.as_deref(), Some("networkd"));
        assert_eq!(
            parse_fixes("urandom=zz\nclock_offset=x\nrenew=rm -rf"),
            Fixes::default()
        );
        // What ran after the fixes is not theirs to read.
        assert_eq!(
            parse_fixes("clock_offset=3\n== hostname\nrenew=networkd\n").renewed_by,
            None
        );
    }

    #[test]
    fn the_watchers_answer_is_read_before_the_next_section() {
        assert!(watcher_started("watcher=started\n== hostname\nx\n", "").is_ok());
        assert!(watcher_started("watcher=running\n", "").is_ok());
        assert!(matches!(
            watcher_started("watcher=no-python3\n== ip\n", ""),
            Err(WatcherError::NoPython)
        ));
        assert!(matches!(
            watcher_started("== hostname\nwatcher=started\n", "boom"),
            Err(WatcherError::NotStarted(s)) if s.contains("boom")
        ));
    }

    /// The guest's commands as its shell reads them (`sh -n`: parsed, not run).
    #[test]
    fn the_guest_commands_are_valid_sh() {
        let watcher = format!("( {} ); true", start_command());
        for command in [watcher.as_str(), FIXES_COMMAND] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", command])
                .output()
                .expect("sh runs");
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn the_watcher_is_valid_python() {
        if std::process::Command::new("python3")
            .arg("-V")
            .output()
            .is_err()
        {
            panic!("python3 is needed to check the watcher (Debian package python3)");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.py");
        std::fs::write(&path, WATCHER).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "py_compile"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
