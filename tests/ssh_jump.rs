//! vnode logs into guests that only their libvirt host routes, through that host's sshd: one
//! shared ssh connection per host, a `direct-tcpip` channel per guest login, the host's key
//! vouched for by the user's known_hosts, the guest's pinned key still enforced. Two russh servers
//! on 127.0.0.1 stand in: a "hypervisor" sshd that forwards to loopback targets, and a guest.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::ssh_servers::{Forwarding, Guest, Hypervisor, openssh, random_key};
use russh::keys::ssh_key::LineEnding;
use tokio::net::{TcpListener, TcpStream};
use vnode::ssh::known_hosts::hash_name;
use vnode::ssh::{ClientKey, JumpError, JumpHost, JumpPool, Session, SshError};

const TIMEOUT: Duration = Duration::from_secs(5);

/// vnode's client key and the user's own key in a directory of their own, a guest, and its
/// libvirt host.
struct Lab {
    dir: tempfile::TempDir,
    client: ClientKey,
    user_key: PathBuf,
    guest: Guest,
    hv: Hypervisor,
}

impl Lab {
    async fn new() -> Lab {
        Lab::with(Forwarding::Allowed).await
    }

    async fn with(forwarding: Forwarding) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let client = ClientKey::load_or_create(&dir.path().join("client_ed25519")).unwrap();
        let user = random_key();
        let user_key = dir.path().join("id_user");
        std::fs::write(&user_key, user.to_openssh(LineEnding::LF).unwrap()).unwrap();
        let guest = Guest::start(client.private.public_key().clone()).await;
        let hv = Hypervisor::start(user.public_key().clone(), forwarding).await;
        Lab {
            dir,
            client,
            user_key,
            guest,
            hv,
        }
    }

    /// The known_hosts file for the lab, with `lines`.
    fn known_hosts(&self, lines: &[String]) -> PathBuf {
        let file = self.dir.path().join("known_hosts");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        file
    }

    fn vouching_line(&self) -> String {
        self.hv.vouching_line()
    }

    fn uri(&self, known_hosts: &std::path::Path) -> String {
        self.hv.uri(&self.user_key, known_hosts)
    }

    fn pool(&self, known_hosts_lines: &[String]) -> JumpPool {
        let uri = self.uri(&self.known_hosts(known_hosts_lines));
        JumpPool::new(JumpHost::from_uri(&uri).unwrap(), TIMEOUT)
    }

    /// A pool whose known_hosts vouches for the hypervisor.
    fn trusting_pool(&self) -> JumpPool {
        self.pool(&[self.vouching_line()])
    }

    async fn login(&self, pool: &JumpPool) -> Result<Session, SshError> {
        Session::connect_via(
            pool,
            self.guest.addr,
            &openssh(&self.guest.host_key),
            &self.client,
            TIMEOUT,
        )
        .await
    }

    async fn login_and_run(&self, pool: &JumpPool) {
        let session = self.login(pool).await.unwrap();
        let out = session.exec("hostname").await.unwrap();
        assert_eq!(
            (out.status, out.stdout.as_str()),
            (Some(0), "ran: hostname\n")
        );
        session.close().await;
    }
}

/// The jump error inside `err`, or a panic naming what came instead.
fn jump_error(err: SshError) -> JumpError {
    match err {
        SshError::Jump(e) => *e,
        other => panic!("not a jump host error: {other}"),
    }
}

#[tokio::test]
async fn a_guest_behind_its_host_logs_in_and_runs_a_command() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    lab.login_and_run(&pool).await;
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(lab.guest.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn guest_logins_share_one_connection_to_the_host() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    // Concurrent logins wait for the one connection being made; a later one reuses it.
    let clone = pool.clone();
    tokio::join!(lab.login_and_run(&pool), lab.login_and_run(&clone));
    lab.login_and_run(&pool).await;
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(lab.guest.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn check_logs_into_the_host_without_a_channel() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    pool.check().await.unwrap();
    pool.check().await.unwrap();
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(lab.guest.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_host_missing_from_known_hosts_is_refused() {
    let lab = Lab::new().await;
    let other = format!("hv9,127.0.0.1 {}", openssh(&lab.hv.host_key));
    let pool = lab.pool(&["# nothing for this port".into(), other]);
    let err = jump_error(pool.check().await.unwrap_err());
    assert!(matches!(err, JumpError::HostKeyUnknown { .. }), "{err}");
    let message = err.to_string();
    let file = lab.dir.path().join("known_hosts");
    let fingerprint = lab
        .hv
        .host_key
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    for needle in [
        file.display().to_string(),
        fingerprint,
        format!("tester@127.0.0.1:{}", lab.hv.addr.port()),
        format!(
            "ssh -p {} -o UserKnownHostsFile={} tester@127.0.0.1",
            lab.hv.addr.port(),
            file.display()
        ),
        format!("ssh-keyscan -p {} 127.0.0.1", lab.hv.addr.port()),
    ] {
        assert!(message.contains(&needle), "{needle:?} not in: {message}");
    }
    assert!(SshError::from(err).is_permanent());
    // Nothing was logged into, nothing forwarded.
    assert_eq!(lab.guest.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_changed_host_key_names_the_line_that_no_longer_matches() {
    let lab = Lab::new().await;
    let stale = format!("{} {}", lab.hv.known_hosts_name(), openssh(&random_key()));
    let pool = lab.pool(&[
        "# lab".into(),
        "hv9 ".to_string() + &openssh(&random_key()),
        stale,
    ]);
    let err = jump_error(lab.login(&pool).await.err().unwrap());
    assert!(
        matches!(err, JumpError::HostKeyChanged { line: 3, .. }),
        "{err}"
    );
    let at = format!("{}:3", lab.dir.path().join("known_hosts").display());
    assert!(err.to_string().contains(&at), "{at} not in: {err}");
    assert!(err.to_string().contains("ssh-keygen -f"), "{err}");
}

#[tokio::test]
async fn a_hashed_entry_vouches_for_the_host() {
    let lab = Lab::new().await;
    let hashed = hash_name(&lab.hv.known_hosts_name(), b"twenty bytes of salt");
    let pool = lab.pool(&[format!("{hashed} {}", openssh(&lab.hv.host_key))]);
    lab.login_and_run(&pool).await;
    // And a hashed entry for another name does not.
    let hashed = hash_name("127.0.0.1", b"twenty bytes of salt");
    let pool = lab.pool(&[format!("{hashed} {}", openssh(&lab.hv.host_key))]);
    let err = jump_error(pool.check().await.unwrap_err());
    assert!(matches!(err, JumpError::HostKeyUnknown { .. }), "{err}");
}

#[tokio::test]
async fn the_port_is_part_of_the_name_as_in_ssh() {
    let lab = Lab::new().await;
    let key = openssh(&lab.hv.host_key);
    // `[127.0.0.1]:PORT` in a comma list vouches…
    let listed = format!("hv9,{},10.9.9.9 {key}", lab.hv.known_hosts_name());
    lab.login_and_run(&lab.pool(&[listed])).await;
    // …and so does a pattern on it, while the bare address (port 22) does not.
    let pattern = format!("[127.0.0.*]:{} {key}", lab.hv.addr.port());
    lab.login_and_run(&lab.pool(&[pattern])).await;
    let bare = format!("127.0.0.1 {key}");
    let err = jump_error(lab.pool(&[bare]).check().await.unwrap_err());
    assert!(matches!(err, JumpError::HostKeyUnknown { .. }), "{err}");
}

#[tokio::test]
async fn a_revoked_host_key_is_rejected() {
    let lab = Lab::new().await;
    let revoked = format!("@revoked * {}", openssh(&lab.hv.host_key));
    let pool = lab.pool(&[lab.vouching_line(), revoked]);
    let err = jump_error(pool.check().await.unwrap_err());
    assert!(
        matches!(err, JumpError::HostKeyRevoked { line: 2, .. }),
        "{err}"
    );
    let at = format!("{}:2", lab.dir.path().join("known_hosts").display());
    assert!(err.to_string().contains(&at), "{at} not in: {err}");
}

#[tokio::test]
async fn the_guest_pinned_key_is_still_enforced_through_the_host() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    let err = Session::connect_via(
        &pool,
        lab.guest.addr,
        &openssh(&random_key()),
        &lab.client,
        TIMEOUT,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, SshError::WrongHostKey { .. }), "{err}");
    let via = format!(
        "{} via tester@127.0.0.1:{}",
        lab.guest.addr,
        lab.hv.addr.port()
    );
    assert!(err.to_string().contains(&via), "{via} not in: {err}");
    assert!(err.is_permanent());
    // The host connection is fine and stays in use.
    lab.login_and_run(&pool).await;
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_restarted_host_is_reconnected() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    lab.login_and_run(&pool).await;
    lab.hv.kill();
    let err = pool.channel(lab.guest.addr).await.err().unwrap();
    assert!(!err.is_permanent(), "{err}");
    lab.hv.restart().await;
    lab.login_and_run(&pool).await;
    lab.login_and_run(&pool).await;
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_host_restarted_between_logins_is_reconnected_at_once() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    lab.login_and_run(&pool).await;
    lab.hv.kill();
    lab.hv.restart().await;
    // No failed attempt in between: the next channel finds the old connection dead and makes a
    // new one.
    pool.channel(lab.guest.addr).await.unwrap();
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_host_that_refuses_forwarding_says_so() {
    let lab = Lab::with(Forwarding::Refused).await;
    let pool = lab.trusting_pool();
    let err = jump_error(lab.login(&pool).await.err().unwrap());
    assert!(matches!(err, JumpError::ForwardingRefused { .. }), "{err}");
    assert!(err.to_string().contains("AllowTcpForwarding"), "{err}");
    assert!(err.is_permanent());
}

#[tokio::test]
async fn a_guest_the_host_cannot_reach_is_not_final() {
    let lab = Lab::new().await;
    let pool = lab.trusting_pool();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = jump_error(pool.channel(closed).await.err().unwrap());
    assert!(
        matches!(err, JumpError::GuestUnreachable { target, .. } if target == closed),
        "{err}"
    );
    assert!(!err.is_permanent());
    // The connection to the host survives the failed channel.
    lab.login_and_run(&pool).await;
    assert_eq!(lab.hv.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_host_that_rejects_the_users_key_names_what_was_tried() {
    let lab = Lab::new().await;
    std::fs::write(
        &lab.user_key,
        random_key().to_openssh(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let err = jump_error(lab.trusting_pool().check().await.unwrap_err());
    assert!(matches!(err, JumpError::AuthRejected { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&lab.user_key.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn an_encrypted_keyfile_is_skipped_not_prompted_for() {
    let lab = Lab::new().await;
    let encrypted = random_key().encrypt(&mut rand::rng(), "secret").unwrap();
    std::fs::write(&lab.user_key, encrypted.to_openssh(LineEnding::LF).unwrap()).unwrap();
    let err = jump_error(lab.trusting_pool().check().await.unwrap_err());
    assert!(matches!(err, JumpError::AuthRejected { .. }), "{err}");
    let skipped = format!("skipped {}: encrypted", lab.user_key.display());
    assert!(
        err.to_string().contains(&skipped),
        "{skipped} not in: {err}"
    );
}

#[tokio::test]
async fn a_host_without_sshd_is_a_connect_error() {
    let lab = Lab::new().await;
    lab.hv.kill();
    // Wait until the port is closed (the listener task is dropped on abort).
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(lab.hv.addr).await.is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = jump_error(lab.trusting_pool().check().await.unwrap_err());
    assert!(matches!(err, JumpError::Connect { .. }), "{err}");
    assert!(!err.is_permanent());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// How long `login` takes to log in (the session closed after).
async fn timed(login: impl Future<Output = Result<Session, SshError>>) -> Duration {
    let t = Instant::now();
    let session = login.await.unwrap();
    let took = t.elapsed();
    session.close().await;
    took
}

/// Not a test: the extra time per guest login through the host, on loopback (the fakes set
/// TCP_NODELAY as sshd does; without it delayed ACKs add 40 ms per login). Direct, through the
/// shared connection, and through a new one, interleaved round by round so that drift in a
/// shared machine's speed hits all three alike.
/// `cargo test --test ssh_jump -- --ignored --nocapture measure`
#[tokio::test]
#[ignore]
async fn measure_login_overhead_through_the_host() {
    let lab = Lab::new().await;
    let (pinned, addr) = (openssh(&lab.guest.host_key), lab.guest.addr.to_string());
    let direct_login = || Session::connect(&addr, &pinned, &lab.client, TIMEOUT);
    let pool = lab.trusting_pool();
    let t = Instant::now();
    pool.check().await.unwrap();
    let host_login = t.elapsed();
    let (mut direct, mut warm, mut cold, mut channel) = (vec![], vec![], vec![], vec![]);
    let rounds = 21;
    for _ in 0..rounds {
        direct.push(timed(direct_login()).await);
        warm.push(timed(lab.login(&pool)).await);
        let fresh = lab.trusting_pool();
        cold.push(timed(lab.login(&fresh)).await);
        let t = Instant::now();
        drop(pool.channel(lab.guest.addr).await.unwrap());
        channel.push(t.elapsed());
    }
    let (direct, warm, cold) = (median(direct), median(warm), median(cold));
    println!(
        "median of {rounds} logins on loopback (debug build): direct {direct:?}; through the \
         shared host connection {warm:?} ({:+.1} ms; opening the channel alone {:?}); through a \
         new host connection {cold:?} ({:+.1} ms); the first host login alone {host_login:?}",
        (warm.as_secs_f64() - direct.as_secs_f64()) * 1e3,
        median(channel),
        (cold.as_secs_f64() - direct.as_secs_f64()) * 1e3,
    );
}

/// A real OpenSSH sshd, started for one test and killed (by its pid) when dropped.
struct RealSshd {
    child: std::process::Child,
    port: u16,
}

impl Drop for RealSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (this test needs OpenSSH): {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    out.stdout
}

/// A new key without passphrase at `file`.
fn ssh_keygen(kind: &[&str], file: &std::path::Path) {
    let file = file.to_str().unwrap();
    run(
        "ssh-keygen",
        &[kind, &["-q", "-N", "", "-f", file]].concat(),
    );
}

/// sshd on a free loopback port, its host key in `dir`, `authorized` the only key it accepts;
/// forwarding allowed to `permit_open` only.
async fn real_sshd(
    dir: &std::path::Path,
    authorized: &str,
    permit_open: &[SocketAddr],
) -> RealSshd {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host_key = dir.join("sshd_host_ed25519");
    ssh_keygen(&["-t", "ed25519"], &host_key);
    std::fs::write(dir.join("authorized_keys"), format!("{authorized}\n")).unwrap();
    let permit: Vec<String> = permit_open.iter().map(|a| a.to_string()).collect();
    let config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         PidFile none\nAllowTcpForwarding local\nPermitOpen {}\n",
        host_key.display(),
        dir.join("authorized_keys").display(),
        permit.join(" ")
    );
    let config_file = dir.join("sshd_config");
    std::fs::write(&config_file, config).unwrap();
    let child = std::process::Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot start /usr/sbin/sshd (this test needs openssh-server)");
    let sshd = RealSshd { child, port };
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sshd
}

/// The same guarantees against OpenSSH's sshd as the host: `ssh-keyscan -H` output (hashed)
/// vouches for it, the user's RSA key logs in, forwarding works, PermitOpen's refusal and a closed
/// guest port are told apart.
#[tokio::test]
#[ignore = "starts /usr/sbin/sshd on 127.0.0.1 (openssh-server, ssh-keygen, ssh-keyscan): run with --ignored"]
async fn real_openssh_sshd_as_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let client = ClientKey::load_or_create(&dir.path().join("client_ed25519")).unwrap();
    let guest = Guest::start(client.private.public_key().clone()).await;
    // An RSA key for the user: the rsa-sha2 signature negotiation with a real sshd.
    let user_key = dir.path().join("id_rsa");
    ssh_keygen(&["-t", "rsa", "-b", "2048"], &user_key);
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let authorized = std::fs::read_to_string(user_key.with_extension("pub")).unwrap();
    let sshd = real_sshd(dir.path(), authorized.trim(), &[guest.addr, closed]).await;
    let known_hosts = dir.path().join("known_hosts");
    let port = sshd.port.to_string();
    let scanned = run("ssh-keyscan", &["-H", "-p", &port, "127.0.0.1"]);
    assert!(scanned.starts_with(b"|1|"), "{scanned:?}");
    std::fs::write(&known_hosts, scanned).unwrap();
    let uri = format!(
        "qemu+ssh://127.0.0.1:{port}/system?keyfile={}&known_hosts={}",
        user_key.display(),
        known_hosts.display()
    );
    let pool = JumpPool::new(JumpHost::from_uri(&uri).unwrap(), TIMEOUT);
    pool.check().await.unwrap();
    let pinned = openssh(&guest.host_key);
    let session = Session::connect_via(&pool, guest.addr, &pinned, &client, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(session.exec("id").await.unwrap().stdout, "ran: id\n");
    let err = jump_error(pool.channel(closed).await.err().unwrap());
    assert!(matches!(err, JumpError::GuestUnreachable { .. }), "{err}");
    let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = jump_error(pool.channel(elsewhere).await.err().unwrap());
    assert!(matches!(err, JumpError::ForwardingRefused { .. }), "{err}");
    // A recorded key that is not the host's: refused, naming its line.
    let stale = format!("[127.0.0.1]:{port} {}\n", openssh(&random_key()));
    std::fs::write(&known_hosts, stale).unwrap();
    let fresh = JumpPool::new(JumpHost::from_uri(&uri).unwrap(), TIMEOUT);
    let err = jump_error(fresh.check().await.unwrap_err());
    assert!(
        matches!(err, JumpError::HostKeyChanged { line: 1, .. }),
        "{err}"
    );
    session.close().await;
}
