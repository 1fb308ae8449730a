//! Watching the nodes' domains while their waits run: a domain that shuts off, crashes or pauses
//! fails its node at once (within [`POLL`] plus one virsh call), and libvirt not answering —
//! libvirtd restarting, as a package upgrade does — is ridden out for a grace period, since qemu
//! does not depend on libvirtd and the guests go on booting meanwhile.
//!
//! One `virsh list --all` per poll interval serves every watching node; the reason of a state is
//! asked only for a domain that is not running.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::stages::StageError;
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::{DomainEntry, Virsh};

/// How often the domains' states are read.
pub const POLL: Duration = Duration::from_millis(500);

/// The domains' states, shared by every watching node.
pub struct Domains {
    virsh: Virsh,
    uri: String,
    grace: Duration,
    cache: Mutex<Option<(Instant, Result<Vec<DomainEntry>, LibvirtError>)>>,
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
    pub fn new(virsh: Virsh, uri: &str, grace: Duration) -> Domains {
        Domains {
            virsh,
            uri: uri.to_string(),
            grace,
            cache: Mutex::new(None),
        }
    }

    /// The list of domains, at most one poll interval old.
    async fn list(&self) -> Result<Vec<DomainEntry>, LibvirtError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, list)) = cache.as_ref()
            && at.elapsed() < POLL
        {
            return list.clone();
        }
        let list = self.virsh.domain_list().await;
        *cache = Some((Instant::now(), list.clone()));
        list
    }

    async fn see(&self, name: &str) -> Result<Seen, LibvirtError> {
        let entry = match self.list().await {
            Ok(list) => list.into_iter().find(|d| d.name == name),
            Err(e) if e.is_connection() => return Ok(Seen::NoAnswer(e)),
            Err(e) => return Err(e),
        };
        match entry {
            None => Ok(Seen::Gone),
            Some(d) if d.state == "running" => Ok(Seen::Running),
            Some(d) => {
                // The reason tells a crash from a shutdown from an I/O error pause.
                let detail = match self.virsh.domain_state_reason(name).await {
                    Ok(Some(s)) => s,
                    _ => d.state,
                };
                Ok(Seen::Down(detail))
            }
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
                Ok(Seen::Down(state)) => return StageError::DomainDown { state },
                Ok(Seen::Gone) => return StageError::DomainGone,
                Ok(Seen::NoAnswer(e)) => {
                    let since = *silent_since.get_or_insert_with(|| {
                        note("libvirt not answering, retrying");
                        Instant::now()
                    });
                    if since.elapsed() >= self.grace {
                        return StageError::LibvirtSilent {
                            uri: self.uri.clone(),
                            seconds: self.grace.as_secs(),
                            source: e,
                        };
                    }
                }
                Err(e) => return StageError::Libvirt(e),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
