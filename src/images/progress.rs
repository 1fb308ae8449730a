//! How pulls and verifications report progress: one indicatif bar per image (bytes, rate, ETA)
//! on a terminal, plain status lines on stderr otherwise (logs, CI, pipes).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Plain status lines report a long transfer this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    mode: Mode,
}

enum Mode {
    Bars(MultiProgress),
    Lines,
    /// `--quiet`: no progress, warnings still on stderr.
    Quiet,
    Hidden,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise; only warnings with `--quiet`.
    pub fn auto() -> Progress {
        if crate::text::terminal::quiet() {
            Progress { mode: Mode::Quiet }
        } else if std::io::stderr().is_terminal() {
            Progress {
                mode: Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Progress::lines()
        }
    }

    /// Plain `NAME: what happens` lines on stderr, whatever stderr is.
    pub fn lines() -> Progress {
        Progress { mode: Mode::Lines }
    }

    /// Nothing at all, warnings included: for callers that report on their own (they can ask
    /// [`super::Cache::check_qemu_access`] themselves).
    pub fn hidden() -> Progress {
        Progress { mode: Mode::Hidden }
    }

    /// A message that is not about one image (a warning about the cache directory).
    pub fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(msg);
            }
            Mode::Lines | Mode::Quiet => eprintln!("{msg}"),
            Mode::Hidden => {}
        }
    }

    /// The progress of one image.
    pub fn bar(&self, name: &str) -> Bar {
        let (bar, lines) = match &self.mode {
            Mode::Bars(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                (Some(bar), false)
            }
            Mode::Lines => (None, true),
            Mode::Quiet | Mode::Hidden => (None, false),
        };
        Bar {
            name: name.into(),
            bar,
            lines,
            state: Arc::new(Mutex::new(LineState {
                started: Instant::now(),
                last_line: Instant::now(),
                done: 0,
                from: 0,
                total: None,
            })),
        }
    }
}

/// One image's progress; clones report to the same bar (a blocking task may hold one).
#[derive(Clone)]
pub struct Bar {
    name: Arc<str>,
    bar: Option<ProgressBar>,
    lines: bool,
    state: Arc<Mutex<LineState>>,
}

struct LineState {
    started: Instant,
    last_line: Instant,
    done: u64,
    /// Bytes that were there before this run (a resumed download).
    from: u64,
    total: Option<u64>,
}

impl Bar {
    /// What is happening before bytes flow ("fetching the checksum file").
    pub fn status(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
        self.line(msg);
    }

    /// Bytes start to flow: `done` of `total` are already there; `msg` says what this is.
    pub fn start(&self, total: Option<u64>, done: u64, msg: &str) {
        if let Some(bar) = &self.bar {
            match total {
                Some(total) => {
                    bar.set_style(bytes_style());
                    bar.set_length(total);
                }
                None => bar.set_style(stream_style()),
            }
            bar.set_position(done);
            bar.reset_eta();
            bar.set_message(msg.to_string());
        }
        let mut s = self.state.lock().expect("progress state");
        *s = LineState {
            started: Instant::now(),
            last_line: Instant::now(),
            done,
            from: done,
            total,
        };
        drop(s);
        let size = match total {
            Some(t) => format!(" ({})", HumanBytes(t)),
            None => String::new(),
        };
        self.line(&format!("{msg}{size}"));
    }

    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        let mut s = self.state.lock().expect("progress state");
        s.done += n;
        if !self.lines || s.last_line.elapsed() < LINE_EVERY {
            return;
        }
        s.last_line = Instant::now();
        let rate = rate(s.done - s.from, s.started.elapsed());
        let msg = match s.total {
            Some(t) if t > 0 => format!(
                "{}% ({} of {}, {rate})",
                s.done * 100 / t,
                HumanBytes(s.done),
                HumanBytes(t)
            ),
            _ => format!("{} ({rate})", HumanBytes(s.done)),
        };
        drop(s);
        self.line(&msg);
    }

    /// Bytes moved since `start`, and how long it took.
    pub fn transferred(&self) -> (u64, Duration) {
        let s = self.state.lock().expect("progress state");
        (s.done.saturating_sub(s.from), s.started.elapsed())
    }

    pub fn done(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(done_style());
            bar.finish_with_message(msg.to_string());
        }
        self.line(msg);
    }

    pub fn failed(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(done_style());
            bar.abandon_with_message(msg.to_string());
        }
        self.line(msg);
    }

    fn line(&self, msg: &str) {
        if self.lines {
            eprintln!("{}: {msg}", self.name);
        }
    }
}

/// "123.4 MiB/s".
pub fn rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-3);
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>16.bold} {spinner} {msg}").expect("valid template")
}

/// Bytes of unknown total (no Content-Length).
fn stream_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>16.bold} {spinner} {bytes:>11} {binary_bytes_per_sec:>12} {msg}",
    )
    .expect("valid template")
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>16.bold} [{bar:28}] {bytes:>11}/{total_bytes:<11} {binary_bytes_per_sec:>12} eta {eta:>4} {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>16.bold} {msg}").expect("valid template")
}
