//! Logging into a libvirt host with the user's own keys, as libvirt's ssh transport does: the
//! URI's `keyfile=`, the keys in ssh-agent, the default `~/.ssh/id_*` files. vnode asks for no
//! passphrase: an encrypted key file is skipped (put it in the agent).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey};

use super::{JumpError, JumpHost, user};

/// The default identity files, in ssh's order.
const DEFAULT_KEYS: &[&str] = &["id_ed25519", "id_ecdsa", "id_rsa"];

/// Tries the keys in turn until the host accepts one; the error lists what was tried and skipped.
pub async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    jump: &JumpHost,
) -> Result<(), JumpError> {
    let mut attempt = Attempt {
        handle,
        user: &jump.user,
        tried: Vec::new(),
        offered: Vec::new(),
        rsa_hash: None,
    };
    let home = user::home();
    let display = |p: &Path| tilde(p, home.as_deref());
    // A keyfile named in the URI is meant to be the key: it goes first. Otherwise the agent
    // first, as ssh does, then the default files the agent did not hold.
    let defaults: Vec<PathBuf> = match &home {
        Some(home) => DEFAULT_KEYS
            .iter()
            .map(|k| home.join(".ssh").join(k))
            .collect(),
        None => vec![],
    };
    let accepted = match &jump.identity {
        Some(keyfile) => {
            attempt
                .files(std::slice::from_ref(keyfile), true, &display)
                .await
                || attempt.agent().await
        }
        None => attempt.agent().await || attempt.files(&defaults, false, &display).await,
    };
    if accepted {
        return Ok(());
    }
    if attempt.tried.is_empty() {
        attempt.tried.push(format!(
            "no key at all: no readable {}, no ssh-agent (SSH_AUTH_SOCK)",
            defaults
                .iter()
                .map(|f| display(f))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(JumpError::AuthRejected {
        host: jump.to_string(),
        tried: attempt.tried.join("; "),
    })
}

struct Attempt<'a, H: Handler> {
    handle: &'a mut Handle<H>,
    user: &'a str,
    /// What was offered or skipped, for the error.
    tried: Vec<String>,
    /// The public keys offered so far (a key is offered once, from the agent or a file).
    offered: Vec<PublicKey>,
    /// The host's RSA signature hash, asked once when the first RSA key comes up.
    rsa_hash: Option<Option<HashAlg>>,
}

impl<H: Handler> Attempt<'_, H> {
    /// Offers the loadable keys among `files` (`explicit`: named in the URI); `true` once one is
    /// accepted.
    async fn files(
        &mut self,
        files: &[PathBuf],
        explicit: bool,
        display: &impl Fn(&Path) -> String,
    ) -> bool {
        for file in files {
            let key = match russh::keys::load_secret_key(file, None) {
                Ok(key) => key,
                // The default files are only tried when they exist; a keyfile named in the URI
                // is worth a word.
                Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    if explicit {
                        self.tried.push(format!("{}: no such file", display(file)));
                    }
                    continue;
                }
                Err(russh::keys::Error::KeyIsEncrypted) => {
                    self.tried.push(format!(
                        "skipped {}: encrypted (add it to ssh-agent)",
                        display(file)
                    ));
                    continue;
                }
                Err(e) => {
                    self.tried
                        .push(format!("skipped {}: cannot load it: {e}", display(file)));
                    continue;
                }
            };
            if self.offered.contains(key.public_key()) {
                continue;
            }
            self.offered.push(key.public_key().clone());
            let hash = self.hash_for(key.algorithm()).await;
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            let result = self.handle.authenticate_publickey(self.user, key).await;
            if self.judge(display(file), result) {
                return true;
            }
        }
        false
    }

    /// Offers the agent's plain keys; `true` once one is accepted.
    async fn agent(&mut self) -> bool {
        if std::env::var_os("SSH_AUTH_SOCK").is_none() {
            return false;
        }
        let mut agent = match AgentClient::connect_env().await {
            Ok(agent) => agent,
            Err(e) => {
                self.tried.push(format!("no ssh-agent: {e}"));
                return false;
            }
        };
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                self.tried.push(format!("ssh-agent: {e}"));
                return false;
            }
        };
        for identity in identities {
            let AgentIdentity::PublicKey { key, comment } = identity else {
                continue;
            };
            if self.offered.contains(&key) {
                continue;
            }
            self.offered.push(key.clone());
            let hash = self.hash_for(key.algorithm()).await;
            let label = format!("agent key {} {}", key.fingerprint(HashAlg::Sha256), comment);
            let result = self
                .handle
                .authenticate_publickey_with(self.user, key, hash, &mut agent)
                .await;
            if self.judge(label, result) {
                return true;
            }
        }
        false
    }

    /// Records an attempt (its error is russh's or the agent's); `true` when it got in.
    fn judge(&mut self, label: String, result: Result<AuthResult, impl std::fmt::Display>) -> bool {
        match result {
            Ok(AuthResult::Success) => true,
            Ok(AuthResult::Failure { .. }) => {
                self.tried.push(label.trim_end().to_string());
                false
            }
            // The key was not even offered (an agent that refuses to sign, a connection the host
            // closed after too many keys): say so, and go on while the connection lasts.
            Err(e) => {
                self.tried
                    .push(format!("{} (failed: {e})", label.trim_end()));
                false
            }
        }
    }

    async fn hash_for(&mut self, algorithm: Algorithm) -> Option<HashAlg> {
        if !matches!(algorithm, Algorithm::Rsa { .. }) {
            return None;
        }
        if self.rsa_hash.is_none() {
            let best = self.handle.best_supported_rsa_hash().await.ok().flatten();
            self.rsa_hash = Some(best.flatten());
        }
        self.rsa_hash.flatten()
    }
}

/// `~/.ssh/id_rsa` rather than the full path, for messages.
fn tilde(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}
