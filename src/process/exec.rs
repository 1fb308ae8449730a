//! Running external programs (virsh, virt-install, qemu-img, ip, the lab's daemons): the one place
//! vnode starts a child process and waits for it, blocking with a deadline or async. Nothing goes
//! through a shell; stdin is closed unless the caller says otherwise.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::debug_log::{self, CommandLine, Outcome};

/// A command line as a user would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    CommandLine::of(cmd).to_string()
}

/// Tells the debug log how a command ended (`-v`): its line, duration and exit status.
pub fn log_end(cmd: &Command, started: Instant, status: &io::Result<ExitStatus>) {
    let outcome = match status {
        Ok(s) => Outcome::Exited(*s),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Outcome::TimedOut,
        Err(e) => Outcome::NotRun(e),
    };
    debug_log::command_finished(&CommandLine::of(cmd), started.elapsed(), outcome);
}

/// Runs `cmd` to its end, killing it at the deadline; its output whatever the exit status.
pub fn run_blocking(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let started = Instant::now();
    let output = run_blocking_unlogged(cmd, timeout);
    log_end(
        cmd,
        started,
        &output.as_ref().map(|o| o.status).map_err(clone_err),
    );
    output
}

fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn run_blocking_unlogged(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let read_out = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut s);
        }
        s
    });
    let read_err = thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let status = wait(&mut child, timeout);
    let (stdout, stderr) = (
        read_out.join().unwrap_or_default(),
        read_err.join().unwrap_or_default(),
    );
    Ok(Output {
        status: status?,
        stdout,
        stderr,
    })
}

/// Why [`stdout_blocking`] got no output; every message quotes the command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot run `{command}`: {source}")]
    CannotRun {
        command: String,
        #[source]
        source: io::Error,
    },
    /// Waiting failed, or the deadline passed.
    #[error("`{command}`: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
}

/// Runs `cmd` with a deadline; its stdout on success, else an error that quotes the command and
/// its stderr.
pub fn stdout_blocking(cmd: &mut Command, timeout: Duration) -> Result<String, CommandError> {
    match run_blocking(cmd, timeout) {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(CommandError::Failed {
            command: describe(cmd),
            status: o.status,
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Err(CommandError::CannotRun {
            command: describe(cmd),
            source,
        }),
        Err(source) => Err(CommandError::Wait {
            command: describe(cmd),
            source,
        }),
    }
}

/// Runs `cmd` to its end without blocking the runtime; the child is killed when the future is
/// dropped (a cancelled node, Ctrl-C), so no child outlives the task that started it.
pub async fn run(cmd: &mut tokio::process::Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = cmd.output().await;
    log_end(
        cmd.as_std(),
        started,
        &output.as_ref().map(|o| o.status).map_err(clone_err),
    );
    output
}

/// Starts `cmd` and calls `line` with each line it prints, until it exits; its exit status then.
/// For a command that streams (`virsh event --loop`). The child is killed when the future is
/// dropped; stderr is thrown away (the caller learns of a failure by the stream ending).
pub async fn follow_lines(
    cmd: &mut tokio::process::Command,
    mut line: impl FnMut(&str),
) -> io::Result<ExitStatus> {
    use tokio::io::AsyncBufReadExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let mut lines =
        tokio::io::BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    while let Some(l) = lines.next_line().await? {
        line(&l);
    }
    let status = child.wait().await;
    log_end(
        cmd.as_std(),
        started,
        &status.as_ref().map(|s| *s).map_err(clone_err),
    );
    status
}

/// Waits for our child; kills it at the deadline.
pub fn wait(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
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

/// A program's path on the PATH, if it is there.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followed_lines_arrive_as_printed() {
        let mut seen = Vec::new();
        let start = Instant::now();
        let status = follow_lines(
            tokio::process::Command::new("sh").args(["-c", "echo one; echo two; exit 4"]),
            |l| seen.push(l.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(status.code(), Some(4));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            follow_lines(
                &mut tokio::process::Command::new("/nonexistent/tool"),
                |_| {}
            )
            .await
            .is_err()
        );
    }

    #[test]
    fn blocking_runs_report_output_failures_and_deadlines() {
        assert_eq!(
            stdout_blocking(Command::new("echo").arg("hi"), Duration::from_secs(5)).unwrap(),
            "hi\n"
        );
        let e = stdout_blocking(
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exit status: 3") && e.contains("oops"), "{e}");
        let start = Instant::now();
        let e = stdout_blocking(Command::new("sleep").arg("10"), Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no answer"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let e = stdout_blocking(
            &mut Command::new("/nonexistent/tool"),
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cannot run"), "{e}");
    }
}
