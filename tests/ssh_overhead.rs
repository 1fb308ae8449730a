//! Tool overhead, isolated (issue #17, item 6): from the instant a guest's sshd starts accepting
//! (T0) to the instant vnode's bring-up has passed the sshd banner wait, the pinned-key login and
//! the facts read, which is when spawn reports the node's ssh time. A benchmark, not a test:
//! `benches/ssh_overhead.sh` runs it (`cargo test --test ssh_overhead -- --ignored --nocapture`).
//!
//! The stand-in guest is the russh guest of tests/common/ssh_servers.rs on 127.0.0.1, answering
//! FACTS_COMMAND as a booted guest would (hostname = the node's name, both NICs addressed). As on
//! a booting guest, its port refuses connections until sshd starts: the socket is bound (the port
//! reserved) but does not listen until T0. vnode's stages (`stages::banner`, `stages::login`,
//! `stages::facts`, the very functions `spawn` runs) are already polling when T0 comes; T0 falls
//! at spread-out phases of their poll interval from round to round, as a boot's end would.
//!
//! vnode runs in a thread of its own (a current-thread runtime), the stand-ins in the test's
//! runtime, so that the CPU time of vnode's side is that thread's (`getrusage(RUSAGE_THREAD)`).
//! Variants: `direct` (`Route::Direct`, a guest vnode's host routes) and `via host`
//! (`Route::Via`, through a fake libvirt host's sshd whose connection is already open, as after
//! spawn's preflight; there the login's retries are the banner wait).
//!
//! Environment: SSH_OVERHEAD_ROUNDS (default 21) rounds per variant; SSH_OVERHEAD_ENFORCE=1 fails
//! the run when a variant's median T0 → facts exceeds LIMIT.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ssh_servers::{FakeGuest, Forwarding, Guest, Hypervisor, openssh, random_key};
use russh::keys::ssh_key::LineEnding;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use vnode::config::Config;
use vnode::images::catalog::Catalog;
use vnode::plan::planned_node::{self, HostName, PlannedNode};
use vnode::spawn::guest_facts::{ADDRESSES_COMMAND, FACTS_COMMAND};
use vnode::spawn::leases::POLL;
use vnode::spawn::stages::{self, Route};
use vnode::ssh::{ClientKey, JumpHost, JumpPool};

/// Issue #17's bound on the median from "sshd accepts" to "vnode reports ssh".
const LIMIT: Duration = Duration::from_millis(300);

/// How long vnode polls a refusing port at least, before T0.
const BEFORE_T0: Duration = Duration::from_millis(200);

/// One node, as spawn plans it.
fn node() -> PlannedNode {
    let config = Config::defaults();
    let catalog = Catalog::load(None).unwrap();
    let r = vnode::plan::spec::resolve(&["5".into()], &config.pools, &catalog, None, &[]).unwrap();
    planned_node::plan(r, None, &catalog, &HostName::local()).remove(0)
}

/// What a booted guest of `node` prints for vnode's facts commands.
fn stand_in(node: &PlannedNode, authorized: russh::keys::PublicKey) -> FakeGuest {
    let ip = format!(
        "== ip\n[{{\"ifindex\":1,\"ifname\":\"lo\",\"address\":\"00:00:00:00:00:00\",\"addr_info\":[{{\"family\":\"inet\",\"local\":\"127.0.0.1\",\"prefixlen\":8}}]}},\
         {{\"ifindex\":2,\"ifname\":\"enp1s0\",\"address\":\"{}\",\"addr_info\":[{{\"family\":\"inet\",\"local\":\"192.168.122.45\",\"prefixlen\":24}}]}},\
         {{\"ifindex\":3,\"ifname\":\"enp2s0\",\"address\":\"{}\",\"addr_info\":[{{\"family\":\"inet\",\"local\":\"198.18.0.105\",\"prefixlen\":24}}]}}]\n",
        node.id.private_mac, node.id.public_mac
    );
    let facts = format!(
        "== os-release\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n\
         == hostname\n{}\n{ip}",
        node.name()
    );
    FakeGuest::answering(authorized, move |command| match command {
        FACTS_COMMAND => facts.clone(),
        ADDRESSES_COMMAND => ip.clone(),
        other => panic!("the stand-in was not asked this: {other}"),
    })
}

/// When vnode's stages ended in one round, and the CPU time its thread spent.
struct Stamps {
    start: Instant,
    banner: Instant,
    login: Instant,
    facts: Instant,
    cpu: Duration,
}

/// The CPU time (user + system) of the calling thread, or of the whole process.
fn cpu(who: libc::c_int) -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(who, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Round {
    route: Route,
    host_key: String,
    /// Sent once vnode's side has started the round (its first try is under way).
    started: oneshot::Sender<()>,
    done: oneshot::Sender<Stamps>,
}

/// vnode's side: a thread that opens its connection to the libvirt host (as spawn's preflight
/// does), then runs spawn's ssh stages for each round it is given.
fn vnode_thread(
    node: PlannedNode,
    client: ClientKey,
    jump: JumpPool,
) -> mpsc::UnboundedSender<Round> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Round>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            jump.check().await.unwrap();
            while let Some(round) = rx.recv().await {
                let cpu_before = cpu(libc::RUSAGE_THREAD);
                let start = Instant::now();
                let _ = round.started.send(());
                let deadline = start + Duration::from_secs(30);
                stages::banner(&round.route, deadline).await.unwrap();
                let banner = Instant::now();
                let session = stages::login(&round.route, &round.host_key, &client, deadline)
                    .await
                    .unwrap();
                let login = Instant::now();
                let facts = stages::facts(&session, &node, deadline, None)
                    .await
                    .unwrap();
                let facts_at = Instant::now();
                assert_eq!(facts.hostname, node.name());
                assert!(facts.address_of(node.id.public_mac).is_some());
                session.close().await;
                let _ = round.done.send(Stamps {
                    start,
                    banner,
                    login,
                    facts: facts_at,
                    cpu: cpu(libc::RUSAGE_THREAD) - cpu_before,
                });
            }
        });
    });
    tx
}

/// T0 → each stage's end, for one round.
struct Split {
    banner: Duration,
    login: Duration,
    facts: Duration,
}

/// The `i`th of the delays from vnode's first try to T0: `BEFORE_T0` plus a fraction of the poll
/// interval, the fractions spread evenly over [0, 1) whatever the number of rounds (golden-ratio
/// sequence), so that T0 meets every phase of vnode's polling.
fn delay(i: usize) -> Duration {
    let phase = (0.5 + i as f64 * 0.618_033_988_749_895).fract();
    BEFORE_T0 + POLL.mul_f64(phase)
}

/// One boot: vnode starts polling a port that refuses, sshd starts listening at T0.
async fn round(
    vnode: &mpsc::UnboundedSender<Round>,
    guest: &FakeGuest,
    via: Option<&JumpPool>,
    delay: Duration,
) -> (Split, Duration) {
    // The port is the guest's; nothing listens on it yet: connections are refused.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = socket.local_addr().unwrap();
    let host_key = random_key();
    let route = match via {
        None => Route::Direct(addr),
        Some(pool) => Route::Via(pool.clone(), addr),
    };
    let (done, stamps) = oneshot::channel();
    let (started, begun) = oneshot::channel();
    vnode
        .send(Round {
            route,
            host_key: openssh(&host_key),
            started,
            done,
        })
        .unwrap_or_else(|_| panic!("vnode's thread ended"));
    // The delay counts from vnode's start, not from the hand-over: on a loaded machine its
    // thread may take a while to pick the round up (it once did, and T0 came first).
    begun
        .await
        .expect("vnode's thread failed (its panic is above)");
    tokio::time::sleep(delay).await;
    let t0 = Instant::now();
    let guest = Guest::serve(socket.listen(1024).unwrap(), host_key, guest.clone());
    let s = stamps
        .await
        .expect("vnode's thread failed (its panic is above)");
    guest.kill();
    assert!(
        s.start < t0 && s.login > t0,
        "vnode's stages did not start before T0"
    );
    let split = Split {
        banner: s.banner - t0,
        login: s.login - t0,
        facts: s.facts - t0,
    };
    (split, s.cpu)
}

/// Median, p90 (nearest rank) and max.
fn summary(mut samples: Vec<Duration>) -> [Duration; 3] {
    samples.sort();
    let n = samples.len();
    let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    [rank(0.5), rank(0.9), samples[n - 1]]
}

fn ms(d: Duration) -> String {
    format!("{:6.1}", d.as_secs_f64() * 1e3)
}

/// Prints a variant's figures; its median T0 → facts.
fn report(name: &str, splits: &[Split], cpu: Duration, banner_stage: bool) -> Duration {
    let rounds = splits.len();
    println!("{name}: {rounds} rounds, ms from T0 (sshd listens)   median    p90    max");
    let mut rows = vec![];
    if banner_stage {
        rows.push((
            "T0 -> banner seen",
            splits.iter().map(|s| s.banner).collect(),
        ));
    }
    rows.push(("T0 -> logged in", splits.iter().map(|s| s.login).collect()));
    rows.push((
        "T0 -> facts read (vnode reports ssh)",
        splits.iter().map(|s| s.facts).collect(),
    ));
    let mut median = Duration::ZERO;
    for (label, samples) in rows {
        let [m, p90, max] = summary(samples);
        println!("  {label:<38} {} {} {}", ms(m), ms(p90), ms(max));
        median = m;
    }
    // Through the host there is no banner stage: the login's retries are the wait.
    let [facts, ..] = summary(splits.iter().map(|s| s.facts - s.login).collect());
    if banner_stage {
        let [login, ..] = summary(splits.iter().map(|s| s.login - s.banner).collect());
        println!(
            "  stages alone (median): login {} ms after the banner, facts {} ms after the login",
            ms(login).trim(),
            ms(facts).trim()
        );
    } else {
        println!(
            "  stages alone (median): facts {} ms after the login",
            ms(facts).trim()
        );
    }
    println!(
        "  vnode's CPU time per node (its thread, first try to session closed): {} ms",
        ms(cpu / rounds as u32).trim()
    );
    median
}

#[tokio::test]
#[ignore = "a benchmark: benches/ssh_overhead.sh runs it"]
async fn ssh_overhead() {
    let rounds: usize = std::env::var("SSH_OVERHEAD_ROUNDS")
        .map_or(21, |r| r.parse().expect("SSH_OVERHEAD_ROUNDS: a number"));
    assert!(rounds > 0, "SSH_OVERHEAD_ROUNDS: at least 1");
    let enforce = std::env::var("SSH_OVERHEAD_ENFORCE").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let client = ClientKey::load_or_create(&dir.path().join("client_ed25519")).unwrap();
    let node = node();
    let guest = stand_in(&node, client.private.public_key().clone());

    // The libvirt host of the `via` variant: its sshd is up, the user's key file and known_hosts
    // vouch for it, and vnode's connection to it is open before the rounds.
    let user = random_key();
    let user_key = dir.path().join("id_user");
    std::fs::write(&user_key, user.to_openssh(LineEnding::LF).unwrap()).unwrap();
    let hv = Hypervisor::start(user.public_key().clone(), Forwarding::Allowed).await;
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, hv.vouching_line() + "\n").unwrap();
    let jump = JumpHost::from_uri(&hv.uri(&user_key, &known_hosts)).unwrap();
    let pool = JumpPool::new(jump, Duration::from_secs(10));
    let vnode = vnode_thread(node, client, pool.clone());

    let process_before = cpu(libc::RUSAGE_SELF);
    let (mut direct, mut via, mut direct_cpu, mut via_cpu) =
        (vec![], vec![], Duration::ZERO, Duration::ZERO);
    // Interleaved, so that drift in a shared machine's speed hits both alike.
    for i in 0..rounds {
        let (split, cpu) = round(&vnode, &guest, None, delay(i)).await;
        direct.push(split);
        direct_cpu += cpu;
        let (split, cpu) = round(&vnode, &guest, Some(&pool), delay(i)).await;
        via.push(split);
        via_cpu += cpu;
    }
    let process = cpu(libc::RUSAGE_SELF) - process_before;
    assert_eq!(hv.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

    println!(
        "vnode's ssh stages against a stand-in sshd on 127.0.0.1 that starts listening at T0 \
         (poll interval {POLL:?}, T0 {BEFORE_T0:?} + 0..{POLL:?} after vnode's first try; {} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimized"
        }
    );
    let direct_median = report("direct", &direct, direct_cpu, true);
    let via_median = report("via host", &via, via_cpu, false);
    println!(
        "whole process (vnode + stand-ins) CPU time per node: {} ms",
        ms(process / (2 * rounds) as u32).trim()
    );
    if enforce {
        for (name, median) in [("direct", direct_median), ("via host", via_median)] {
            assert!(
                median <= LIMIT,
                "{name}: median T0 -> facts {median:?} exceeds {LIMIT:?}"
            );
        }
        println!("PASS: both medians within {LIMIT:?}");
    }
}
