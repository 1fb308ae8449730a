//! The lab's processes, identified by PID *and* start time, so that a recorded PID that the
//! kernel has since given to another process is never signalled. Signals go through a pidfd
//! opened after the identity check, which closes the remaining race.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One process: its PID and its start time (clock ticks after boot, /proc/PID/stat field 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub start_time: u64,
}

/// What `/proc/PID/stat` says about a process.
struct Stat {
    state: char,
    start_time: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the fields after the last ')'
    // start with field 3 (state).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

impl Proc {
    /// The process with this PID now, if there is one.
    pub fn of(pid: i32) -> Option<Proc> {
        let s = stat(pid)?;
        Some(Proc {
            pid,
            start_time: s.start_time,
        })
    }

    /// Still running (not exited, not a zombie, and not a new process under a reused PID).
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }

    /// The process's command name (`/proc/PID/comm`), if it is still this process.
    pub fn comm(&self) -> Option<String> {
        let comm = fs::read_to_string(format!("/proc/{}/comm", self.pid)).ok()?;
        self.is_alive().then(|| comm.trim_end().to_string())
    }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process has exited. A process that
    /// is already gone is fine.
    pub fn stop(&self, grace: Duration) -> io::Result<()> {
        let Some(fd) = self.pidfd()? else {
            return Ok(());
        };
        signal(&fd, libc::SIGTERM)?;
        if wait_exit(&fd, grace)? {
            return Ok(());
        }
        signal(&fd, libc::SIGKILL)?;
        if wait_exit(&fd, Duration::from_secs(10))? {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "pid {} did not exit even after SIGKILL",
            self.pid
        )))
    }

    /// A pidfd for this very process, or None when it has exited.
    fn pidfd(&self) -> io::Result<Option<OwnedFd>> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Checked after opening: the pidfd now pins this PID, so a match means it is our process.
        Ok(self.is_alive().then_some(fd))
    }
}

fn signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(fd, sig, NULL, 0) only reads its arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Waits until the process behind `fd` has exited (a pidfd polls readable then); false on timeout.
fn wait_exit(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            return Ok(false);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits until `check` holds, polling every 100 ms; false on timeout.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Every process whose network namespace is the one with inode `netns`.
pub fn in_netns(netns: u64) -> Vec<Proc> {
    let want = format!("net:[{netns}]");
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.as_os_str() == want.as_str())
        })
        .filter_map(Proc::of)
        .filter(Proc::is_alive)
        .collect()
}

/// The inode of the network namespace of `proc` (what `/proc/PID/ns/net` links to).
pub fn netns_inode(proc: &Proc) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{}/ns/net", proc.pid)).ok()?;
    let inode = link
        .to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    proc.is_alive().then_some(inode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_child_is_alive_until_stopped() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let p = Proc::of(child.id() as i32).unwrap();
        assert!(p.is_alive());
        assert_eq!(p.comm().as_deref(), Some("sleep"));
        let reused = Proc {
            start_time: p.start_time + 1,
            ..p
        };
        assert!(!reused.is_alive(), "another start time is another process");
        // Our own child turns into a zombie, which counts as exited.
        p.stop(Duration::from_secs(5)).unwrap();
        assert!(!p.is_alive());
        child.wait().unwrap();
        p.stop(Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn our_netns_holds_us() {
        let me = Proc::of(std::process::id() as i32).unwrap();
        let inode = netns_inode(&me).unwrap();
        assert!(in_netns(inode).contains(&me));
    }
}
