//! libvirt's DHCP leases, polled for every waiting node at once: one `virsh net-dhcp-leases` per
//! network per poll interval (the host's [`Hypervisor::libvirt_poll`], at least [`LEASE_POLL`]),
//! whatever the number of nodes.
//!
//! [`Hypervisor::libvirt_poll`]: crate::hosts::hypervisor::Hypervisor::libvirt_poll

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::{Lease, Virsh};
use crate::plan::mac::Mac;

/// The banner and login tries wait at most this long between tries.
pub const POLL: Duration = Duration::from_millis(250);

/// Leases are read at most this often. A guest's DHCP answer comes tens of seconds before its
/// sshd, so a second of delay here is not felt, and each read is a new virsh process whose CPU,
/// under TCG, comes out of the guests' boots.
pub const LEASE_POLL: Duration = Duration::from_secs(1);

pub struct Leases {
    virsh: Virsh,
    poll: Duration,
    cache: Mutex<HashMap<String, (Instant, Vec<Lease>)>>,
}

/// Why no lease was found.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("no DHCP lease for {mac} on network '{network}'")]
    NoLease { mac: Mac, network: String },
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
}

impl Leases {
    /// `poll`: the host's interval; leases are read no more often than [`LEASE_POLL`].
    pub fn new(virsh: Virsh, poll: Duration) -> Leases {
        Leases {
            virsh,
            poll: poll.max(LEASE_POLL),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The network's leases, at most one poll interval old.
    pub async fn current(&self, net: &str) -> Result<Vec<Lease>, LibvirtError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, leases)) = cache.get(net)
            && at.elapsed() < self.poll
        {
            return Ok(leases.clone());
        }
        let leases = self.virsh.leases(net).await?;
        cache.insert(net.to_string(), (Instant::now(), leases.clone()));
        Ok(leases)
    }

    /// Waits for a lease of `mac` that was not in `before`. libvirt keeps the leases of destroyed
    /// domains that had the same MAC, and a re-created guest (new machine-id, new DHCP client id)
    /// may get another address: only a lease that appeared after the domain was created is trusted.
    pub async fn wait_new(
        &self,
        net: &str,
        mac: Mac,
        before: &[Lease],
        deadline: Instant,
    ) -> Result<Ipv4Addr, LeaseError> {
        loop {
            match self.current(net).await {
                Ok(leases) => {
                    if let Some(l) = leases.iter().find(|l| l.mac == mac && !before.contains(l)) {
                        return Ok(l.ip);
                    }
                }
                // libvirt restarting: the domain watch rides it out (or gives up) for everyone.
                Err(e) if e.is_connection() => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Err(LeaseError::NoLease {
                    mac,
                    network: net.to_string(),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}
