//! Where the bytes of a download or an import go: a file and a hasher, each on its own thread.
//!
//! Receiving, hashing and writing are jobs of similar weight when the mirror is fast. Done one
//! after another on one core they reach about half the throughput of `curl | openssl dgst`,
//! which runs two of them in parallel. Here the hash runs on one core while receiving and
//! writing share another. Chunks are reference-counted `Bytes`, so giving one to both threads
//! copies nothing. How the writer writes is [`super::disk_writer`]'s business.

use std::fs::File;
use std::io;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::digest::Hasher;
use super::disk_writer::DiskWriter;

/// Chunks in flight per thread. hyper yields chunks of up to a few hundred KiB, so this bounds
/// the memory a download holds to some MiB while absorbing short stalls of either thread.
const QUEUE: usize = 64;

pub struct Sink {
    hash_tx: mpsc::Sender<Bytes>,
    write_tx: mpsc::Sender<Bytes>,
    hasher: JoinHandle<Hasher>,
    writer: JoinHandle<io::Result<File>>,
}

impl Sink {
    /// Starts the threads: `hasher` goes on from its state, `file` is written from its position.
    pub fn start(hasher: Hasher, file: File) -> Sink {
        let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(QUEUE);
        let (write_tx, mut write_rx) = mpsc::channel::<Bytes>(QUEUE);
        let hasher = std::thread::Builder::new()
            .name("vnode-hash".into())
            .spawn(move || {
                let mut hasher = hasher;
                while let Some(chunk) = hash_rx.blocking_recv() {
                    hasher.update(&chunk);
                }
                hasher
            })
            .expect("spawn the hashing thread");
        let writer = std::thread::Builder::new()
            .name("vnode-write".into())
            .spawn(move || {
                let mut out = DiskWriter::new(file)?;
                while let Some(chunk) = write_rx.blocking_recv() {
                    // On an error the receiver is dropped, so the next push fails and the
                    // caller learns the error from finish().
                    out.write(&chunk)?;
                }
                out.finish()
            })
            .expect("spawn the writing thread");
        Sink {
            hash_tx,
            write_tx,
            hasher,
            writer,
        }
    }

    /// Queues a chunk for both threads. `false`: writing failed; `finish` says why.
    pub async fn push(&self, chunk: Bytes) -> bool {
        self.write_tx.send(chunk.clone()).await.is_ok() && self.hash_tx.send(chunk).await.is_ok()
    }

    /// [`Sink::push`] for callers outside the async runtime.
    pub fn push_blocking(&self, chunk: Bytes) -> bool {
        self.write_tx.blocking_send(chunk.clone()).is_ok()
            && self.hash_tx.blocking_send(chunk).is_ok()
    }

    /// Waits until everything queued is hashed and written; with `sync`, until it is on disk.
    /// Blocks (call it from `spawn_blocking` in async code).
    pub fn finish(self, sync: bool) -> (Hasher, io::Result<()>) {
        let Sink {
            hash_tx,
            write_tx,
            hasher,
            writer,
        } = self;
        drop((hash_tx, write_tx));
        let hasher = hasher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .and_then(|file| if sync { file.sync_all() } else { Ok(()) });
        (hasher, written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::catalog::DigestAlgo;
    use std::io::Seek;

    #[test]
    fn writes_and_hashes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let sink = Sink::start(
            Hasher::new(DigestAlgo::Sha256),
            File::create(&path).unwrap(),
        );
        let mut all = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..1000 + i).map(|b| (b * 7 + i) as u8).collect();
            all.extend_from_slice(&chunk);
            assert!(sink.push_blocking(Bytes::from(chunk)));
        }
        let (hasher, written) = sink.finish(true);
        written.unwrap();
        let mut direct = Hasher::new(DigestAlgo::Sha256);
        direct.update(&all);
        assert_eq!(hasher.finish(), direct.finish());
        assert_eq!(std::fs::read(&path).unwrap(), all);
    }

    #[test]
    fn goes_on_from_the_file_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"head").unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(io::SeekFrom::End(0)).unwrap();
        let sink = Sink::start(Hasher::new(DigestAlgo::Sha256), file);
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        let chunks = 9;
        for _ in 0..chunks {
            assert!(sink.push_blocking(chunk.clone()));
        }
        let (_, written) = sink.finish(true);
        written.unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 4 + chunks * (1 << 20));
        assert!(data.starts_with(b"head") && data[4..].iter().all(|b| *b == 7));
    }

    #[test]
    fn a_write_error_stops_the_sink_and_is_reported() {
        // /dev/full fails every write with ENOSPC.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full, which every Linux machine has");
        let sink = Sink::start(Hasher::new(DigestAlgo::Sha256), full);
        let mut accepted = 0;
        while sink.push_blocking(Bytes::from_static(&[0u8; 4096])) && accepted < 10_000 {
            accepted += 1;
        }
        assert!(accepted < 10_000, "the sink went on after a failed write");
        let (_, written) = sink.finish(false);
        assert_eq!(written.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    }
}
