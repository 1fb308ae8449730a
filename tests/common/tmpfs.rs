//! A small tmpfs mounted on a temporary directory for one test, to make a file system that is
//! full on purpose (`state_dir` or `cache_dir` on it). Unmounted when dropped, also when the test
//! panics. It is mounted in the host's mount namespace (a test process cannot easily get one of
//! its own), on a directory nobody else uses, and holds nothing but the test's files.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// A tmpfs of `kib` KiB (mode 0755). The caller has passed `gate::require_root_or_skip`.
    pub fn mount(kib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "vnode-test",
            ])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount -t tmpfs on {}: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir, mounted: true }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Bytes still free for files.
    pub fn free(&self) -> u64 {
        let c = CString::new(self.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path and a zeroed statvfs for the kernel to fill.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_frsize
    }

    /// Writes `.filler` (real bytes: tmpfs gives sparse files no pages) until about `bytes` stay
    /// free.
    pub fn fill_leaving(&self, bytes: u64) {
        let free = self.free();
        assert!(
            free > bytes,
            "only {free} bytes free, wanted {bytes} to stay free"
        );
        let path = self.join(".filler");
        let mut data = std::fs::read(&path).unwrap_or_default();
        data.resize(data.len() + (free - bytes) as usize, 0xa5);
        std::fs::write(&path, data).unwrap();
    }

    fn unmount(&mut self) {
        if !self.mounted {
            return;
        }
        // Lazy: a process of a failed test may still hold a file open in it.
        let status = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("umount -l {} failed", self.dir.path().display());
        }
        self.mounted = false;
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.unmount();
    }
}
