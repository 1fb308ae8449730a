//! Who runs vnode, as ssh sees it: the login name for a URI without `user@`, and the home that
//! holds `~/.ssh`.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The current user's name from the password database, like ssh's default login name.
pub fn name() -> Option<String> {
    passwd_entry(|pwd| {
        // SAFETY: pw_name points into the entry's buffer and is NUL-terminated.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        name.to_str().ok().map(str::to_owned)
    })
}

/// The home directory in the password database, else `$HOME`. OpenSSH reads `~/.ssh` from the
/// password database and ignores `$HOME`, and libvirt's `qemu+ssh://` runs that ssh: vnode's own
/// connections to a host must trust the same known_hosts and offer the same keys.
pub fn home() -> Option<PathBuf> {
    passwd_entry(|pwd| {
        // SAFETY: pw_dir points into the entry's buffer and is NUL-terminated.
        let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
        Some(PathBuf::from(OsStr::from_bytes(dir.to_bytes())))
    })
    .filter(|h| !h.as_os_str().is_empty())
    .or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    })
}

/// Looks up the current uid and hands its entry to `read` while the entry's buffer lives.
fn passwd_entry<T>(read: impl FnOnce(&libc::passwd) -> Option<T>) -> Option<T> {
    // SAFETY: all-zero is a valid (empty) passwd struct, filled in by getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getuid cannot fail; the pointers are valid for the call and `buf` outlives `read`.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    read(&pwd)
}
