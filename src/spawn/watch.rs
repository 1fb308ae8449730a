//! Watching the nodes' domains while their waits run: a domain that shuts off, crashes or pauses
//! fails its node at once (within one poll interval, `Hypervisor::libvirt_poll`, plus one virsh
//! call), and libvirt not answering — libvirtd restarting, as a package upgrade does — is ridden
//! out for a grace period, since qemu does not depend on libvirtd and the guests go on booting
//! meanwhile.
//!
//! One `virsh domstats --state` per poll interval (every domain's state and libvirt's reason for
//! it) serves every watching node.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::stages::StageError;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::{DomainState, Virsh};

/// The last `virsh domstats --state`: when it was read, and what it said.
type Reading = (Instant, Result<Vec<(String, DomainState)>, LibvirtError>);

/// The domains' states, shared by every watching node.
pub struct Domains {
    virsh: Virsh,
    uri: String,
    /// The configured host's name, when there are `[[hosts]]`.
    host: Option<String>,
    grace: Duration,
    poll: Duration,
    cache: Mutex<Option<Reading>>,
}

/// What one node's watch says about its domain.
enum Seen {
    Running,
    Down(String),
    Gone,
    /// libvirt did not answer (a connection error).
    NoAnswer(LibvirtError),
}

impl Domains {
    pub fn new(
        virsh: Virsh,
        uri: &str,
        host: Option<&str>,
        grace: Duration,
        poll: Duration,
    ) -> Domains {
        Domains {
            virsh,
            uri: uri.to_string(),
            host: host.map(String::from),
            grace,
            poll,
            cache: Mutex::new(None),
        }
    }

    /// The list of domains, at most one poll interval old.
    async fn list(&self) -> Result<Vec<(String, DomainState)>, LibvirtError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, list)) = cache.as_ref()
            && at.elapsed() < self.poll
        {
            return list.clone();
        }
        let list = self.virsh.domain_states().await;
        *cache = Some((Instant::now(), list.clone()));
        list
    }

    async fn see(&self, name: &str) -> Result<Seen, LibvirtError> {
        let state = match self.list().await {
            Ok(list) => list.into_iter().find(|(n, _)| n == name).map(|(_, s)| s),
            Err(e) if e.is_connection() => return Ok(Seen::NoAnswer(e)),
            Err(e) => return Err(e),
        };
        Ok(match state {
            None => Seen::Gone,
            Some(s) if !s.is_down() => Seen::Running,
            // The reason tells a crash from a shutdown from an I/O error pause.
            Some(s) => Seen::Down(s.to_string()),
        })
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
    /// for the whole grace period.
    async fn until_down(&self, name: &str, note: &(dyn Fn(&str) + Sync)) -> StageError {
        let mut silent_since: Option<Instant> = None;
        loop {
            match self.see(name).await {
                Ok(Seen::Running) => {
                    if silent_since.take().is_some() {
                        note("libvirt answers again");
                    }
                }
                Ok(Seen::Down(state)) => {
                    return StageError::DomainDown {
                        node: name.to_string(),
                        state,
                    };
                }
                Ok(Seen::Gone) => {
                    return StageError::DomainGone {
                        node: name.to_string(),
                    };
                }
                Ok(Seen::NoAnswer(e)) => {
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
                Err(e) => return StageError::Libvirt(e),
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}
