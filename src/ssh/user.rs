//! Who runs vnode, as ssh sees it: the login name for a URI without `user@`, and the home that
//! holds `~/.ssh`.

use std::path::PathBuf;

use crate::process::unix;

/// The current user's name from the password database, like ssh's default login name.
pub fn name() -> Option<String> {
    entry()?.name.into_string().ok()
}

/// The home directory in the password database, else `$HOME`. OpenSSH reads `~/.ssh` from the
/// password database and ignores `$HOME`, and libvirt's `qemu+ssh://` runs that ssh: vnode's own
/// connections to a host must trust the same known_hosts and offer the same keys.
pub fn home() -> Option<PathBuf> {
    entry()
        .map(|pwd| pwd.home)
        .filter(|h| !h.as_os_str().is_empty())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
        })
}

/// The current uid's entry; a failed lookup counts as none (ssh then falls back the same way).
fn entry() -> Option<unix::Passwd> {
    unix::current_user().ok().flatten()
}
