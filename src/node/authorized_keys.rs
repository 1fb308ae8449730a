//! The public keys authorized in a node: from the config (literal keys or paths to `.pub`
//! files), or by default the invoking user's `~/.ssh/id_*.pub`.
//!
//! "The invoking user" is the one behind `sudo` when vnode runs as root through it
//! (`$SUDO_USER`), since that is whose key will log in; otherwise `$HOME`'s owner.

use std::path::{Path, PathBuf};

use russh::keys::PublicKey;

use crate::process::unix;

/// Why keys could not be found.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(
        "no ssh public key to authorize for root: set ssh_keys in the config, or create one with \
         `ssh-keygen -t ed25519` (looked for {0}/id_*.pub)"
    )]
    NoDefault(String),
    #[error("ssh key '{entry}': {reason}")]
    Bad {
        entry: String,
        #[source]
        reason: KeyProblem,
    },
}

/// What is wrong with one `ssh_keys` entry (or a default key file).
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("not an OpenSSH public key ({0})")]
    NotAKey(#[source] Box<russh::keys::ssh_key::Error>),
    #[error("unknown user in ~user/")]
    UnknownUser,
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a key file that is not a key.
    #[error("{}: not an OpenSSH public key ({source})", path.display())]
    BadLine {
        path: PathBuf,
        #[source]
        source: Box<russh::keys::ssh_key::Error>,
    },
    #[error("{} holds no key", path.display())]
    NoKey { path: PathBuf },
}

/// Expands config entries into key lines (`type base64 [comment]`), each checked to parse.
/// An empty list means the invoking user's default keys.
pub fn resolve(entries: &[String]) -> Result<Vec<String>, KeysError> {
    if entries.is_empty() {
        let home = invoking_home();
        return default_keys(home.as_deref());
    }
    let mut keys = Vec::new();
    for entry in entries {
        keys.extend(resolve_entry(entry)?);
    }
    Ok(keys)
}

/// Keys of a config user (`[[users]] ssh_keys`): same forms, may be empty.
pub fn resolve_user(entries: &[String]) -> Result<Vec<String>, KeysError> {
    let mut keys = Vec::new();
    for entry in entries {
        keys.extend(resolve_entry(entry)?);
    }
    Ok(keys)
}

fn resolve_entry(entry: &str) -> Result<Vec<String>, KeysError> {
    let bad = |reason: KeyProblem| KeysError::Bad {
        entry: entry.to_string(),
        reason,
    };
    let trimmed = entry.trim();
    if looks_literal(trimmed) {
        check(trimmed).map_err(|e| bad(KeyProblem::NotAKey(e.into())))?;
        return Ok(vec![trimmed.to_string()]);
    }
    let path = expand_tilde(trimmed).ok_or_else(|| bad(KeyProblem::UnknownUser))?;
    let keys = read_key_file(&path).map_err(bad)?;
    if keys.is_empty() {
        return Err(bad(KeyProblem::NoKey { path }));
    }
    Ok(keys)
}

fn looks_literal(s: &str) -> bool {
    s.contains(char::is_whitespace) && ["ssh-", "ecdsa-", "sk-"].iter().any(|p| s.starts_with(p))
}

fn check(line: &str) -> Result<(), russh::keys::ssh_key::Error> {
    PublicKey::from_openssh(line).map(|_| ())
}

fn read_key_file(path: &Path) -> Result<Vec<String>, KeyProblem> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyProblem::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        check(line).map_err(|source| KeyProblem::BadLine {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
        keys.push(line.to_string());
    }
    Ok(keys)
}

fn default_keys(home: Option<&Path>) -> Result<Vec<String>, KeysError> {
    let Some(home) = home else {
        return Err(KeysError::NoDefault("~/.ssh (no home directory)".into()));
    };
    let dir = home.join(".ssh");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("id_") && n.ends_with(".pub"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut keys = Vec::new();
    for f in files {
        keys.extend(read_key_file(&f).map_err(|reason| KeysError::Bad {
            entry: f.display().to_string(),
            reason,
        })?);
    }
    if keys.is_empty() {
        return Err(KeysError::NoDefault(dir.display().to_string()));
    }
    Ok(keys)
}

/// `~/x` and `~user/x`; other paths unchanged. `None` for an unknown user.
fn expand_tilde(p: &str) -> Option<PathBuf> {
    let Some(rest) = p.strip_prefix('~') else {
        return Some(PathBuf::from(p));
    };
    let (user, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let home = if user.is_empty() {
        invoking_home()?
    } else {
        home_of(user)?
    };
    Some(home.join(tail))
}

fn invoking_home() -> Option<PathBuf> {
    let root = unix::uid() == 0;
    if root
        && let Some(user) = std::env::var("SUDO_USER").ok().filter(|u| u != "root")
        && let Some(home) = home_of(&user)
    {
        return Some(home);
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The home directory of `user` from the password database.
fn home_of(user: &str) -> Option<PathBuf> {
    unix::user_by_name(user).ok().flatten().map(|pwd| pwd.home)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(comment: &str) -> String {
        let k = super::super::host_key::HostKey::generate(comment).unwrap();
        format!("{} {comment}", k.public)
    }

    #[test]
    fn literal_keys_and_files_are_read_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (key("a@x"), key("b@x"), key("c@x"));
        let file = d.path().join("keys.pub");
        std::fs::write(&file, format!("# team\n{b}\n\n{c}\n")).unwrap();
        let got = resolve(&[a.clone(), file.display().to_string()]).unwrap();
        assert_eq!(got, [a, b, c]);
        let e = resolve(&["ssh-ed25519 AAAAnotbase64".into()]).unwrap_err();
        assert!(matches!(e, KeysError::Bad { .. }), "{e}");
        let e = resolve(&[d.path().join("missing.pub").display().to_string()]).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert!(resolve(&["~nosuchuser-vnode/x.pub".into()]).is_err());
    }

    #[test]
    fn default_keys_come_from_id_pub_files_or_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let e = default_keys(Some(d.path())).unwrap_err();
        assert!(e.to_string().contains("ssh-keygen -t ed25519"), "{e}");
        assert!(e.to_string().contains(".ssh"), "{e}");
        std::fs::create_dir(d.path().join(".ssh")).unwrap();
        let (a, b) = (key("a@x"), key("b@x"));
        std::fs::write(d.path().join(".ssh/id_ed25519.pub"), format!("{a}\n")).unwrap();
        std::fs::write(d.path().join(".ssh/id_rsa.pub"), format!("{b}\n")).unwrap();
        std::fs::write(d.path().join(".ssh/authorized_keys"), "junk\n").unwrap();
        assert_eq!(default_keys(Some(d.path())).unwrap(), [a, b]);
    }

    #[test]
    fn root_has_a_home() {
        assert_eq!(home_of("root").as_deref(), Some(Path::new("/root")));
        assert_eq!(home_of("nosuchuser-vnode"), None);
    }
}
