//! The hypervisor hosts of a command: this host alone (no `[[hosts]]` in the config, vnode as it
//! always was), or the config's `[[hosts]]`. [`hypervisor`] is one host and how vnode reaches
//! it, [`capabilities`] asks each what it has, [`placement`] decides where new nodes go and
//! [`kvm_probe`] whether guests can run under KVM.

pub mod capabilities;
pub mod hypervisor;
pub mod kvm_probe;
pub mod placement;

use crate::config::Config;
use crate::fresh_state::store::{StatePaths, StateRecord};
use crate::hosts::hypervisor::{Hypervisor, RemoveError};
use crate::libvirt::LibvirtError;
use crate::libvirt::virsh::DomainState;
use crate::node::metadata::NodeMetadata;

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("'{name}' is not one of the hosts ({known}); the config's [[hosts]] name them")]
    Unknown { name: String, known: String },
    #[error("--host {name}: the config has no [[hosts]]; nodes run on this host")]
    NoHosts { name: String },
}

/// The hosts of the config, in its order.
#[derive(Clone, Debug)]
pub struct Hosts {
    all: Vec<Hypervisor>,
    configured: bool,
}

impl Hosts {
    pub fn from_config(config: &Config) -> Hosts {
        if config.hosts.is_empty() {
            return Hosts {
                all: vec![Hypervisor::local(config)],
                configured: false,
            };
        }
        Hosts {
            all: config
                .hosts
                .iter()
                .map(|h| Hypervisor::remote(config, h))
                .collect(),
            configured: true,
        }
    }

    /// Does the config name `[[hosts]]`?
    pub fn configured(&self) -> bool {
        self.configured
    }

    pub fn all(&self) -> &[Hypervisor] {
        &self.all
    }

    /// The host called `name`.
    pub fn get(&self, name: &str) -> Result<&Hypervisor, HostsError> {
        if !self.configured {
            return Err(HostsError::NoHosts { name: name.into() });
        }
        self.all
            .iter()
            .find(|h| h.name().as_str() == name)
            .ok_or_else(|| HostsError::Unknown {
                name: name.into(),
                known: self.names().join(", "),
            })
    }

    pub fn names(&self) -> Vec<String> {
        self.all.iter().map(|h| h.name().to_string()).collect()
    }

    /// The hosts without those named in `leave_out`.
    pub fn without(&self, leave_out: &[String]) -> Result<Hosts, HostsError> {
        for n in leave_out {
            self.get(n)?;
        }
        Ok(Hosts {
            all: self
                .all
                .iter()
                .filter(|h| !leave_out.iter().any(|n| n == h.name().as_str()))
                .cloned()
                .collect(),
            configured: self.configured,
        })
    }

    /// The host a node's files say it runs on (`node.json`), if they say and it is one of these.
    pub fn recorded(&self, name: &str) -> Option<&Hypervisor> {
        let first = self.all.first()?;
        if !self.configured {
            return Some(first);
        }
        let meta = NodeMetadata::load(&first.node_paths(name).dir).ok()?;
        let host = meta.host?;
        self.all.iter().find(|h| h.name().as_str() == host)
    }

    /// Removes node `name`'s fresh state wherever it is: on the host its record names (its
    /// volumes there, then its directory here). Whether there was one. A state whose record
    /// names a host the config no longer has loses its directory here, and the error says which
    /// volumes stay there.
    pub async fn remove_state(&self, name: &str) -> Result<bool, RemoveError> {
        let first = self.all.first().expect("there is always a host");
        let paths = StatePaths::new(first.state_dir(), name);
        let on_host = StateRecord::load(&paths)
            .ok()
            .and_then(|r| r.on_host().map(String::from));
        let Some(host) = on_host else {
            return hypervisor::remove_state_dir(first.state_dir(), name);
        };
        match self.all.iter().find(|h| h.name().as_str() == host) {
            Some(h) => h.remove_state(name).await,
            None => {
                hypervisor::remove_state_dir(first.state_dir(), name)?;
                Err(RemoveError::StateHostGone {
                    node: name.to_string(),
                    host,
                })
            }
        }
    }

    /// Every host's domains with their states, all hosts asked at once.
    pub async fn domain_states(
        &self,
    ) -> Vec<(
        &Hypervisor,
        Result<Vec<(String, DomainState)>, LibvirtError>,
    )> {
        let asks = self
            .all
            .iter()
            .map(|h| async move { (h, h.virsh().domain_states().await) });
        futures_util::future::join_all(asks).await
    }

    /// The host that has a domain called `name` (asking every host at once), else the one its
    /// files name; `None` when neither. Hosts that do not answer are returned as errors.
    pub async fn locate(&self, name: &str) -> (Option<&Hypervisor>, Vec<(String, LibvirtError)>) {
        if !self.configured {
            return (self.all.first(), Vec::new());
        }
        let asks = self
            .all
            .iter()
            .map(|h| async move { (h, h.virsh().domain_state(name).await) });
        let mut errors = Vec::new();
        let mut found = None;
        for (h, state) in futures_util::future::join_all(asks).await {
            match state {
                Ok(Some(_)) if found.is_none() => found = Some(h),
                Ok(_) => {}
                Err(e) => errors.push((h.name().to_string(), e)),
            }
        }
        (found.or_else(|| self.recorded(name)), errors)
    }
}
