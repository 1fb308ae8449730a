//! The ssh keys of a lab with hosts: each host's sshd host key, and the controller's client key
//! that the hosts authorize. The site's /root/.ssh is the lab's `controller-ssh/`: the key as
//! `id_ed25519` and the hosts' keys pinned in `known_hosts`, so inside the lab `ssh`, libvirt's
//! ssh transport and vnode find them where they look for the user's.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The controller key's file name in the site's /root/.ssh (`.pub` next to it).
pub const CONTROLLER_KEY: &str = "id_ed25519";

/// Where the site's /root/.ssh is mounted, and the mount point made when it is missing (an
/// empty directory, left in place).
pub const ROOT_SSH: &str = "/root/.ssh";

/// Why a key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("cannot replace {}: {source}", path.display())]
    Replace {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Keygen(#[from] crate::process::exec::CommandError),
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no ssh-ed25519 key", path.display())]
    NoKey { path: std::path::PathBuf },
}

/// Generates an ed25519 key pair without passphrase, `path` and `path.pub` (replacing them);
/// returns the public key as `ssh-ed25519 AAAA...` (type and key, no comment).
pub fn generate(path: &Path, comment: &str) -> Result<String, KeygenError> {
    for p in [path.to_path_buf(), path.with_extension("pub")] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeygenError::Replace { path: p, source }),
        }
    }
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    crate::process::exec::stdout_blocking(&mut cmd, Duration::from_secs(30))?;
    let public = pub_path(path);
    let text = match fs::read_to_string(&public) {
        Ok(text) => text,
        Err(source) => {
            return Err(KeygenError::Read {
                path: public,
                source,
            });
        }
    };
    public_key(&text).ok_or(KeygenError::NoKey { path: public })
}

/// `path.pub`, as ssh-keygen names it (appended, not an extension replaced).
pub fn pub_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    s.into()
}

/// The `ssh-ed25519 AAAA...` of a public key file's line.
fn public_key(text: &str) -> Option<String> {
    let mut f = text.split_whitespace();
    let (kind, key) = (f.next()?, f.next()?);
    (kind == "ssh-ed25519").then(|| format!("{kind} {key}"))
}

/// known_hosts pinning each host's key at its address.
pub fn known_hosts<'a>(hosts: impl IntoIterator<Item = (Ipv4Addr, &'a str)>) -> String {
    let mut out = String::new();
    for (address, key) in hosts {
        let _ = writeln!(out, "{address} {key}");
    }
    out
}

/// The mount point of the site's /root/.ssh: made (0700, root's) when missing, else left as it
/// is (the mount hides it inside the site only).
pub fn ensure_mount_point() -> std::io::Result<()> {
    let p = Path::new(ROOT_SSH);
    if p.is_dir() {
        return Ok(());
    }
    fs::create_dir(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_pins_each_address() {
        let text = known_hosts([
            ("198.18.0.253".parse().unwrap(), "ssh-ed25519 AAAA1"),
            ("198.18.0.252".parse().unwrap(), "ssh-ed25519 AAAA2"),
        ]);
        assert_eq!(
            text,
            "198.18.0.253 ssh-ed25519 AAAA1\n198.18.0.252 ssh-ed25519 AAAA2\n"
        );
    }

    #[test]
    fn a_generated_key_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("k");
        let key = generate(&path, "vnode-lab test").unwrap();
        assert!(key.starts_with("ssh-ed25519 AAAA"), "{key}");
        assert_eq!(key.split(' ').count(), 2);
        assert!(pub_path(&path).ends_with("k.pub"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Again: replaced, not refused.
        assert_ne!(generate(&path, "again").unwrap(), key);
    }
}
