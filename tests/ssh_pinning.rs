//! vnode's ssh readiness login accepts exactly the host key vnode generated for the node. A russh
//! server on 127.0.0.1 stands in for a node.

mod common;

use std::time::Duration;

use common::ssh_servers::{FakeGuest, Guest, random_key};
use russh::keys::{PrivateKey, PublicKey};
use tokio::net::TcpListener;
use vnode::ssh::{ClientKey, Session, SshError};

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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Guest::serve(listener, served, FakeGuest::echoing(authorized));
        let pinned = self.host.public_key().to_openssh().unwrap();
        Session::connect(
            &node.addr.to_string(),
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
