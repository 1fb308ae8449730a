//! The debug log: what vnode asks of other programs, on stderr, through `tracing`.
//!
//! Off by default. `-v` (or `RUST_LOG=vnode=debug`) shows every external command with its
//! duration and exit status and every retry; `-vv` adds trace-level detail. Progress lines,
//! tables and JSON are unchanged by it: the log only ever writes to stderr.
//!
//! Secrets never reach it: callers pass a program and its arguments, never its stdin (where seed
//! contents and keys would travel), and vnode puts no secret on a command line.

use std::ffi::OsStr;
use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber. `verbosity` is the number of `-v`; with none, `RUST_LOG`
/// decides, and without that nothing is logged. Calling it twice keeps the first subscriber.
pub fn init(verbosity: u8) {
    let filter = match verbosity {
        0 => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
            _ => return,
        },
        1 => EnvFilter::new("vnode=debug"),
        _ => EnvFilter::new("vnode=trace"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::text::terminal::colours_on(&std::io::stderr()))
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
}

/// A command line as a user would type it: the program, then each argument, quoted when it
/// holds a character a shell would split or expand.
pub struct CommandLine<'a> {
    program: &'a OsStr,
    args: Vec<&'a OsStr>,
}

impl<'a> CommandLine<'a> {
    pub fn new(program: &'a OsStr, args: impl IntoIterator<Item = &'a OsStr>) -> CommandLine<'a> {
        CommandLine {
            program,
            args: args.into_iter().collect(),
        }
    }

    /// The program and arguments of a prepared `std::process::Command`.
    pub fn of(cmd: &'a std::process::Command) -> CommandLine<'a> {
        CommandLine::new(cmd.get_program(), cmd.get_args())
    }
}

impl fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", quoted(self.program))?;
        for a in &self.args {
            write!(f, " {}", quoted(a))?;
        }
        Ok(())
    }
}

fn quoted(word: &OsStr) -> String {
    crate::text::shell::quote(&word.to_string_lossy())
}

/// How an external command ended.
pub enum Outcome<'a> {
    Exited(ExitStatus),
    /// It could not be started (not installed, not executable) or waited for.
    NotRun(&'a std::io::Error),
    /// vnode stopped waiting for it after its deadline.
    TimedOut,
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(s) => match s.code() {
                Some(code) => write!(f, "exit {code}"),
                None => write!(f, "{s}"),
            },
            Outcome::NotRun(e) => write!(f, "not run: {e}"),
            Outcome::TimedOut => f.write_str("timed out"),
        }
    }
}

/// One external command has ended.
pub fn command_finished(line: &CommandLine<'_>, duration: Duration, outcome: Outcome<'_>) {
    let ms = duration.as_secs_f64() * 1000.0;
    let ok = matches!(&outcome, Outcome::Exited(s) if s.success());
    if ok {
        tracing::debug!("ran `{line}`: {outcome} in {ms:.1} ms");
    } else {
        tracing::debug!("ran `{line}`: {outcome} after {ms:.1} ms");
    }
}

/// Something failed and will be tried again (`attempt` of `of`, counting from 1).
pub fn retry(what: &str, attempt: u32, of: u32, reason: &dyn fmt::Display) {
    tracing::debug!("retry {what} (attempt {attempt} of {of}): {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args = [
            OsStr::new("-c"),
            OsStr::new("qemu:///system"),
            OsStr::new("it's here"),
            OsStr::new(""),
        ];
        let line = CommandLine::new(OsStr::new("virsh"), args);
        assert_eq!(
            line.to_string(),
            r"virsh -c qemu:///system 'it'\''s here' ''"
        );
    }

    #[test]
    fn outcomes_read_like_a_shell_reports_them() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            Outcome::Exited(ExitStatus::from_raw(0)).to_string(),
            "exit 0"
        );
        assert_eq!(
            Outcome::Exited(ExitStatus::from_raw(3 << 8)).to_string(),
            "exit 3"
        );
        assert!(
            Outcome::Exited(ExitStatus::from_raw(9))
                .to_string()
                .contains("signal: 9")
        );
        assert_eq!(Outcome::TimedOut.to_string(), "timed out");
    }
}
