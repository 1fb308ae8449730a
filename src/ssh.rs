//! ssh from vnode to its nodes: vnode's own client key, and a russh session that accepts exactly
//! the host key vnode generated for the node (no trust on first use, no StrictHostKeyChecking=no).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};

/// vnode's client key pair: authorized in every node (besides the user's keys) so that vnode can
/// check readiness without an agent or a passphrase.
pub struct ClientKey {
    pub private: Arc<PrivateKey>,
    pub private_path: PathBuf,
    pub public_openssh: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("vnode's client key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("ssh to {addr}: {message}")]
    Session { addr: String, message: String },
    #[error(
        "ssh to {addr}: the host key is not the one vnode generated for this node (someone else answers on this address?)"
    )]
    WrongHostKey { addr: String },
    #[error("ssh to {addr}: vnode's key was not accepted for root (yet)")]
    AuthRejected { addr: String },
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
        let _ = std::fs::write(path.with_extension("pub"), format!("{public_openssh}\n"));
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

struct Pinned {
    expected: PublicKey,
    matched: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = matches!(key, russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } if key.key_data() == self.expected.key_data());
        self.matched.store(ok, std::sync::atomic::Ordering::SeqCst);
        Ok(ok)
    }
}

/// An authenticated ssh session to a node, as root.
pub struct Session {
    handle: Handle<Pinned>,
    addr: String,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl Session {
    /// Connects to `addr` (ip:port), accepting only `host_key` (an OpenSSH public key line), and
    /// logs in as root with vnode's client key.
    pub async fn connect(
        addr: &str,
        host_key: &str,
        client: &ClientKey,
        timeout: Duration,
    ) -> Result<Session, SshError> {
        let session_err = |message: String| SshError::Session {
            addr: addr.to_string(),
            message,
        };
        let expected = PublicKey::from_openssh(host_key)
            .map_err(|e| session_err(format!("bad pinned host key: {e}")))?;
        let matched = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            nodelay: true,
            ..Default::default()
        });
        let handler = Pinned {
            expected,
            matched: matched.clone(),
        };
        let connect = client::connect(config, addr, handler);
        let mut handle = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Err(session_err("timed out".into())),
            Ok(Err(e))
                if !matched.load(std::sync::atomic::Ordering::SeqCst)
                    && matches!(e, russh::Error::UnknownKey) =>
            {
                return Err(SshError::WrongHostKey {
                    addr: addr.to_string(),
                });
            }
            Ok(Err(e)) => return Err(session_err(e.to_string())),
            Ok(Ok(h)) => h,
        };
        let key = PrivateKeyWithHashAlg::new(client.private.clone(), None);
        let auth = handle
            .authenticate_publickey("root", key)
            .await
            .map_err(|e| session_err(e.to_string()))?;
        if !auth.success() {
            return Err(SshError::AuthRejected {
                addr: addr.to_string(),
            });
        }
        Ok(Session {
            handle,
            addr: addr.to_string(),
        })
    }

    /// Runs a command and collects its output.
    pub async fn exec(&self, command: &str) -> Result<Output, SshError> {
        let err = |e: russh::Error| SshError::Session {
            addr: self.addr.clone(),
            message: e.to_string(),
        };
        let mut channel = self.handle.channel_open_session().await.map_err(err)?;
        channel.exec(true, command).await.map_err(err)?;
        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs `command` with `stdin` as its standard input, handing its output (stdout and stderr)
    /// to `output` as it arrives. Returns the exit status; `None` when the command died of a
    /// signal or the channel closed without a status.
    pub async fn exec_streaming(
        &self,
        command: &str,
        stdin: &[u8],
        mut output: impl FnMut(&[u8]),
    ) -> Result<Option<u32>, SshError> {
        let err = |e: russh::Error| SshError::Session {
            addr: self.addr.clone(),
            message: e.to_string(),
        };
        let mut channel = self.handle.channel_open_session().await.map_err(err)?;
        channel.exec(true, command).await.map_err(err)?;
        channel.data(stdin).await.map_err(err)?;
        channel.eof().await.map_err(err)?;
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => output(&data),
                ChannelMsg::ExtendedData { data, .. } => output(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        Ok(status)
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

// STUB (replaced by the jump branch): the API the pipeline codes against.
#[allow(dead_code, unused_variables)]
mod jump_stub {
    use super::*;
    use std::net::SocketAddr;
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct JumpHost {
        pub user: String,
        pub host: String,
        pub port: u16,
        pub identity: Option<PathBuf>,
        pub known_hosts: Option<PathBuf>,
    }
    impl JumpHost {
        pub fn from_uri(uri: &str) -> Option<JumpHost> {
            let rest = uri.strip_prefix("qemu+ssh://")?;
            let (auth, _) = rest.split_once('/')?;
            let (user, host) = auth.split_once('@').unwrap_or(("root", auth));
            Some(JumpHost {
                user: user.into(),
                host: host.into(),
                port: 22,
                identity: None,
                known_hosts: None,
            })
        }
        pub fn proxy_jump(&self) -> String {
            format!("{}@{}", self.user, self.host)
        }
    }
    #[derive(Clone)]
    pub struct JumpPool {
        host: JumpHost,
    }
    impl JumpPool {
        pub fn new(host: JumpHost, timeout: Duration) -> JumpPool {
            JumpPool { host }
        }
        pub async fn check(&self) -> Result<(), SshError> {
            Ok(())
        }
    }
    impl Session {
        pub async fn connect_via(
            jump: &JumpPool,
            target: SocketAddr,
            host_key: &str,
            client: &ClientKey,
            timeout: Duration,
        ) -> Result<Session, SshError> {
            Err(SshError::Session {
                addr: target.to_string(),
                message: "stub".into(),
            })
        }
    }
}
pub use jump_stub::{JumpHost, JumpPool};
