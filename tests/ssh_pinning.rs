//! vnode's ssh readiness login accepts exactly the host key vnode generated for the node. A russh
//! server on 127.0.0.1 stands in for a node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session as ServerSession};
use russh::{Channel, ChannelId};
use vnode::ssh::{ClientKey, Session, SshError};

#[derive(Clone)]
struct FakeNode {
    authorized: PublicKey,
}

impl server::Handler for FakeNode {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let ok = user == "root" && key.public_key.key_data() == self.authorized.key_data();
        Ok(if ok { Auth::Accept } else { Auth::reject() })
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
        session.data(channel, format!("ran: {}\n", String::from_utf8_lossy(data)))?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// Serves `host_key` on a loopback port until the test ends.
async fn fake_node(host_key: PrivateKey, authorized: PublicKey) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(server::Config {
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(10),
        ..Default::default()
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let node = FakeNode {
                authorized: authorized.clone(),
            };
            let config = config.clone();
            tokio::spawn(async move {
                if let Ok(running) = server::run_stream(config, stream, node).await {
                    let _ = running.await;
                }
            });
        }
    });
    addr
}

fn random_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

/// vnode's client key in a state directory of its own, and the host key vnode pinned for a node.
struct Pinned {
    state: tempfile::TempDir,
    client: ClientKey,
    host: PrivateKey,
}

impl Pinned {
    fn new() -> Pinned {
        let state = tempfile::tempdir().unwrap();
        let client = ClientKey::load_or_create(&state.path().join("client_ed25519")).unwrap();
        Pinned {
            state,
            client,
            host: random_key(),
        }
    }

    fn client_public(&self) -> PublicKey {
        self.client.private.public_key().clone()
    }

    /// vnode's readiness login to a fake node that serves `served` and authorizes `authorized`.
    async fn connect(
        &self,
        served: PrivateKey,
        authorized: PublicKey,
    ) -> Result<Session, SshError> {
        let addr = fake_node(served, authorized).await;
        let pinned = self.host.public_key().to_openssh().unwrap();
        Session::connect(
            &addr.to_string(),
            &pinned,
            &self.client,
            Duration::from_secs(5),
        )
        .await
    }
}

#[tokio::test]
async fn pinned_key_logs_in_and_runs_a_command() {
    let p = Pinned::new();
    let session = p.connect(p.host.clone(), p.client_public()).await.unwrap();
    let out = session.exec("hostname").await.unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (Some(0), "ran: hostname\n")
    );
    session.close().await;
    // The client key persists: loading again gives the same key, and its file is private.
    let again = ClientKey::load_or_create(&p.state.path().join("client_ed25519")).unwrap();
    assert_eq!(again.public_openssh, p.client.public_openssh);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&p.client.private_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "client key is readable by others: {mode:o}"
    );
}

#[tokio::test]
async fn another_host_key_is_refused() {
    let p = Pinned::new();
    let err = p
        .connect(random_key(), p.client_public())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SshError::WrongHostKey { .. }), "{err}");
}

#[tokio::test]
async fn an_unauthorized_client_is_rejected() {
    let p = Pinned::new();
    let other = random_key().public_key().clone();
    let err = p.connect(p.host.clone(), other).await.err().unwrap();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
}
