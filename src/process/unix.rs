//! The one place vnode calls libc for the current process and users: its user ids, a user's entry
//! in the password database (the reentrant `getpwnam_r`/`getpwuid_r`, never the static-buffer
//! variants), a user's groups, and `flock` on a file. Everything here is a safe wrapper; callers
//! see owned values and typed errors, never a pointer.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// Room for one password-database entry's strings; entries are a few hundred bytes.
const PASSWD_BUFFER: usize = 16 << 10;
/// Room for a user's groups; a user in more keeps only its primary group (see [`groups_of`]).
const MAX_GROUPS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum UnixError {
    #[error("user name {0:?} contains a NUL byte")]
    NulInName(String),
    #[error("cannot read the password database entry of {user}: {source}")]
    Passwd {
        user: String,
        #[source]
        source: io::Error,
    },
}

/// A user's entry in the password database, copied out of libc's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwd {
    pub name: OsString,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    pub home: PathBuf,
}

/// Why a non-blocking lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TryLockError {
    /// Another open file description holds the lock.
    #[error("the lock is held by someone else")]
    Held,
    #[error(transparent)]
    Failed(#[from] io::Error),
}

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective user id of this process (0: it runs as root).
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The entry of the user called `name`; `None` when there is no such user.
pub fn user_by_name(name: &str) -> Result<Option<Passwd>, UnixError> {
    let cname = CString::new(name).map_err(|_| UnixError::NulInName(name.to_string()))?;
    read_entry(name, |pwd, buf, found| {
        // SAFETY: every pointer refers to live, correctly sized storage owned by the caller.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), found) }
    })
}

/// The entry of the user running vnode (its real uid); `None` when the uid has no entry.
pub fn current_user() -> Result<Option<Passwd>, UnixError> {
    let uid = uid();
    read_entry(&format!("uid {uid}"), |pwd, buf, found| {
        // SAFETY: every pointer refers to live, correctly sized storage owned by the caller.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), found) }
    })
}

/// Runs one `getpw*_r` call and copies the entry it found out of the buffer.
fn read_entry(
    who: &str,
    call: impl FnOnce(&mut libc::passwd, &mut [libc::c_char], &mut *mut libc::passwd) -> libc::c_int,
) -> Result<Option<Passwd>, UnixError> {
    // SAFETY: all-zero is a valid (empty) passwd struct, filled in by the call.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; PASSWD_BUFFER];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(&mut pwd, &mut buf, &mut found);
    if rc != 0 {
        return Err(UnixError::Passwd {
            user: who.to_string(),
            source: io::Error::from_raw_os_error(rc),
        });
    }
    // No such user; an entry without a name or home is of no use to anyone here.
    if found.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
        return Ok(None);
    }
    // SAFETY: on success both point into `buf`, which is still alive, and are NUL-terminated.
    let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
    Ok(Some(Passwd {
        name: OsStr::from_bytes(name.to_bytes()).to_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(OsStr::from_bytes(home.to_bytes())),
    }))
}

/// Every group `user` is in: its supplementary groups and its primary group. A user in more
/// than [`MAX_GROUPS`] groups gets its primary group only.
pub fn groups_of(user: &Passwd) -> Vec<u32> {
    let Ok(name) = CString::new(user.name.as_bytes()) else {
        return vec![user.gid];
    };
    let mut gids = vec![0 as libc::gid_t; MAX_GROUPS];
    let mut n = gids.len() as libc::c_int;
    // SAFETY: `gids` holds `n` entries; on overflow getgrouplist returns -1 and writes no more.
    let rc = unsafe { libc::getgrouplist(name.as_ptr(), user.gid, gids.as_mut_ptr(), &mut n) };
    gids.truncate(if rc < 0 { 0 } else { n as usize });
    if !gids.contains(&user.gid) {
        gids.push(user.gid);
    }
    gids
}

/// Waits for an exclusive `flock` on `file`. The lock belongs to the open file description:
/// it goes when the file is closed (or at [`unlock`]).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX)
}

/// Takes an exclusive `flock` on `file` if nobody holds it, without waiting.
pub fn try_lock_exclusive(file: &File) -> Result<(), TryLockError> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB).map_err(|e| match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => TryLockError::Held,
        _ => TryLockError::Failed(e),
    })
}

/// Releases the `flock` on `file` before it is closed.
pub fn unlock(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_UN)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `file`, which is open for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_user_is_found_by_uid_and_by_name() {
        let me = current_user()
            .unwrap()
            .expect("the test runs as a user with an entry");
        assert_eq!(me.uid, uid());
        let by_name = user_by_name(me.name.to_str().unwrap()).unwrap().unwrap();
        assert_eq!(by_name, me);
        assert!(groups_of(&me).contains(&me.gid));
    }

    #[test]
    fn unknown_users_and_bad_names() {
        assert_eq!(user_by_name("vnode-no-such-user-x").unwrap(), None);
        assert!(matches!(user_by_name("a\0b"), Err(UnixError::NulInName(_))));
    }

    #[test]
    fn a_second_description_cannot_take_a_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = File::create(&path).unwrap();
        let second = File::open(&path).unwrap();
        lock_exclusive(&first).unwrap();
        assert!(matches!(
            try_lock_exclusive(&second),
            Err(TryLockError::Held)
        ));
        unlock(&first).unwrap();
        try_lock_exclusive(&second).unwrap();
    }
}
