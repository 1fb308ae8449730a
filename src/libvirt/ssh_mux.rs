//! One ssh connection per remote libvirt host, shared by every virsh and virt-install call.
//!
//! Over `qemu+ssh://` each libvirt client opens its own ssh connection: key exchange and login
//! cost about 0.5 s per call on the lab's hosts, and a spawn or an image push makes dozens of
//! calls per host, most of them in sequence. OpenSSH can carry many sessions over one
//! connection (`ControlMaster`); libvirt cannot be told to use it, but its URI names the ssh
//! program (`command=`). So vnode hands libvirt a small wrapper that runs the user's own `ssh`
//! with connection sharing on:
//!
//! - `ControlMaster=auto`: the first call connects and becomes the master; later calls use its
//!   socket, and when there is none (or two calls race to be first) ssh connects on its own as
//!   before, so sharing only ever saves time.
//! - `ControlPersist=5`: the master stays 5 s after its last session, then exits by itself
//!   (nothing of vnode's lingers longer); it keeps no terminal or pipe of vnode's.
//! - The sockets live in a directory only the user may enter (`/run/vnode-ssh-UID`, else
//!   `$TMPDIR/vnode-ssh-UID`), named by the network namespace and ssh's hash of host, port and
//!   user (`%C`): two labs on one machine use the same host addresses, each in its own namespace,
//!   and must not share a connection.
//!
//! Everything else — user, port, keys, known_hosts, the remote helper libvirt runs — stays as
//! libvirt and the user's ssh config say. A URI that names its own `command=` is left alone,
//! as is every URI that is not `*+ssh://`. `VNODE_SSH_MUX=0` turns sharing off.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How long the shared connection outlives its last session, in seconds.
pub const PERSIST_SECS: u32 = 5;

/// The URI libvirt is given for `uri`: with `command=` naming the sharing wrapper when `uri` is
/// an ssh transport without a command of its own (and the wrapper could be set up); else `uri`.
pub fn transport_uri(uri: &str) -> String {
    if !wants_mux(uri) {
        return uri.to_string();
    }
    match wrapper() {
        Some(path) => with_command(uri, path),
        None => uri.to_string(),
    }
}

/// An ssh transport (`qemu+ssh://...`) whose query names no `command`.
fn wants_mux(uri: &str) -> bool {
    if std::env::var_os("VNODE_SSH_MUX").is_some_and(|v| v == "0") {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    if !scheme.ends_with("+ssh") {
        return false;
    }
    let query = rest.split('#').next().unwrap_or("");
    let query = query.split_once('?').map_or("", |(_, q)| q);
    !query
        .split('&')
        .any(|kv| kv.split('=').next() == Some("command"))
}

/// `uri` with `command=PATH` added to its query (before any `#fragment`).
fn with_command(uri: &str, path: &Path) -> String {
    let (body, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    let sep = if body.contains('?') { '&' } else { '?' };
    let mut out = format!(
        "{body}{sep}command={}",
        percent_encode(&path.to_string_lossy())
    );
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Percent-encodes what a URI query value may not hold as it is.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The wrapper script, written once per process; `None` when no private directory could be made
/// (then libvirt runs plain ssh, as without vnode).
fn wrapper() -> Option<&'static Path> {
    static WRAPPER: OnceLock<Option<PathBuf>> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            let uid = crate::process::unix::euid();
            let candidates = [
                PathBuf::from(format!("/run/vnode-ssh-{uid}")),
                std::env::temp_dir().join(format!("vnode-ssh-{uid}")),
            ];
            candidates.iter().find_map(|dir| match install(dir, uid) {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::debug!("ssh connection sharing: not in {}: {e}", dir.display());
                    None
                }
            })
        })
        .as_deref()
}

/// The wrapper's text for sockets in `dir`.
pub fn script(dir: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # vnode: libvirt's ssh transport over one shared connection per host (see vnode's\n\
         # src/libvirt/ssh_mux.rs). Written by vnode; rewritten when it differs.\n\
         # The socket is per network namespace: labs on one machine reuse host addresses.\n\
         ns=$(readlink /proc/self/ns/net 2>/dev/null | tr -cd 0-9)\n\
         exec ssh -o ControlMaster=auto -o \"ControlPath={}/${{ns:-0}}-%C\" -o ControlPersist={PERSIST_SECS} \"$@\"\n",
        dir.display()
    )
}

/// Makes `dir` (0700, ours) and the wrapper in it; the wrapper's path.
fn install(dir: &Path, uid: u32) -> std::io::Result<PathBuf> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // Someone else's directory, or one others may write, could hold a socket that is not ours.
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(invalid(format!(
            "{} is not a directory of uid {uid} with mode 0700",
            dir.display()
        )));
    }
    let path = dir.join("ssh");
    let text = script(dir);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        let tmp = dir.join(format!(".ssh.{}", std::process::id()));
        std::fs::write(&tmp, &text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ssh_transports_without_a_command_are_shared() {
        assert!(wants_mux("qemu+ssh://root@h1/system"));
        assert!(wants_mux(
            "qemu+ssh://root@h1:2222/system?keyfile=/k&known_hosts=/kh"
        ));
        assert!(!wants_mux("qemu:///system"));
        assert!(!wants_mux("qemu+tcp://h1/system"));
        assert!(!wants_mux("qemu+libssh://root@h1/system"));
        assert!(!wants_mux("qemu+ssh://root@h1/system?command=/usr/bin/ssh"));
        assert!(!wants_mux("qemu+ssh://root@h1/system?keyfile=/k&command=x"));
        // A value that merely mentions "command" is not the parameter.
        assert!(wants_mux("qemu+ssh://root@h1/system?keyfile=/command"));
    }

    #[test]
    fn the_command_joins_the_query_before_a_fragment() {
        let w = Path::new("/run/vnode-ssh-0/ssh");
        assert_eq!(
            with_command("qemu+ssh://root@h1/system", w),
            "qemu+ssh://root@h1/system?command=/run/vnode-ssh-0/ssh"
        );
        assert_eq!(
            with_command("qemu+ssh://root@h1/system?keyfile=/k#x", w),
            "qemu+ssh://root@h1/system?keyfile=/k&command=/run/vnode-ssh-0/ssh#x"
        );
        assert_eq!(
            with_command("qemu+ssh://h/system", Path::new("/tmp/a b&c/ssh")),
            "qemu+ssh://h/system?command=/tmp/a%20b%26c/ssh"
        );
    }

    #[test]
    fn the_wrapper_is_private_and_rewritten_only_when_it_differs() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("mux");
        let uid = crate::process::unix::euid();
        let path = install(&dir, uid).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("ControlMaster=auto")
                && text.contains(&format!("{}/${{ns:-0}}-%C", dir.display())),
            "{text}"
        );
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        let before = std::fs::metadata(&path).unwrap().ino();
        install(&dir, uid).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), before);
        // A directory others may enter is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(install(&dir, uid).is_err());
    }
}
