//! vnode's ssh session to a node: it accepts exactly the host key vnode generated for the node
//! (no trust on first use, no StrictHostKeyChecking=no) and logs in as root with vnode's key,
//! directly or through the node's libvirt host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{ClientKey, JumpPool, SshError};

struct Pinned {
    expected: PublicKey,
    matched: Arc<AtomicBool>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = matches!(key, russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } if key.key_data() == self.expected.key_data());
        self.matched.store(ok, Ordering::SeqCst);
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
        let expected = pinned_key(addr, host_key)?;
        let login = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| session_err(addr, e.to_string()))?;
            let _ = stream.set_nodelay(true);
            Session::login(stream, addr, expected, client).await
        };
        within(timeout, addr, login).await
    }

    /// Like [`Session::connect`], but to a guest whose address only its libvirt host routes: the
    /// ssh connection runs in a channel that the host's sshd opens to `target`. The guest's
    /// pinned key is checked and vnode's key used exactly as on a direct connection; the host's
    /// own key is checked by `jump` against the user's known_hosts.
    pub async fn connect_via(
        jump: &JumpPool,
        target: SocketAddr,
        host_key: &str,
        client: &ClientKey,
        timeout: Duration,
    ) -> Result<Session, SshError> {
        let addr = format!("{target} via {}", jump.host());
        let expected = pinned_key(&addr, host_key)?;
        let login = async {
            let stream = jump.channel(target).await?;
            Session::login(stream, &addr, expected, client).await
        };
        within(timeout, &addr, login).await
    }

    /// The ssh protocol on `stream`: the server must show `expected`, then root logs in with
    /// vnode's client key.
    async fn login<S>(
        stream: S,
        addr: &str,
        expected: PublicKey,
        client: &ClientKey,
    ) -> Result<Session, SshError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let matched = Arc::new(AtomicBool::new(false));
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        });
        let handler = Pinned {
            expected,
            matched: matched.clone(),
        };
        let mut handle = match client::connect_stream(config, stream, handler).await {
            Err(russh::Error::UnknownKey) if !matched.load(Ordering::SeqCst) => {
                return Err(SshError::WrongHostKey {
                    addr: addr.to_string(),
                });
            }
            Err(e) => return Err(session_err(addr, e.to_string())),
            Ok(h) => h,
        };
        let key = PrivateKeyWithHashAlg::new(client.private.clone(), None);
        let auth = handle
            .authenticate_publickey("root", key)
            .await
            .map_err(|e| session_err(addr, e.to_string()))?;
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

fn session_err(addr: &str, message: String) -> SshError {
    SshError::Session {
        addr: addr.to_string(),
        message,
    }
}

fn pinned_key(addr: &str, host_key: &str) -> Result<PublicKey, SshError> {
    PublicKey::from_openssh(host_key)
        .map_err(|e| session_err(addr, format!("bad pinned host key: {e}")))
}

async fn within<T>(
    timeout: Duration,
    addr: &str,
    work: impl Future<Output = Result<T, SshError>>,
) -> Result<T, SshError> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(session_err(addr, "timed out".into())))
}
