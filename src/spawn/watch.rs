//! Watching the nodes' domains while their waits run: a domain that shuts off, crashes or pauses
//! fails its node at once, and libvirt not answering — libvirtd restarting, as a package upgrade
//! does — is ridden out for a grace period, since qemu does not depend on libvirtd and the guests
//! go on booting meanwhile.
//!
//! One reader per host serves every watching node. It follows libvirt's lifecycle events (one
//! long-lived `virsh event --loop`) and reads every domain's state and reason (`virsh domstats
//! --state`) when an event comes, when a node starts watching, and every [`QUIET_POLL`] between
//! events. Without the event stream (it has not connected, or libvirtd went away) it reads every
//! poll interval, `Hypervisor::libvirt_poll`. Under TCG the guests' boots and vnode share the
//! cores, and a new virsh process four times a second took 8-12 % of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::stages::StageError;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::{DomainState, Virsh};

/// While the event stream is live, the states are still read this often: an event that never
/// came, a stream that is up but deaf.
pub const QUIET_POLL: Duration = Duration::from_secs(2);

/// The event stream counts as live once its virsh has run this long without ending (connected).
const SETTLE: Duration = Duration::from_millis(500);

/// One `virsh domstats --state`: when the call began, and what it said.
#[derive(Clone)]
struct Reading {
    began: Instant,
    states: Result<Vec<(String, DomainState)>, LibvirtError>,
}

/// The domains' states, shared by every watching node of one host.
pub struct Domains {
    uri: String,
    /// The configured host's name, when there are `[[hosts]]`.
    host: Option<String>,
    grace: Duration,
    readings: watch::Receiver<Option<Reading>>,
    /// Asks the reader for a reading now.
    wake: Arc<Notify>,
    reader: JoinHandle<()>,
}

impl Drop for Domains {
    fn drop(&mut self) {
        // The reader's own drop ends the event stream and kills its virsh.
        self.reader.abort();
    }
}

/// What one node's watch says about its domain.
enum Seen {
    Running,
    Down(String),
    Gone,
    /// libvirt did not answer (a connection error).
    NoAnswer(LibvirtError),
    /// libvirt answered with an error.
    Failed(LibvirtError),
}

impl Domains {
    /// Starts the host's reader (inside the runtime); it runs until the `Domains` is dropped.
    pub fn new(
        virsh: Virsh,
        uri: &str,
        host: Option<&str>,
        grace: Duration,
        poll: Duration,
    ) -> Domains {
        let (tx, readings) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        let reader = tokio::spawn(read_states(virsh, poll, tx, wake.clone()));
        Domains {
            uri: uri.to_string(),
            host: host.map(String::from),
            grace,
            readings,
            wake,
            reader,
        }
    }

    /// Runs `stage` while watching domain `name`: whichever ends first decides. `note` is told
    /// when libvirt stops and starts answering.
    pub async fn watching<T>(
        &self,
        name: &str,
        note: &(dyn Fn(&str) + Sync),
        stage: impl Future<Output = Result<T, StageError>>,
    ) -> Result<T, StageError> {
        tokio::select! {
            result = stage => result,
            down = self.until_down(name, note) => Err(down),
        }
    }

    /// Resolves only when the domain is no longer running, is gone, or libvirt has not answered
    /// for the whole grace period. A reading begun before the watch counts only when it shows the
    /// domain running (the usual case from a node's second stage on); anything else in it may
    /// predate the domain, so a fresh reading is asked for.
    async fn until_down(&self, name: &str, note: &(dyn Fn(&str) + Sync)) -> StageError {
        let since = Instant::now();
        let mut readings = self.readings.clone();
        let mut silent_since: Option<Instant> = None;
        loop {
            let reading = readings.borrow_and_update().clone();
            let seen = reading.map(|r| (r.began >= since, see(r.states, name)));
            match seen {
                Some((fresh, seen)) if fresh || matches!(seen, Seen::Running) => match seen {
                    Seen::Running => {
                        if silent_since.take().is_some() {
                            note("libvirt answers again");
                        }
                    }
                    Seen::Down(state) => {
                        return StageError::DomainDown {
                            node: name.to_string(),
                            state,
                        };
                    }
                    Seen::Gone => {
                        return StageError::DomainGone {
                            node: name.to_string(),
                        };
                    }
                    Seen::Failed(e) => return StageError::Libvirt(e),
                    Seen::NoAnswer(e) => {
                        let since = *silent_since.get_or_insert_with(|| {
                            note("libvirt not answering, retrying");
                            Instant::now()
                        });
                        tracing::debug!(
                            "{name}: libvirt not answering for {:.1} s of {} s: {e}",
                            since.elapsed().as_secs_f64(),
                            self.grace.as_secs()
                        );
                        if since.elapsed() >= self.grace {
                            return StageError::LibvirtSilent {
                                uri: self.uri.clone(),
                                host: self.host.clone(),
                                seconds: self.grace.as_secs(),
                                source: e,
                            };
                        }
                    }
                },
                _ => self.wake.notify_one(),
            }
            if readings.changed().await.is_err() {
                return StageError::Libvirt(LibvirtError::Tool {
                    tool: "vnode".into(),
                    message: format!("the watch of the domains at {} stopped", self.uri),
                });
            }
        }
    }
}

/// What a reading says about domain `name`.
fn see(states: Result<Vec<(String, DomainState)>, LibvirtError>, name: &str) -> Seen {
    match states {
        Ok(list) => match list.into_iter().find(|(n, _)| n == name) {
            None => Seen::Gone,
            Some((_, s)) if !s.is_down() => Seen::Running,
            // The reason tells a crash from a shutdown from an I/O error pause.
            Some((_, s)) => Seen::Down(s.to_string()),
        },
        Err(e) if e.is_connection() => Seen::NoAnswer(e),
        Err(e) => Seen::Failed(e),
    }
}

/// The lifecycle event stream as the reader sees it.
#[derive(Default)]
struct Events {
    live: AtomicBool,
    /// Set by the reader when libvirt answers again after a silence that began then: a stream
    /// started before it may be connected to nothing (a local virsh ends when libvirtd goes away,
    /// an ssh link that hangs may not), so it reconnects.
    silence_began: std::sync::Mutex<Option<Instant>>,
    reconnect: Notify,
}

/// The host's reader: one reading at each wake-up (an event, a node that starts watching, the
/// stream going up or down), or after a pause when nothing happened.
async fn read_states(
    virsh: Virsh,
    poll: Duration,
    tx: watch::Sender<Option<Reading>>,
    wake: Arc<Notify>,
) {
    let events = Arc::new(Events::default());
    let stream = AbortOnDrop(tokio::spawn(follow_events(
        virsh.clone(),
        events.clone(),
        wake.clone(),
        poll,
    )));
    let mut silent_since: Option<Instant> = None;
    loop {
        let began = Instant::now();
        let states = virsh.domain_states().await;
        match (&states, silent_since) {
            (Err(_), None) => silent_since = Some(began),
            (Ok(_), Some(since)) => {
                *events.silence_began.lock().expect("not poisoned") = Some(since);
                events.reconnect.notify_one();
                silent_since = None;
            }
            _ => {}
        }
        if tx.send(Some(Reading { began, states })).is_err() {
            break;
        }
        let pause = if events.live.load(Ordering::Relaxed) {
            QUIET_POLL.max(poll)
        } else {
            poll
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    drop(stream);
}

/// Keeps one `virsh event --loop` running: each event wakes the reader; a stream that ends (or is
/// told to reconnect) is started again after `retry`.
async fn follow_events(virsh: Virsh, events: Arc<Events>, wake: Arc<Notify>, retry: Duration) {
    loop {
        let started = Instant::now();
        let seen = wake.clone();
        let follow = virsh.follow_lifecycle(move |line| {
            tracing::debug!("libvirt event: {line}");
            seen.notify_one();
        });
        tokio::pin!(follow);
        let settled = tokio::select! {
            ended = &mut follow => Err(ended),
            _ = tokio::time::sleep(SETTLE) => Ok(()),
        };
        let ended = match settled {
            Err(ended) => Some(ended),
            Ok(()) => {
                events.live.store(true, Ordering::Relaxed);
                loop {
                    tokio::select! {
                        ended = &mut follow => break Some(ended),
                        _ = events.reconnect.notified() => {
                            let began = events.silence_began.lock().expect("not poisoned").take();
                            if began.is_some_and(|b| started < b) {
                                break None;
                            }
                        }
                    }
                }
            }
        };
        events.live.store(false, Ordering::Relaxed);
        // Whatever happened while the stream was down is read now, not at the next pause.
        wake.notify_one();
        match ended {
            Some(Err(e)) => tracing::debug!("libvirt event stream ended: {e}"),
            Some(Ok(())) => tracing::debug!("libvirt event stream ended"),
            None => {
                tracing::debug!("libvirt answers again: reconnecting its event stream");
                continue;
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// A task that ends when this handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A virsh that plays libvirt from files in `dir`: `domstats` prints `dir/states` (and counts
    /// its calls in `dir/calls`), `event --loop` prints each line appended to `dir/events`.
    fn stand_in(dir: &Path) -> Virsh {
        use std::os::unix::fs::PermissionsExt;
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\n\
             for a; do case $a in\n\
             domstats) echo x >> {d}/calls; cat {d}/states; exit 0;;\n\
             event) exec tail -n 0 -F {d}/events 2>/dev/null;;\n\
             esac; done\n\
             exit 1\n"
        );
        let path = dir.join("virsh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("events"), "").unwrap();
        Virsh::with_program(path, "test:///stand-in")
    }

    fn states(dir: &Path, state: u32, reason: u32) {
        let text = format!("Domain: 'vnode03'\n  state.state={state}\n  state.reason={reason}\n\n");
        std::fs::write(dir.join("states.new"), text).unwrap();
        std::fs::rename(dir.join("states.new"), dir.join("states")).unwrap();
    }

    fn calls(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("calls")).map_or(0, |s| s.lines().count())
    }

    #[tokio::test]
    async fn an_event_is_seen_at_once_and_quiet_domains_are_read_seldom() {
        let dir = tempfile::tempdir().unwrap();
        let virsh = stand_in(dir.path());
        states(dir.path(), 1, 1);
        let poll = Duration::from_millis(250);
        let domains = Arc::new(Domains::new(
            virsh,
            "test:///stand-in",
            None,
            Duration::from_secs(30),
            poll,
        ));
        let watch = {
            let domains = domains.clone();
            tokio::spawn(async move {
                domains
                    .watching("vnode03", &|_| {}, std::future::pending::<Result<(), _>>())
                    .await
            })
        };
        // The stream settles; then a quiet spell of 4 s reads the states every QUIET_POLL, not
        // every poll interval (16 reads).
        tokio::time::sleep(SETTLE + Duration::from_secs(1)).await;
        let before = calls(dir.path());
        tokio::time::sleep(Duration::from_secs(4)).await;
        let quiet = calls(dir.path()) - before;
        assert!((1..=3).contains(&quiet), "{quiet} reads in 4 quiet seconds");
        assert!(!watch.is_finished(), "a running domain is not down");

        // The domain crashes: its event is followed by a reading within well under QUIET_POLL.
        states(dir.path(), 5, 3);
        let crashed = Instant::now();
        std::fs::write(
            dir.path().join("events"),
            "event 'lifecycle' for domain 'vnode03': Stopped Crashed\n",
        )
        .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("the crash is seen")
            .unwrap();
        let took = crashed.elapsed();
        assert!(took < Duration::from_secs(1), "seen after {took:?}");
        match result {
            Err(StageError::DomainDown { node, state }) => {
                assert_eq!(node, "vnode03");
                assert!(state.contains("shut off"), "{state}");
            }
            other => panic!("not a domain down: {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn without_events_the_states_are_polled_and_old_readings_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let virsh = stand_in(dir.path());
        // No stream: the stand-in's `event` fails (as a libvirt without events would).
        std::fs::write(
            dir.path().join("virsh"),
            format!(
                "#!/bin/sh\nfor a; do case $a in domstats) echo x >> {d}/calls; cat {d}/states; exit 0;; esac; done\nexit 1\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        // A reading from before the domain existed says it is gone; a watch that begins after it
        // must not believe it.
        std::fs::write(dir.path().join("states"), "").unwrap();
        let poll = Duration::from_millis(250);
        let domains = Domains::new(
            virsh,
            "test:///stand-in",
            None,
            Duration::from_secs(30),
            poll,
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        states(dir.path(), 1, 1);
        let watched = tokio::time::timeout(
            Duration::from_secs(2),
            domains.watching("vnode03", &|_| {}, std::future::pending::<Result<(), _>>()),
        )
        .await;
        assert!(watched.is_err(), "still watching a running domain");
        // Polled every interval while the stream is down: 0.6 s + 2 s at 250 ms.
        let n = calls(dir.path());
        assert!(n >= 6, "{n} reads");
        // Paused by an I/O error (reason 5): down, seen within a poll or two.
        states(dir.path(), 3, 5);
        let paused = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            domains.watching("vnode03", &|_| {}, std::future::pending::<Result<(), _>>()),
        )
        .await
        .expect("the pause is seen");
        assert!(
            paused.elapsed() < Duration::from_secs(1),
            "{:?}",
            paused.elapsed()
        );
        match result {
            Err(StageError::DomainDown { state, .. }) => {
                assert!(state.contains("ioerror"), "{state}")
            }
            other => panic!("not a domain down: {:?}", other.err()),
        }
    }
}
