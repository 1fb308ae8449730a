//! Writing a large download to disk cheaply.
//!
//! A pull must be on disk (fsync) before it counts. Through the page cache, 1 GiB costs a copy
//! into the cache, dirty-page accounting, then writeback. Most of that writeback waits until the
//! final fsync, because 1 GiB stays below the kernel's background threshold. On the development
//! VM, `dd` needs 2.3–3.5 s for 1 GiB with `conv=fsync` and 0.64 s with `oflag=direct`. So the
//! writer uses direct I/O (O_DIRECT). Chunks are gathered in a block-aligned buffer, which
//! O_DIRECT requires for memory, length and offset. The tail that is not a whole block is
//! written through the page cache.
//!
//! It falls back to ordinary writes when direct I/O is impossible: the file system refuses it,
//! or a resumed download starts at an unaligned offset. Ordinary writes ask the kernel to start
//! writeback every few MiB (`sync_file_range`), so the final fsync finds little left to do.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

/// Block alignment for direct I/O: 4096 covers 512-byte and 4K-sector devices.
const ALIGN: usize = 4096;
/// Bytes gathered before one direct write.
const DIRECT_BUF: usize = 4 << 20;
/// Bytes after which ordinary writes start writeback.
const WRITE_BEHIND: u64 = 32 << 20;

pub struct DiskWriter {
    file: File,
    /// File offset of the next byte not yet handed to the kernel.
    pos: u64,
    mode: Mode,
}

enum Mode {
    Direct {
        /// Over-allocated by ALIGN so that an aligned window of DIRECT_BUF bytes fits.
        storage: Vec<u8>,
        start: usize,
        fill: usize,
    },
    Buffered {
        /// Where writeback has been started up to.
        flushed: u64,
    },
}

impl DiskWriter {
    /// Writes `file` from its current position on.
    pub fn new(mut file: File) -> io::Result<DiskWriter> {
        let pos = file.stream_position()?;
        let mode = if pos % ALIGN as u64 == 0 && set_direct(&file, true).is_ok() {
            let storage = vec![0u8; DIRECT_BUF + ALIGN];
            let start = storage.as_ptr().align_offset(ALIGN);
            Mode::Direct {
                storage,
                start,
                fill: 0,
            }
        } else {
            Mode::Buffered { flushed: pos }
        };
        Ok(DiskWriter { file, pos, mode })
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.mode {
                Mode::Direct {
                    storage,
                    start,
                    fill,
                } => {
                    let n = data.len().min(DIRECT_BUF - *fill);
                    let at = *start + *fill;
                    storage[at..at + n].copy_from_slice(&data[..n]);
                    *fill += n;
                    data = &data[n..];
                    if *fill == DIRECT_BUF {
                        self.flush_direct(DIRECT_BUF)?;
                    }
                }
                Mode::Buffered { .. } => {
                    self.file.write_all(data)?;
                    self.pos += data.len() as u64;
                    self.write_behind();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Writes what is buffered and returns the file, positioned after the last byte, with
    /// O_DIRECT off again.
    pub fn finish(mut self) -> io::Result<File> {
        if let Mode::Direct { fill, .. } = self.mode {
            let whole = fill / ALIGN * ALIGN;
            if whole > 0 {
                self.flush_direct(whole)?;
            }
            // Whatever is left (less than a block) goes through the page cache.
            let tail = match &self.mode {
                Mode::Direct {
                    storage,
                    start,
                    fill,
                } => storage[*start..*start + *fill].to_vec(),
                Mode::Buffered { .. } => Vec::new(),
            };
            set_direct(&self.file, false)?;
            self.mode = Mode::Buffered { flushed: self.pos };
            self.write(&tail)?;
        }
        Ok(self.file)
    }

    /// Writes the first `len` (a multiple of ALIGN) buffered bytes with direct I/O, and keeps
    /// the rest at the start of the buffer. If the file system refuses direct I/O after all,
    /// writes them the ordinary way and stays with that.
    fn flush_direct(&mut self, len: usize) -> io::Result<()> {
        let Mode::Direct {
            storage,
            start,
            fill,
        } = &mut self.mode
        else {
            unreachable!("only called in direct mode");
        };
        let block = &storage[*start..*start + len];
        match self.file.write_all(block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(&self.file, false)?;
                self.file.seek(SeekFrom::Start(self.pos))?;
                self.file.write_all(block)?;
                let rest = storage[*start + len..*start + *fill].to_vec();
                self.pos += len as u64;
                self.mode = Mode::Buffered { flushed: self.pos };
                return self.write(&rest);
            }
            Err(e) => return Err(e),
        }
        storage.copy_within(*start + len..*start + *fill, *start);
        *fill -= len;
        self.pos += len as u64;
        Ok(())
    }

    /// Starts (does not wait for) writeback of what was written since the last call, once it
    /// is WRITE_BEHIND bytes. Only a hint: durability comes from the caller's fsync.
    fn write_behind(&mut self) {
        let Mode::Buffered { flushed } = &mut self.mode else {
            return;
        };
        let pending = self.pos - *flushed;
        if pending < WRITE_BEHIND {
            return;
        }
        // SAFETY: sync_file_range reads no memory of ours; the descriptor is open.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                *flushed as libc::off64_t,
                pending as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        *flushed = self.pos;
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    /// Writes `pieces` through a DiskWriter at `start` (after `start` bytes already there).
    fn write_through(dir: &std::path::Path, start: usize, pieces: &[usize]) -> (Vec<u8>, bool) {
        let path = dir.join(format!("f{start}"));
        let head = pattern(start, 1);
        std::fs::write(&path, &head).unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::End(0)).unwrap();
        let mut w = DiskWriter::new(file).unwrap();
        let direct = matches!(w.mode, Mode::Direct { .. });
        let mut expected = head;
        for (i, len) in pieces.iter().enumerate() {
            let piece = pattern(*len, i as u8 + 2);
            w.write(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        let mut file = w.finish().unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        (expected, direct)
    }

    #[test]
    fn every_byte_arrives_in_direct_and_ordinary_mode() {
        let dir = tempfile::tempdir().unwrap();
        // Across several direct buffers, with a tail that is not a whole block.
        let pieces = [100_000, DIRECT_BUF, 3 * DIRECT_BUF / 2 + 7, 1, 65536, 4095];
        write_through(dir.path(), 0, &pieces);
        // A resumed download at an unaligned offset: ordinary writes.
        let (_, direct) = write_through(dir.path(), 1234, &pieces);
        assert!(!direct);
        // Large enough for write-behind to start.
        write_through(dir.path(), 1, &[WRITE_BEHIND as usize + 10]);
        // Nothing at all, and less than a block.
        write_through(dir.path(), 0, &[]);
        write_through(dir.path(), 0, &[10]);
    }

    #[test]
    fn tmpfs_works_whether_or_not_it_takes_direct_io() {
        let dir = tempfile::tempdir_in("/dev/shm")
            .expect("a temp dir in /dev/shm, the tmpfs every Linux machine mounts there");
        write_through(dir.path(), 0, &[DIRECT_BUF + 5, 77]);
    }
}
