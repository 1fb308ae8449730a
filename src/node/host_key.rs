//! The node's ssh host key: an ed25519 pair generated per node creation.
//!
//! The private half goes only into the seed (cloud-init's `ssh_keys`, which also stops the
//! guest from generating its own keys); the public half goes into the node's directory and
//! vnode's known_hosts, so `vnode ssh` and the readiness check can verify the node strictly.

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{LineEnding, PrivateKey};

/// Why a host key could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot encode the host public key: {0}")]
    Public(#[source] Box<russh::keys::ssh_key::Error>),
    #[error("cannot encode the host private key: {0}")]
    Private(#[source] Box<russh::keys::ssh_key::Error>),
}

/// A freshly generated host key. The private key is wiped from memory when dropped.
pub struct HostKey {
    /// OpenSSH private key file contents (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub private_openssh: Secret,
    /// `ssh-ed25519 AAAA...`, without a comment: the form known_hosts lines use.
    pub public: String,
}

impl HostKey {
    /// The key a node had before (its fresh state's): the same private and public halves.
    pub fn from_parts(private_openssh: &str, public: &str) -> HostKey {
        HostKey {
            private_openssh: Secret(private_openssh.to_string()),
            public: public.to_string(),
        }
    }

    /// A new key whose comment is `comment` (the node's name).
    pub fn generate(comment: &str) -> Result<HostKey, HostKeyError> {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        seed.fill(0);
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| HostKeyError::Public(e.into()))?;
        key.set_comment(comment);
        let private = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| HostKeyError::Private(e.into()))?;
        Ok(HostKey {
            private_openssh: Secret(String::clone(&private)),
            public,
        })
    }
}

/// A secret string: redacted in `Debug`, overwritten when dropped (best effort: copies made
/// while writing the seed are not tracked).
pub struct Secret(String);

impl Secret {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: zero bytes keep the String valid UTF-8; volatile writes are not optimized away.
        for b in unsafe { self.0.as_bytes_mut() } {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn ssh_keygen_derives_the_same_public_key() {
        let key = HostKey::generate("vnode03").unwrap();
        assert!(key.public.starts_with("ssh-ed25519 AAAA"));
        assert_eq!(
            key.public.split(' ').count(),
            2,
            "no comment: {}",
            key.public
        );
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("key");
        std::fs::write(&path, key.private_openssh.as_str()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("ssh-keygen is needed for this test (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        assert_eq!(derived.trim(), format!("{} vnode03", key.public));
        assert_ne!(HostKey::generate("x").unwrap().public, key.public);
    }
}
