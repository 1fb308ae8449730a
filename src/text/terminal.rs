//! Terminal conventions shared by every command: colours only on a terminal and never with
//! `NO_COLOR` (https://no-color.org: set and not empty), and `--quiet`. clap's help and usage
//! errors follow the same rule by themselves (its colour choice is `auto`).
//!
//! Progress (bars, spinners, per-stage lines) always goes to stderr, so stdout carries only the
//! final table or JSON; `--quiet` drops the progress too. Warnings and errors stay on stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once from `--quiet`, before any command runs.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// `--quiet`: show no progress.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether output to `stream` may carry colour escapes.
pub fn colours_on(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && !no_color()
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
