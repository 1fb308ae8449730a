//! russh servers on 127.0.0.1 for the ssh tests: a guest (root logs in with vnode's key; it
//! answers commands as told, or echoes them) and a libvirt host's sshd that forwards
//! `direct-tcpip` channels to loopback targets. Like sshd, both set TCP_NODELAY (without it
//! delayed ACKs add 40 ms per login).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session as ServerSession};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub fn random_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

/// The OpenSSH public key line of `key`.
pub fn openssh(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap()
}

/// Tasks of a fake server, aborted together to "kill" it (listener, sessions, forwarded
/// connections: every socket it holds closes).
#[derive(Clone, Default)]
pub struct Tasks(Arc<Mutex<Vec<AbortHandle>>>);

impl Tasks {
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work).abort_handle();
        self.0.lock().unwrap().push(handle);
    }

    pub fn abort_all(&self) {
        for task in self.0.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Serves `handler()` sessions on `listener` until the tasks are aborted; counts connections.
pub fn serve<H: server::Handler + Send + 'static>(
    listener: TcpListener,
    keys: Vec<PrivateKey>,
    accepted: Arc<AtomicUsize>,
    tasks: Tasks,
    handler: impl Fn() -> H + Send + 'static,
) {
    let config = Arc::new(server::Config {
        keys,
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        ..Default::default()
    });
    let inner = tasks.clone();
    tasks.spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let _ = tcp.set_nodelay(true);
            // russh runs each session in a task of its own; the socket stays with a task of
            // ours, so that aborting it drops the connection like a killed sshd.
            let (mut ours, theirs) = tokio::io::duplex(1 << 16);
            let (config, handler) = (config.clone(), handler());
            tokio::spawn(async move {
                if let Ok(running) = server::run_stream(config, theirs, handler).await {
                    let _ = running.await;
                }
            });
            inner.spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut ours).await;
            });
        }
    });
}

/// What a fake guest prints for a command.
pub type Replies = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The guest's sshd: accepts root with `authorized` and answers each command with its reply
/// (exit status 0).
#[derive(Clone)]
pub struct FakeGuest {
    authorized: PublicKey,
    replies: Replies,
}

impl FakeGuest {
    /// Echoes every command: `ran: COMMAND`.
    pub fn echoing(authorized: PublicKey) -> FakeGuest {
        FakeGuest::answering(authorized, |command| format!("ran: {command}\n"))
    }

    pub fn answering(
        authorized: PublicKey,
        replies: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> FakeGuest {
        FakeGuest {
            authorized,
            replies: Arc::new(replies),
        }
    }
}

/// What both stand-ins answer a public-key login: exactly `want` with the authorized key.
fn judge(
    user: &str,
    offered: &russh::keys::ssh_key::public::KeyData,
    want: &str,
    authorized: &PublicKey,
) -> Auth {
    if user == want && offered == authorized.key_data() {
        Auth::Accept
    } else {
        Auth::reject()
    }
}

impl server::Handler for FakeGuest {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(judge(
            user,
            key.public_key.key_data(),
            "root",
            &self.authorized,
        ))
    }

    async fn channel_open_session(
        &mut self,
        _: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        let out = (self.replies)(&String::from_utf8_lossy(data));
        session.data(channel, out)?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// A running fake guest.
pub struct Guest {
    pub addr: SocketAddr,
    pub host_key: PrivateKey,
    pub accepted: Arc<AtomicUsize>,
    pub tasks: Tasks,
}

impl Guest {
    /// A guest with a new host key on a free loopback port, echoing commands.
    pub async fn start(authorized: PublicKey) -> Guest {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Guest::serve(listener, random_key(), FakeGuest::echoing(authorized))
    }

    /// `guest` with `host_key` on `listener`.
    pub fn serve(listener: TcpListener, host_key: PrivateKey, guest: FakeGuest) -> Guest {
        let addr = listener.local_addr().unwrap();
        let (accepted, tasks) = (Arc::new(AtomicUsize::new(0)), Tasks::default());
        serve(
            listener,
            vec![host_key.clone()],
            accepted.clone(),
            tasks.clone(),
            move || guest.clone(),
        );
        Guest {
            addr,
            host_key,
            accepted,
            tasks,
        }
    }

    /// Stops it like a killed sshd: the port closes, its connections drop.
    pub fn kill(&self) {
        self.tasks.abort_all();
    }
}

/// What the hypervisor's sshd does with a `direct-tcpip` request.
#[derive(Clone, Copy, PartialEq)]
pub enum Forwarding {
    Allowed,
    /// `AllowTcpForwarding no`: administratively prohibited.
    Refused,
}

/// The libvirt host's sshd: the user "tester" logs in with the user's key; channels to loopback
/// targets are forwarded like sshd's direct-tcpip.
#[derive(Clone)]
pub struct FakeSshd {
    authorized: PublicKey,
    forwarding: Forwarding,
    tasks: Tasks,
}

impl server::Handler for FakeSshd {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(judge(
            user,
            key.public_key.key_data(),
            "tester",
            &self.authorized,
        ))
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _: &str,
        _: u32,
        reply: ChannelOpenHandle,
        _: &mut ServerSession,
    ) -> Result<(), Self::Error> {
        if self.forwarding == Forwarding::Refused {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let Ok(mut target) = TcpStream::connect((host, port as u16)).await else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        let _ = target.set_nodelay(true);
        reply.accept().await;
        self.tasks.spawn(async move {
            let mut stream = channel.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut target).await;
        });
        Ok(())
    }
}

/// A hypervisor sshd that can be killed and started again on the same port.
pub struct Hypervisor {
    pub addr: SocketAddr,
    pub host_key: PrivateKey,
    sshd: FakeSshd,
    pub accepted: Arc<AtomicUsize>,
}

impl Hypervisor {
    pub async fn start(authorized: PublicKey, forwarding: Forwarding) -> Hypervisor {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hv = Hypervisor {
            addr: listener.local_addr().unwrap(),
            host_key: random_key(),
            sshd: FakeSshd {
                authorized,
                forwarding,
                tasks: Tasks::default(),
            },
            accepted: Arc::new(AtomicUsize::new(0)),
        };
        hv.serve(listener);
        hv
    }

    fn serve(&self, listener: TcpListener) {
        let sshd = self.sshd.clone();
        serve(
            listener,
            vec![self.host_key.clone()],
            self.accepted.clone(),
            self.sshd.tasks.clone(),
            move || sshd.clone(),
        );
    }

    pub fn kill(&self) {
        self.sshd.tasks.abort_all();
    }

    pub async fn restart(&self) {
        // The aborted listener closes once its task is dropped; retry briefly until the port
        // is free again.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                return self.serve(listener);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot bind {} again", self.addr);
    }

    pub fn known_hosts_name(&self) -> String {
        format!("[127.0.0.1]:{}", self.addr.port())
    }

    /// The known_hosts line that vouches for it, as `ssh` would have recorded it.
    pub fn vouching_line(&self) -> String {
        format!("{} {}", self.known_hosts_name(), openssh(&self.host_key))
    }

    /// Its libvirt URI, with the user's key file and the known_hosts file to check it against.
    pub fn uri(&self, user_key: &Path, known_hosts: &Path) -> String {
        format!(
            "qemu+ssh://tester@127.0.0.1:{}/system?keyfile={}&known_hosts={}",
            self.addr.port(),
            user_key.display(),
            known_hosts.display()
        )
    }
}
