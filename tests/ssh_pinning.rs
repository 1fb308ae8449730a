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

fn openssh(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap()
}

#[tokio::test]
async fn pinned_key_logs_in_and_runs_a_command() {
    let state = tempfile::tempdir().unwrap();
    let client = ClientKey::load_or_create(state.path()).unwrap();
    let host = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let addr = fake_node(host.clone(), client.private.public_key().clone()).await;
    let session = Session::connect(
        &addr.to_string(),
        &openssh(&host),
        &client,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let out = session.exec("hostname").await.unwrap();
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (Some(0), "ran: hostname\n")
    );
    session.close().await;
    // The client key persists: loading again gives the same key, and its file is private.
    let again = ClientKey::load_or_create(state.path()).unwrap();
    assert_eq!(again.public_openssh, client.public_openssh);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&client.private_path)
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
    let state = tempfile::tempdir().unwrap();
    let client = ClientKey::load_or_create(state.path()).unwrap();
    let host = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let impostor = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let addr = fake_node(impostor, client.private.public_key().clone()).await;
    let err = Session::connect(
        &addr.to_string(),
        &openssh(&host),
        &client,
        Duration::from_secs(5),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, SshError::WrongHostKey { .. }), "{err}");
}

#[tokio::test]
async fn an_unauthorized_client_is_rejected() {
    let state = tempfile::tempdir().unwrap();
    let client = ClientKey::load_or_create(state.path()).unwrap();
    let host = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let other = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let addr = fake_node(host.clone(), other.public_key().clone()).await;
    let err = Session::connect(
        &addr.to_string(),
        &openssh(&host),
        &client,
        Duration::from_secs(5),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err}");
}
