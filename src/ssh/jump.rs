//! One ssh connection per libvirt host, shared by every guest login behind it: each login is a
//! `direct-tcpip` channel that the host's sshd opens to the guest, as `ssh -J` does. The host's
//! key must be in the user's known_hosts; vnode never records or accepts a key it has not seen
//! vouched for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelOpenFailure, ChannelStream, Preferred};
use tokio::net::TcpStream;

use super::known_hosts::{Distrust, KnownHosts};
use super::{JumpError, JumpHost, SshError, identity};

/// One shared authenticated connection per host, opened lazily, reopened when it broke. Clones
/// share it.
#[derive(Clone)]
pub struct JumpPool {
    inner: Arc<Inner>,
}

struct Inner {
    host: JumpHost,
    timeout: Duration,
    /// Held while connecting, so that concurrent logins wait for one connection instead of
    /// opening one each.
    connection: tokio::sync::Mutex<Option<Arc<Handle<HostKeyCheck>>>>,
}

impl JumpPool {
    /// A pool for `host`; `timeout` bounds each connection attempt and each channel opening.
    pub fn new(host: JumpHost, timeout: Duration) -> JumpPool {
        JumpPool {
            inner: Arc::new(Inner {
                host,
                timeout,
                connection: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn host(&self) -> &JumpHost {
        &self.inner.host
    }

    /// Connects if needed (host key checked against known_hosts, the user's keys), then has the
    /// host's sshd open a connection to `target`.
    pub async fn channel(&self, target: SocketAddr) -> Result<ChannelStream<Msg>, SshError> {
        let work = async {
            let connection = self.connection().await?;
            match self.open(&connection, target).await {
                // The connection died since its last use (the host rebooted, sshd restarted):
                // once more on a new one.
                Err(Broken) => {
                    self.forget(&connection).await;
                    let connection = self.connection().await?;
                    self.open(&connection, target)
                        .await
                        .map_err(|Broken| self.lost(target))?
                }
                Ok(opened) => opened,
            }
        };
        self.within(&format!("while opening a channel to {target}"), work)
            .await
    }

    /// Connects and authenticates only (for preflight); reuses a live connection.
    pub async fn check(&self) -> Result<(), SshError> {
        self.within("while logging in", async {
            self.connection().await.map(|_| ())
        })
        .await
    }

    async fn within<T>(
        &self,
        doing: &str,
        work: impl Future<Output = Result<T, SshError>>,
    ) -> Result<T, SshError> {
        match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(JumpError::Timeout {
                host: self.inner.host.to_string(),
                doing: doing.to_string(),
                after: self.inner.timeout,
            }
            .into()),
        }
    }

    /// The live connection, made now if there is none.
    async fn connection(&self) -> Result<Arc<Handle<HostKeyCheck>>, SshError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(handle) = slot.as_ref().filter(|h| !h.is_closed()) {
            return Ok(handle.clone());
        }
        let handle = Arc::new(connect(&self.inner.host).await?);
        *slot = Some(handle.clone());
        Ok(handle)
    }

    /// Drops `broken` from the pool (unless another login has replaced it already).
    async fn forget(&self, broken: &Arc<Handle<HostKeyCheck>>) {
        let mut slot = self.inner.connection.lock().await;
        if slot.as_ref().is_some_and(|h| Arc::ptr_eq(h, broken)) {
            *slot = None;
        }
    }

    /// A direct-tcpip channel to `target`; `Err(Broken)` when the connection is gone.
    async fn open(
        &self,
        connection: &Handle<HostKeyCheck>,
        target: SocketAddr,
    ) -> Result<Result<ChannelStream<Msg>, SshError>, Broken> {
        let host = self.inner.host.to_string();
        let opened = connection
            .channel_open_direct_tcpip(
                target.ip().to_string(),
                target.port().into(),
                "127.0.0.1",
                0,
            )
            .await;
        let failure = match opened {
            Ok(channel) => return Ok(Ok(channel.into_stream())),
            Err(russh::Error::Disconnect | russh::Error::SendError) => return Err(Broken),
            Err(russh::Error::ChannelOpenFailure(reason)) => reason,
            Err(e) => {
                return Ok(Err(JumpError::ChannelFailed {
                    host,
                    target,
                    message: e.to_string(),
                }
                .into()));
            }
        };
        let error = match failure {
            ChannelOpenFailure::AdministrativelyProhibited => {
                JumpError::ForwardingRefused { host, target }
            }
            ChannelOpenFailure::ConnectFailed => JumpError::GuestUnreachable { host, target },
            other => JumpError::ChannelFailed {
                host,
                target,
                message: describe(&other),
            },
        };
        Ok(Err(error.into()))
    }

    fn lost(&self, target: SocketAddr) -> SshError {
        JumpError::ChannelFailed {
            host: self.inner.host.to_string(),
            target,
            message: "the connection to the host broke twice in a row".into(),
        }
        .into()
    }
}

/// The connection to the host is gone (the next attempt needs a new one).
struct Broken;

fn describe(failure: &ChannelOpenFailure) -> String {
    match failure {
        ChannelOpenFailure::UnknownChannelType => "its sshd does not know direct-tcpip".into(),
        ChannelOpenFailure::ResourceShortage => "resource shortage (too many channels?)".into(),
        ChannelOpenFailure::Other { code, reason } => format!("refused ({code}): {reason}"),
        ChannelOpenFailure::AdministrativelyProhibited => "administratively prohibited".into(),
        ChannelOpenFailure::ConnectFailed => "connect failed".into(),
    }
}

/// TCP, the ssh handshake with the host key checked, then the user's keys.
async fn connect(host: &JumpHost) -> Result<Handle<HostKeyCheck>, JumpError> {
    let files = host.known_hosts_files();
    let known =
        KnownHosts::load(&files).map_err(|(file, source)| JumpError::KnownHostsUnreadable {
            host: host.to_string(),
            file,
            source,
        })?;
    let name = host.known_hosts_name();
    let config = Arc::new(client::Config {
        preferred: Preferred {
            key: preferred_host_keys(&known.key_types(&name)).into(),
            ..Preferred::default()
        },
        // A dead host (or path) shows within a minute, not at the next TCP timeout.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        ..Default::default()
    });
    let distrust = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        known,
        name,
        distrust: distrust.clone(),
    };
    let stream = TcpStream::connect((host.host.as_str(), host.port))
        .await
        .map_err(|source| JumpError::Connect {
            host: host.to_string(),
            addr: host.address(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let handshake = client::connect_stream(config, stream, handler).await;
    let mut handle = match handshake {
        Ok(handle) => handle,
        Err(e) => {
            let refused = distrust.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(match refused {
                Some((why, key)) => refusal(host, &files, why, &key),
                None => JumpError::Handshake {
                    host: host.to_string(),
                    message: e.to_string(),
                },
            });
        }
    };
    identity::authenticate(&mut handle, host).await?;
    Ok(handle)
}

/// The error for a host key that known_hosts does not vouch for.
fn refusal(host: &JumpHost, files: &[PathBuf], why: Distrust, key: &PublicKey) -> JumpError {
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let host_name = host.to_string();
    match why {
        Distrust::Changed { file, line } => JumpError::HostKeyChanged {
            host: host_name,
            fingerprint,
            forget: host.forget_command(&file),
            file,
            line,
        },
        Distrust::Revoked { file, line } => JumpError::HostKeyRevoked {
            host: host_name,
            fingerprint,
            file,
            line,
        },
        Distrust::Unknown { other_types } => JumpError::HostKeyUnknown {
            host: host_name,
            fingerprint,
            file: files.first().cloned().unwrap_or_default(),
            other_types: match other_types.is_empty() {
                true => String::new(),
                false => format!(", which has only {} keys for it", other_types.join(", ")),
            },
            first_login: host.first_login_command(),
            keyscan: host.keyscan_command(),
        },
    }
}

/// russh's host key algorithms, those of the keys known_hosts has for the host first (as ssh
/// orders them), so that a host recorded with its ECDSA key is not asked for its Ed25519 one.
fn preferred_host_keys(known: &[Algorithm]) -> Vec<Algorithm> {
    let family = |a: &Algorithm| match a {
        Algorithm::Rsa { .. } => Algorithm::Rsa { hash: None },
        other => other.clone(),
    };
    let is_known = |a: &Algorithm| known.iter().any(|k| family(k) == family(a));
    let all = Preferred::default().key;
    all.iter()
        .filter(|a| is_known(a))
        .chain(all.iter().filter(|a| !is_known(a)))
        .cloned()
        .collect()
}

/// Checks the host's key against known_hosts and keeps the reason of a refusal (and the key) for
/// the error message.
struct HostKeyCheck {
    known: KnownHosts,
    name: String,
    distrust: Arc<Mutex<Option<(Distrust, PublicKey)>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // vnode asks for no certificate; should one come, its key is judged as a plain key, as
        // ssh falls back to.
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        match self.known.verify(&self.name, &key) {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.distrust.lock().unwrap_or_else(|p| p.into_inner()) = Some((why, key));
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_types_come_first() {
        let ecdsa = Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        };
        let order = preferred_host_keys(std::slice::from_ref(&ecdsa));
        assert_eq!(order[0], ecdsa);
        assert_eq!(order.len(), Preferred::default().key.len());
        let order = preferred_host_keys(&[Algorithm::Rsa { hash: None }]);
        assert!(matches!(order[0], Algorithm::Rsa { .. }), "{order:?}");
        assert_eq!(preferred_host_keys(&[]), Preferred::default().key.to_vec());
    }

    #[test]
    fn the_pool_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<JumpPool>();
    }
}
