//! vnode's own client key: authorized in every node, so that vnode logs in without an agent or a
//! passphrase.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{Algorithm, PrivateKey};

use super::SshError;

/// vnode's client key pair: authorized in every node (besides the user's keys) so that vnode can
/// check readiness without an agent or a passphrase.
pub struct ClientKey {
    pub private: Arc<PrivateKey>,
    pub private_path: PathBuf,
    pub public_openssh: String,
}

impl ClientKey {
    /// Loads the key at `path`, creating it (0600, and its directory) on first use.
    pub fn load_or_create(path: &Path) -> Result<ClientKey, SshError> {
        let path = path.to_path_buf();
        let err = |message: String| SshError::Key {
            path: path.clone(),
            message,
        };
        let key = if path.exists() {
            russh::keys::load_secret_key(&path, None)
                .map_err(|e| err(format!("cannot load it: {e}")))?
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                .map_err(|e| err(e.to_string()))?;
            let pem = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| err(e.to_string()))?;
            // Several processes (or threads) may create the key at once: the first to link its
            // file in wins, the others use that one.
            match write_private_new(&path, pem.as_bytes()) {
                Ok(()) => key,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    russh::keys::load_secret_key(&path, None)
                        .map_err(|e| err(format!("cannot load it: {e}")))?
                }
                Err(e) => return Err(err(format!("cannot write it: {e}"))),
            }
        };
        let public_openssh = key
            .public_key()
            .to_openssh()
            .map_err(|e| err(e.to_string()))?
            + " vnode";
        let _ = crate::files::write_atomic(
            &path.with_extension("pub"),
            format!("{public_openssh}\n"),
            0o644,
        );
        Ok(ClientKey {
            private: Arc::new(key),
            private_path: path,
            public_openssh,
        })
    }
}

/// Writes a new file readable by its owner only; fails with AlreadyExists if `path` exists.
/// The content is complete before the name appears (temp file + hard link).
fn write_private_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".client-key")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map(|_| ()).map_err(|e| e.error)
}
