//! A guest that dies on its way to the network, seen on its serial console within a second
//! instead of at the end of the lease wait. vnode's domains send the firmware's messages and the
//! guest's console to the serial log (`--boot useserial=on`, `console=ttyS0`), and every way a
//! boot dies before the network says so there, plainly, and then waits forever:
//! - SeaBIOS: `Boot failed: not a bootable disk`, `No bootable device.` (a disk without a boot
//!   loader: blank, truncated, a raw file imported as qcow2);
//! - GRUB: its `grub>` prompt (no grub.cfg), `grub rescue>` (its modules or filesystem not found),
//!   `you need to load the kernel first` (grub.cfg names a kernel that is not there, or searches
//!   for a filesystem UUID that is not there); its `error: …` lines before say why;
//! - the kernel: `Kernel panic - not syncing`, `VFS: Unable to mount root fs`;
//! - the initramfs: initramfs-tools' `Gave up waiting for root file system device`, `ALERT! …
//!   does not exist` and its `(initramfs)` shell; dracut's `Could not boot` and its
//!   initqueue timeout;
//! - systemd: emergency mode (`You are in emergency mode`, `Give root password for maintenance`).
//!
//! The log is guest output: lines are cleaned of escape sequences and control characters and cut
//! to a bounded length before anything shows them.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use crate::text::terminal;

/// How a boot died, as its console says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Death {
    /// The firmware found nothing to boot on the disk.
    NoBootLoader,
    /// GRUB stopped at a prompt or found no kernel to load.
    Grub,
    /// The kernel panicked (often: it cannot mount its root filesystem).
    KernelPanic,
    /// The kernel or the initramfs cannot find or mount the root filesystem.
    NoRootFs,
    /// systemd gave up booting and waits for a root login on the console.
    EmergencyMode,
}

impl Death {
    /// What it means for the image, for the node's error line.
    pub fn meaning(self) -> &'static str {
        match self {
            Death::NoBootLoader => "the firmware finds no boot loader on the disk",
            Death::Grub => {
                "GRUB cannot boot a kernel (a missing grub.cfg, kernel or initrd, or a root filesystem UUID that is not on the disk)"
            }
            Death::KernelPanic => "the guest's kernel panicked",
            Death::NoRootFs => {
                "the guest cannot find or mount its root filesystem (a root= UUID or fstab entry that is not on the disk, or a missing disk driver in its initramfs)"
            }
            Death::EmergencyMode => {
                "systemd stopped the boot in emergency mode (a failing fstab mount or unit)"
            }
        }
    }
}

/// A boot's death: how, the console line that says so, and (for GRUB) its last `error:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootDeath {
    pub death: Death,
    pub line: String,
    pub cause: Option<String>,
}

/// The console's words for each death (substrings of one line), most specific first.
const SIGNS: &[(Death, &str)] = &[
    (Death::NoBootLoader, "Boot failed: not a bootable disk"),
    (
        Death::NoBootLoader,
        "Boot failed: could not read the boot disk",
    ),
    (Death::NoBootLoader, "No bootable device"),
    (Death::Grub, "you need to load the kernel first"),
    (Death::KernelPanic, "Kernel panic - not syncing"),
    (Death::NoRootFs, "VFS: Unable to mount root fs"),
    (
        Death::NoRootFs,
        "Gave up waiting for root file system device",
    ),
    (Death::NoRootFs, "Gave up waiting for root device"),
    (Death::NoRootFs, "does not exist. Dropping to a shell"),
    (Death::NoRootFs, "dracut-initqueue: timeout"),
    (Death::NoRootFs, "Could not boot."),
    (Death::EmergencyMode, "You are in emergency mode"),
    (Death::EmergencyMode, "Give root password for maintenance"),
    (Death::EmergencyMode, "Press Enter for maintenance"),
];

/// Prompts that wait for input: at the start of a line, or at the end of the text so far (a
/// prompt has no newline after it, and the firmware's serial mirror of the screen may put it
/// after other text with only cursor moves between).
const PROMPTS: &[(Death, &str)] = &[
    (Death::Grub, "grub rescue>"),
    (Death::Grub, "grub>"),
    (Death::NoRootFs, "(initramfs)"),
];

/// How often the console is read.
const POLL: Duration = Duration::from_millis(500);
/// How much of a log is read at the most: a guest that floods its console is not followed further.
const MAX_READ: u64 = 16 * 1024 * 1024;
/// A line longer than this is cut (guest output, shown on a terminal and in JSON).
const MAX_LINE: usize = 200;

/// Guest output made fit to show: ANSI escape sequences removed, white space folded, cut at
/// [`MAX_LINE`] characters, and what is left made safe by the one escaping function
/// ([`terminal::escaped`]): other control and format characters are shown as escapes.
fn clean(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte; other escapes: ESC and one character.
            if chars.peek() == Some(&'[') {
                chars.next();
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        break;
                    }
                }
                // A cursor move between two pieces of text: keep them apart.
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            } else {
                chars.next();
            }
        } else if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let out = out.trim_end();
    match out.char_indices().nth(MAX_LINE) {
        Some((cut, _)) => format!("{}…", terminal::escaped(&out[..cut])),
        None => terminal::escaped(out).into_owned(),
    }
}

/// Whether `line` ends with `word`, with nothing or a space before it.
fn ends_with_word(line: &str, word: &str) -> bool {
    line.strip_suffix(word)
        .is_some_and(|before| before.is_empty() || before.ends_with(' '))
}

/// Reads a console log as it grows and says when it shows a boot's death.
#[derive(Debug, Default)]
pub struct ConsoleWatch {
    /// Bytes of the log read so far.
    read: u64,
    /// The line being written (no newline yet): prompts end there.
    partial: String,
    /// GRUB's last `error:` line, the cause of a GRUB prompt that follows.
    grub_error: Option<String>,
}

impl ConsoleWatch {
    /// Feeds the next piece of the log; the death it shows, if any.
    pub fn feed(&mut self, text: &str) -> Option<BootDeath> {
        self.partial.push_str(text);
        let mut lines: Vec<String> = self.partial.split(['\n', '\r']).map(clean).collect();
        // The last piece has no line end yet: kept for the next feed, but a prompt shows there.
        let last = lines.pop().unwrap_or_default();
        let keep_from = self.partial.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        self.partial.drain(..keep_from);
        if self.partial.len() > 4 * MAX_LINE {
            // A line without end: only its start can be a prompt.
            let mut cut = 4 * MAX_LINE;
            while !self.partial.is_char_boundary(cut) {
                cut -= 1;
            }
            self.partial.truncate(cut);
        }
        lines
            .iter()
            .map(|line| (line, true))
            .chain(std::iter::once((&last, false)))
            .find_map(|(line, complete)| self.judge(line, complete))
    }

    /// The death `line` shows; a `complete` line that is an `error:` is kept as the cause of what
    /// GRUB does next.
    fn judge(&mut self, line: &str, complete: bool) -> Option<BootDeath> {
        if line.is_empty() {
            return None;
        }
        let sign = SIGNS
            .iter()
            .find_map(|(d, s)| line.find(s).map(|at| (*d, at)))
            .map(|(d, at)| (d, self.own_part(line, at)));
        let prompt = || {
            PROMPTS
                .iter()
                .find(|(_, p)| line.starts_with(p) || ends_with_word(line, p))
                .map(|(d, p)| (*d, *p))
        };
        let Some((death, line)) = sign.or_else(prompt) else {
            if complete && line.starts_with("error: ") {
                self.grub_error = Some(line.to_string());
            }
            return None;
        };
        Some(BootDeath {
            death,
            line: line.to_string(),
            cause: (death == Death::Grub)
                .then(|| self.grub_error.clone())
                .flatten(),
        })
    }

    /// The part of `line` that a sign found at byte `at` belongs to: GRUB's serial mirror may put
    /// two of its messages on one line (a cursor move, not a line end, between them), so a sign
    /// inside an `error: ` message starts there, and an `error: ` message before it is the cause.
    fn own_part<'a>(&mut self, line: &'a str, at: usize) -> &'a str {
        let Some(start) = line[..at].rfind("error: ") else {
            return line;
        };
        let before = line[..start].trim_end();
        if let Some(earlier) = before.rfind("error: ") {
            // A whole `error:` line seen before says it better than this run-together piece.
            self.grub_error
                .get_or_insert_with(|| before[earlier..].to_string());
        }
        &line[start..]
    }

    /// Reads what the log at `path` gained since the last call (nothing once [`MAX_READ`] bytes
    /// were read) and judges it.
    fn poll(&mut self, path: &std::path::Path) -> Option<BootDeath> {
        if self.read >= MAX_READ {
            return None;
        }
        let mut f = std::fs::File::open(path).ok()?;
        let len = f.metadata().ok()?.len();
        if len <= self.read {
            return None;
        }
        f.seek(SeekFrom::Start(self.read)).ok()?;
        let mut bytes = Vec::new();
        f.take(MAX_READ - self.read).read_to_end(&mut bytes).ok()?;
        self.read += bytes.len() as u64;
        self.feed(&String::from_utf8_lossy(&bytes))
    }
}

/// Resolves once the console log at `path` shows that the boot died; pending forever otherwise
/// (race it against the stage that waits for the guest).
pub async fn until_boot_dies(path: PathBuf) -> BootDeath {
    let mut watch = ConsoleWatch::default();
    loop {
        if let Some(death) = watch.poll(&path) {
            return death;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_grub_messages_on_one_line_are_told_apart() {
        // Seen on a disk without its kernel: no line end between GRUB's two messages.
        let mut w = ConsoleWatch::default();
        let death = w
            .feed("error: file `/boot/vmlinuz-6.1.0-57-cloud-amd64' not founderror: you need to load the kernel first.\n")
            .expect("a death");
        assert_eq!(death.death, Death::Grub);
        assert_eq!(death.line, "error: you need to load the kernel first.");
        assert_eq!(
            death.cause.as_deref(),
            Some("error: file `/boot/vmlinuz-6.1.0-57-cloud-amd64' not found")
        );
    }
    use proptest::prelude::*;

    /// The first death a whole console log shows.
    fn boot_death(console: &str) -> Option<BootDeath> {
        ConsoleWatch::default().feed(console)
    }

    fn death(log: &str) -> Option<(Death, String, Option<String>)> {
        boot_death(log).map(|d| (d.death, d.line, d.cause))
    }

    #[test]
    fn seabios_saying_the_disk_does_not_boot_is_found_and_a_good_boot_is_not() {
        let blank = "\u{1b}[2J\r\nSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\r\n\r\niPXE (https://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+BEFD0AE0+BEF30AE0 CA00\r\n\r\nBooting from Hard Disk...\r\nBoot failed: not a bootable disk\r\n\r\nNo bootable device.  Retrying in 60 seconds.\r\n";
        assert_eq!(
            death(blank),
            Some((
                Death::NoBootLoader,
                "Boot failed: not a bootable disk".into(),
                None
            ))
        );
        let good = "SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\n\u{1b}[H\u{1b}[J  Booting `Debian GNU/Linux 12'\r\n[    0.000000] Linux version 6.1.0\r\nerror: no suitable video mode found.\r\n[  OK  ] Reached target Network.\r\nDebian GNU/Linux 12 vnode03 ttyS0\r\n\r\nvnode03 login: ";
        assert_eq!(death(good), None);
        assert_eq!(
            death("No bootable device.  Retrying in 60 seconds.").map(|d| d.1),
            Some("No bootable device. Retrying in 60 seconds.".into())
        );
    }

    #[test]
    fn grub_at_its_prompt_says_why_from_its_last_error() {
        // No grub.cfg: GRUB's normal mode has nothing to run and shows its prompt (no newline).
        let no_cfg = "Booting from Hard Disk...\r\n\u{1b}[0m\u{1b}[30m\u{1b}[47m\u{1b}[2J\u{1b}[01;01H                  GNU GRUB  version 2.06-13+deb12u1\r\n\r\n   Minimal BASH-like line editing is supported.\r\n\r\n\u{1b}[0mgrub> ";
        assert_eq!(death(no_cfg), Some((Death::Grub, "grub>".into(), None)));
        // A kernel that is not there.
        let no_kernel = "Booting from Hard Disk...\r\nerror: file `/boot/vmlinuz-6.1.0-57-cloud-amd64' not found.\r\nerror: you need to load the kernel first.\r\n\r\nPress any key to continue...";
        let (d, line, cause) = death(no_kernel).unwrap();
        assert_eq!(d, Death::Grub);
        assert_eq!(line, "error: you need to load the kernel first.");
        assert_eq!(
            cause.as_deref(),
            Some("error: file `/boot/vmlinuz-6.1.0-57-cloud-amd64' not found.")
        );
        assert_eq!(
            death("error: unknown filesystem.\r\nEntering rescue mode...\r\ngrub rescue> ")
                .map(|d| (d.1, d.2)),
            Some((
                "grub rescue>".into(),
                Some("error: unknown filesystem.".into())
            ))
        );
    }

    #[test]
    fn the_kernel_the_initramfs_and_systemd_giving_up_are_found() {
        let cases = [
            (
                "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n",
                Death::KernelPanic,
            ),
            (
                "Begin: Waiting for root file system ... done.\r\nGave up waiting for root file system device.  Common problems:\r\n",
                Death::NoRootFs,
            ),
            (
                "ALERT!  UUID=0000 does not exist.  Dropping to a shell!\r\n",
                Death::NoRootFs,
            ),
            ("BusyBox v1.35.0\r\n(initramfs) ", Death::NoRootFs),
            (
                "[  183.2] dracut-initqueue[312]: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:\r\n",
                Death::NoRootFs,
            ),
            (
                "You are in emergency mode. After logging in, type \"journalctl -xb\"\r\n",
                Death::EmergencyMode,
            ),
        ];
        for (log, expected) in cases {
            assert_eq!(boot_death(log).map(|d| d.death), Some(expected), "{log}");
        }
    }

    #[test]
    fn lines_split_across_reads_and_prompts_without_a_newline_are_seen() {
        let mut w = ConsoleWatch::default();
        assert_eq!(
            w.feed("Booting from Hard Disk...\r\nerror: file `/boot/vm"),
            None
        );
        assert_eq!(w.feed("linuz' not found.\r\nerror: you need to load"), None);
        let d = w.feed(" the kernel first.\r\n").unwrap();
        assert_eq!(d.line, "error: you need to load the kernel first.");
        assert_eq!(
            d.cause.as_deref(),
            Some("error: file `/boot/vmlinuz' not found.")
        );
        // The firmware's serial mirror of the screen: cursor moves, no newline before the prompt.
        assert_eq!(
            boot_death("\u{1b}[1;1H   GNU GRUB  version 2.06\u{1b}[3;1H Minimal BASH-like line editing is supported.\u{1b}[6;1Hgrub> ")
                .map(|d| (d.death, d.line)),
            Some((Death::Grub, "grub>".into()))
        );
        assert_eq!(boot_death("the text grub>x\n"), None);
        let mut w = ConsoleWatch::default();
        assert_eq!(w.feed("GNU GRUB\r\n"), None);
        assert_eq!(w.feed("gr"), None);
        assert_eq!(w.feed("ub> ").map(|d| d.death), Some(Death::Grub));
    }

    #[test]
    fn guest_text_is_cleaned_before_it_is_shown() {
        let d = boot_death(
            "Kernel panic - not syncing: \u{1b}[31mred\u{1b}[0m \u{202e}evil\u{7}\u{9b}x\n",
        )
        .unwrap();
        assert_eq!(
            d.line,
            "Kernel panic - not syncing: red \\u{202e}evil\\u{7}\\u{9b}x"
        );
        let long = format!("Kernel panic - not syncing: {}\n", "a".repeat(1000));
        assert_eq!(
            boot_death(&long).unwrap().line.chars().count(),
            MAX_LINE + 1
        );
    }

    #[tokio::test]
    async fn the_watch_fires_once_the_line_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let watch = tokio::spawn(until_boot_dies(path.clone()));
        tokio::time::sleep(Duration::from_millis(600)).await;
        std::fs::write(&path, "SeaBIOS\r\nBooting from Hard Disk...\r\n").unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!watch.is_finished(), "nothing failed yet");
        std::fs::write(
            &path,
            "SeaBIOS\r\nBooting from Hard Disk...\r\nBoot failed: not a bootable disk\r\n",
        )
        .unwrap();
        let death = tokio::time::timeout(Duration::from_secs(3), watch)
            .await
            .expect("seen within a poll")
            .unwrap();
        assert_eq!(death.line, "Boot failed: not a bootable disk");
    }

    proptest! {
        /// Any bytes, cut into any pieces: no panic, every line shown is clean and bounded, and
        /// the pieces give the verdict the whole log gives once it ends with a line end.
        #[test]
        fn any_console_in_any_pieces(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(0usize..2000, 0..8),
            sign in proptest::sample::select(vec!["", "grub> ", "Kernel panic - not syncing", "\u{1b}[0mgrub rescue> ", "error: x\n"]),
        ) {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            text.push_str(sign);
            text.push('\n');
            let whole = boot_death(&text);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < text.len() && text.is_char_boundary(*c)).collect();
            cuts.sort();
            cuts.dedup();
            let mut w = ConsoleWatch::default();
            let mut first = None;
            let mut at = 0;
            for cut in cuts.into_iter().chain(std::iter::once(text.len())) {
                if let Some(d) = w.feed(&text[at..cut]) {
                    first.get_or_insert(d);
                }
                at = cut;
            }
            for d in whole.iter().chain(first.iter()) {
                // An escape is at most 10 characters (`\\u{10ffff}`).
                prop_assert!(d.line.chars().count() <= 10 * MAX_LINE + 1);
                prop_assert!(!d.line.chars().any(terminal::unsafe_to_show), "{:?}", d.line);
            }
            if let (Some(w), Some(p)) = (&whole, &first) {
                prop_assert_eq!(w.death, p.death);
            }
            prop_assert_eq!(whole.is_some(), first.is_some());
        }
    }
}
