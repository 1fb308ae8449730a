//! Joining a lab: its holder's network and mount namespaces. `--lab` moves the vnode process
//! itself ([`Namespaces::enter`]); the lab's daemons and tools are started in them
//! ([`Namespaces::command`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::process::Proc;

pub struct Namespaces {
    net: OwnedFd,
    mnt: OwnedFd,
    /// XDG_CACHE_HOME for everything run in the lab (virt-install logs there, not to ~/.cache).
    xdg_cache: std::path::PathBuf,
}

impl Namespaces {
    /// The namespaces of the lab's holder process; fails when it is no longer running.
    pub fn of(holder: &Proc, xdg_cache: &Path) -> io::Result<Namespaces> {
        let open =
            |ns: &str| File::open(format!("/proc/{}/ns/{ns}", holder.pid)).map(OwnedFd::from);
        let (net, mnt) = (open("net")?, open("mnt")?);
        // Checked after opening: the PID may have been reused before we opened its files.
        if !holder.is_alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the lab's holder process {} is gone", holder.pid),
            ));
        }
        Ok(Namespaces {
            net,
            mnt,
            xdg_cache: xdg_cache.into(),
        })
    }

    /// Moves this process into the lab. It must still be single-threaded: the kernel refuses
    /// setns into a mount namespace for a multi-threaded process.
    pub fn enter(&self) -> io::Result<()> {
        // Joining a mount namespace resets the working directory to its root; the same path
        // exists in the lab (only libvirt's directories differ), so come back to it.
        let cwd = std::env::current_dir().ok();
        setns(&self.net, libc::CLONE_NEWNET)?;
        setns(&self.mnt, libc::CLONE_NEWNS)?;
        if let Some(cwd) = cwd {
            let _ = std::env::set_current_dir(cwd);
        }
        // SAFETY: the caller guarantees that no other thread runs (see above), so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("XDG_CACHE_HOME", &self.xdg_cache) };
        Ok(())
    }

    /// A command that runs inside the lab (joined between fork and exec), with `/` as its
    /// working directory.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("XDG_CACHE_HOME", &self.xdg_cache).current_dir("/");
        let (net, mnt) = (self.net.as_raw_fd(), self.mnt.as_raw_fd());
        // SAFETY: the closure only makes async-signal-safe system calls (setns, chdir) on fds
        // that stay open in the parent until the child has exec'd.
        unsafe {
            cmd.pre_exec(move || {
                raw_setns(net, libc::CLONE_NEWNET)?;
                raw_setns(mnt, libc::CLONE_NEWNS)?;
                if libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}

fn setns(fd: &OwnedFd, kind: i32) -> io::Result<()> {
    raw_setns(fd.as_raw_fd(), kind)
}

fn raw_setns(fd: i32, kind: i32) -> io::Result<()> {
    // SAFETY: setns only reads its arguments.
    if unsafe { libc::setns(fd, kind) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
