//! Running the tools a lab is made of (ip, virsh, the daemons) with a deadline, so a wedged
//! daemon makes `up` or `down` fail with a message instead of hanging.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::debug_log::{self, CommandLine, Outcome};

/// A command line as a user would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to the end and returns its stdout; a failure (exit status, timeout, not found)
/// is an error that quotes the command and its stderr.
pub fn output(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = spawn(cmd, started)?;
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let read_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait(&mut child, timeout);
    log_end(cmd, started, &status);
    let (stdout, stderr) = (
        read_out.join().unwrap_or_default(),
        read_err.join().unwrap_or_default(),
    );
    match status {
        Ok(s) if s.success() => Ok(stdout),
        Ok(s) => Err(format!(
            "`{}` failed ({s}): {}",
            describe(cmd),
            stderr.trim()
        )),
        Err(e) => Err(format!("`{}`: {e}", describe(cmd))),
    }
}

/// Runs a command that starts a daemon and returns (`libvirtd -d`, dnsmasq): its output goes to
/// `log`, never to a pipe the daemon could keep open.
pub fn start_daemon(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let file = append(log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file);
    let started = Instant::now();
    let mut child = spawn(cmd, started)?;
    let status = wait(&mut child, timeout);
    log_end(cmd, started, &status);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{}` failed ({s}){}", describe(cmd), tail_of(log))),
        Err(e) => Err(format!("`{}`: {e}{}", describe(cmd), tail_of(log))),
    }
}

pub fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn spawn(cmd: &mut Command, started: Instant) -> Result<Child, String> {
    cmd.spawn().map_err(|e| {
        debug_log::command_finished(
            &CommandLine::of(cmd),
            started.elapsed(),
            Outcome::NotRun(&e),
        );
        format!("cannot run `{}`: {e}", describe(cmd))
    })
}

fn log_end(cmd: &Command, started: Instant, status: &io::Result<ExitStatus>) {
    let outcome = match status {
        Ok(s) => Outcome::Exited(*s),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Outcome::TimedOut,
        Err(e) => Outcome::NotRun(e),
    };
    debug_log::command_finished(&CommandLine::of(cmd), started.elapsed(), outcome);
}

/// Waits for our child; kills it at the deadline.
fn wait(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", timeout.as_secs()),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// "; <path> ends with: <last lines>" for error messages, or nothing when the file is empty.
pub fn tail_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let last = &lines[lines.len().saturating_sub(8)..];
    format!("; {} ends with:\n  {}", path.display(), last.join("\n  "))
}
