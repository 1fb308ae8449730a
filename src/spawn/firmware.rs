//! A disk that does not boot, seen on the serial console within a second instead of at the end
//! of the lease wait. vnode's domains send the firmware's messages to the serial console
//! (`--boot useserial=on`), and SeaBIOS says plainly when the disk has no boot loader:
//! `Boot failed: not a bootable disk`, then `No bootable device.` and a retry every minute,
//! forever. Without this, such a node (a blank or truncated image, a raw file imported as
//! qcow2) waited for its DHCP lease until `--timeout`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What SeaBIOS prints when it cannot boot from a disk (its `boot.c`), in the order it prints
/// them.
const FAILURES: [&str; 3] = [
    "Boot failed: not a bootable disk",
    "Boot failed: could not read the boot disk",
    "No bootable device",
];

/// How often the console is read.
const POLL: Duration = Duration::from_millis(500);
/// The firmware's messages come first: only the start of the log is searched.
const HEAD: u64 = 64 * 1024;

/// The firmware's line that says the disk does not boot, from the start of a console log.
pub fn boot_failure(console: &str) -> Option<String> {
    console
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c.is_control()))
        .find(|l| FAILURES.iter().any(|f| l.contains(f)))
        .map(String::from)
}

/// Resolves with the firmware's line once the console log at `path` shows that the disk does not
/// boot; pending forever otherwise (race it against the stage that waits for the guest).
pub async fn until_boot_fails(path: PathBuf) -> String {
    let mut seen = 0;
    loop {
        if let Some((len, line)) = read_head(&path, seen) {
            if let Some(line) = line {
                return line;
            }
            seen = len;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The log's length and its firmware failure line, when it grew since `seen` bytes (and is still
/// within the part the firmware writes).
fn read_head(path: &Path, seen: u64) -> Option<(u64, Option<String>)> {
    // Past the firmware's part of the log there is nothing more to look for: no reads at all.
    if seen >= HEAD {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len == seen {
        return None;
    }
    let mut head = Vec::new();
    f.seek(SeekFrom::Start(0)).ok()?;
    f.take(HEAD).read_to_end(&mut head).ok()?;
    Some((len, boot_failure(&String::from_utf8_lossy(&head))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seabios_saying_the_disk_does_not_boot_is_found_and_a_good_boot_is_not() {
        let blank = "\u{1b}[2J\r\nSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n\r\n\r\niPXE (https://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+BEFD0AE0+BEF30AE0 CA00\r\n\r\nBooting from Hard Disk...\r\nBoot failed: not a bootable disk\r\n\r\nNo bootable device.  Retrying in 60 seconds.\r\n";
        assert_eq!(
            boot_failure(blank).as_deref(),
            Some("Boot failed: not a bootable disk")
        );
        let good = "SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\n\u{1b}[H\u{1b}[J  Booting `Debian GNU/Linux 12'\r\n[    0.000000] Linux version 6.1.0\r\n";
        assert_eq!(boot_failure(good), None);
        assert_eq!(
            boot_failure("No bootable device.  Retrying in 60 seconds.").as_deref(),
            Some("No bootable device.  Retrying in 60 seconds.")
        );
    }

    #[tokio::test]
    async fn the_watch_fires_once_the_line_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        let watch = tokio::spawn(until_boot_fails(path.clone()));
        tokio::time::sleep(Duration::from_millis(600)).await;
        std::fs::write(&path, "SeaBIOS\r\nBooting from Hard Disk...\r\n").unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!watch.is_finished(), "nothing failed yet");
        std::fs::write(
            &path,
            "SeaBIOS\r\nBooting from Hard Disk...\r\nBoot failed: not a bootable disk\r\n",
        )
        .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(3), watch)
            .await
            .expect("seen within a poll")
            .unwrap();
        assert_eq!(line, "Boot failed: not a bootable disk");
    }
}
