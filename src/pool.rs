//! Pools of node names ("stems"): `vnode00..vnode99` by default, and any number of disjoint
//! pools with other prefixes, widths, MAC ids, networks and resources from the config file.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::mac::{MAX_MAC_ID, MAX_NUMBER, Mac, Nic};

/// What a node gets from the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    pub memory_mib: u32,
    pub vcpus: u32,
    pub disk_gib: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            memory_mib: 1024,
            vcpus: 1,
            disk_gib: 10,
        }
    }
}

/// One validated pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    /// The name prefix, e.g. `vnode`. Never ends with a digit, so a name splits unambiguously.
    pub stem: String,
    /// How many digits a node number has in a name (`vnode03`: 2).
    pub width: u8,
    pub first: u32,
    pub last: u32,
    /// The pool's digit in the MAC scheme (see [`crate::mac`]).
    pub mac_id: u8,
    /// Host bridge for the public NIC.
    pub bridge: String,
    /// libvirt network for the private NIC.
    pub network: String,
    /// DNS domain of the public names, if the site has one.
    pub domain: Option<String>,
    /// Public subnet, when vnode may propose fixed public addresses (and for the lab).
    pub public_subnet: Option<Ipv4Net>,
    /// Node N's proposed public address is the subnet's N + offset'th address.
    pub public_offset: u32,
    pub resources: Resources,
}

impl Pool {
    /// The default pool when no config exists.
    pub fn default_pool() -> Pool {
        Pool {
            stem: "vnode".into(),
            width: 2,
            first: 0,
            last: 99,
            mac_id: 0,
            bridge: "br0".into(),
            network: "default".into(),
            domain: None,
            public_subnet: None,
            public_offset: 100,
            resources: Resources::default(),
        }
    }

    pub fn contains(&self, number: u32) -> bool {
        (self.first..=self.last).contains(&number)
    }

    pub fn node(&self, number: u32) -> NodeName {
        NodeName {
            stem: self.stem.clone(),
            number,
            width: self.width,
        }
    }

    pub fn mac(&self, nic: Nic, number: u32) -> Mac {
        Mac::for_node(self.mac_id, nic, number)
    }

    /// The proposed public address of node `number`, if the pool has a public subnet.
    pub fn public_ip(&self, number: u32) -> Option<Ipv4Addr> {
        let net = self.public_subnet?;
        let host = u32::from(net.network()) + self.public_offset + number;
        Some(Ipv4Addr::from(host))
    }

    pub fn fqdn(&self, number: u32) -> Option<String> {
        self.domain
            .as_ref()
            .map(|d| format!("{}.{d}", self.node(number)))
    }

    /// Checks one pool on its own; `problems` are phrased to follow "pool STEM: ".
    pub fn check(&self) -> Result<(), String> {
        check_stem(&self.stem)?;
        if !(1..=4).contains(&self.width) {
            return Err(format!("width {} is not between 1 and 4", self.width));
        }
        if self.first > self.last {
            return Err(format!(
                "first ({}) is greater than last ({})",
                self.first, self.last
            ));
        }
        let widest = 10u32.pow(u32::from(self.width)) - 1;
        if self.last > widest.min(MAX_NUMBER) {
            return Err(format!(
                "last ({}) does not fit in {} digits (at most {})",
                self.last,
                self.width,
                widest.min(MAX_NUMBER)
            ));
        }
        if self.mac_id > MAX_MAC_ID {
            return Err(format!(
                "mac_id {} is not between 0 and {MAX_MAC_ID}",
                self.mac_id
            ));
        }
        if let Some(net) = self.public_subnet {
            let lowest = u64::from(u32::from(net.network())) + 1;
            let highest = u64::from(u32::from(net.broadcast())) - 1;
            let first =
                u64::from(u32::from(net.network())) + u64::from(self.public_offset + self.first);
            let last =
                u64::from(u32::from(net.network())) + u64::from(self.public_offset + self.last);
            if first < lowest || last > highest {
                return Err(format!(
                    "public_subnet {net} with public_offset {} cannot hold nodes {}..{} \
                     (addresses would run from offset {} to {}; the subnet has {} host addresses)",
                    self.public_offset,
                    self.first,
                    self.last,
                    self.public_offset + self.first,
                    self.public_offset + self.last,
                    highest + 1 - lowest
                ));
            }
        }
        if self.resources.memory_mib < 128
            || self.resources.vcpus == 0
            || self.resources.disk_gib == 0
        {
            return Err("resources need memory_mib >= 128, vcpus >= 1 and disk_gib >= 1".into());
        }
        Ok(())
    }
}

/// A stem: lowercase letters, digits and '-', starting with a letter and not ending with a digit.
pub fn check_stem(stem: &str) -> Result<(), String> {
    let ok_chars = stem
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = stem.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    // Neither `node1` nor `node1-`: the digits would be read as (part of) a number or range.
    let trimmed = stem.strip_suffix('-').unwrap_or(stem);
    let ends = trimmed.chars().last().is_some_and(|c| !c.is_ascii_digit());
    if stem.is_empty() || stem.len() > 40 || !ok_chars || !starts || !ends {
        return Err(format!(
            "stem '{stem}' must be 1-40 lowercase letters, digits or '-', start with a letter and \
             not end with a digit (or a digit and '-')"
        ));
    }
    Ok(())
}

/// A node's name: stem + number, zero-padded to the pool's width.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName {
    pub stem: String,
    pub number: u32,
    pub width: u8,
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{:0w$}",
            self.stem,
            self.number,
            w = usize::from(self.width)
        )
    }
}

impl Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// All pools of a config, validated to be disjoint in names and MACs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pools {
    pools: Vec<Pool>,
    /// Index of the pool that bare numbers (`3`) belong to.
    default: usize,
}

impl Pools {
    /// Validates pools together. Errors name both pools when they overlap.
    pub fn new(pools: Vec<Pool>, default_stem: Option<&str>) -> Result<Pools, String> {
        if pools.is_empty() {
            return Err("no pools are defined".into());
        }
        for p in &pools {
            p.check().map_err(|e| format!("pool '{}': {e}", p.stem))?;
        }
        for (i, a) in pools.iter().enumerate() {
            for b in &pools[i + 1..] {
                if a.stem == b.stem {
                    return Err(format!(
                        "pools '{}' and '{}' have the same stem, so their names overlap",
                        a.stem, b.stem
                    ));
                }
                if a.mac_id == b.mac_id {
                    return Err(format!(
                        "pools '{}' and '{}' both use mac_id {}, so their MACs overlap; give each \
                         pool its own mac_id (0-9)",
                        a.stem, b.stem, a.mac_id
                    ));
                }
                if let (Some(na), Some(nb)) = (a.public_subnet, b.public_subnet) {
                    let (a0, a1) = (a.public_ip(a.first).unwrap(), a.public_ip(a.last).unwrap());
                    let (b0, b1) = (b.public_ip(b.first).unwrap(), b.public_ip(b.last).unwrap());
                    if a0 <= b1 && b0 <= a1 {
                        return Err(format!(
                            "pools '{}' ({na}) and '{}' ({nb}) propose overlapping public addresses \
                             ({a0}-{a1} and {b0}-{b1})",
                            a.stem, b.stem
                        ));
                    }
                }
            }
        }
        let default = match default_stem {
            None => 0,
            Some(stem) => pools.iter().position(|p| p.stem == stem).ok_or_else(|| {
                format!(
                    "default_pool '{stem}' is not one of the pools ({})",
                    stems(&pools)
                )
            })?,
        };
        Ok(Pools { pools, default })
    }

    pub fn all(&self) -> &[Pool] {
        &self.pools
    }

    pub fn default_pool(&self) -> &Pool {
        &self.pools[self.default]
    }

    pub fn by_stem(&self, stem: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.stem == stem)
    }

    /// "vnode, lab" — for messages that list what would have been valid.
    pub fn stems(&self) -> String {
        stems(&self.pools)
    }
}

fn stems(pools: &[Pool]) -> String {
    pools
        .iter()
        .map(|p| p.stem.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(stem: &str, mac_id: u8) -> Pool {
        Pool {
            stem: stem.into(),
            mac_id,
            ..Pool::default_pool()
        }
    }

    #[test]
    fn names_are_padded_to_the_width() {
        let p = Pool::default_pool();
        assert_eq!(p.node(3).to_string(), "vnode03");
        assert_eq!(
            Pool {
                width: 3,
                last: 999,
                ..p.clone()
            }
            .node(3)
            .to_string(),
            "vnode003"
        );
    }

    #[test]
    fn public_addresses_follow_the_offset() {
        let p = Pool {
            public_subnet: Some("198.18.0.0/24".parse().unwrap()),
            ..Pool::default_pool()
        };
        assert_eq!(p.public_ip(3), Some("198.18.0.103".parse().unwrap()));
        assert!(p.check().is_ok());
        let tight = Pool {
            public_offset: 200,
            ..p
        };
        assert!(
            tight
                .check()
                .unwrap_err()
                .contains("cannot hold nodes 0..99")
        );
    }

    #[test]
    fn overlapping_pools_are_rejected_naming_both() {
        let e = Pools::new(vec![pool("vnode", 0), pool("lab", 0)], None).unwrap_err();
        assert!(
            e.contains("'vnode' and 'lab'") && e.contains("mac_id 0"),
            "{e}"
        );
        let e = Pools::new(vec![pool("lab", 1), pool("lab", 2)], None).unwrap_err();
        assert!(e.contains("same stem"), "{e}");
        let net = Some("198.18.0.0/24".parse().unwrap());
        let a = Pool {
            public_subnet: net,
            ..pool("a", 1)
        };
        let b = Pool {
            public_subnet: net,
            public_offset: 150,
            ..pool("b", 2)
        };
        let e = Pools::new(vec![a, b], None).unwrap_err();
        assert!(e.contains("overlapping public addresses"), "{e}");
    }

    #[test]
    fn bad_stems_and_ranges_are_rejected() {
        for stem in ["", "Vnode", "node1", "node1-", "1node", "no de", "nöde"] {
            assert!(check_stem(stem).is_err(), "{stem}");
        }
        assert!(check_stem("k8s-node").is_ok());
        assert!(check_stem("web-").is_ok());
        assert!(
            Pool {
                last: 100,
                ..Pool::default_pool()
            }
            .check()
            .is_err()
        );
        assert!(
            Pool {
                first: 5,
                last: 4,
                ..Pool::default_pool()
            }
            .check()
            .is_err()
        );
        assert!(
            Pool {
                width: 5,
                last: 10,
                ..Pool::default_pool()
            }
            .check()
            .is_err()
        );
        assert!(
            Pool {
                mac_id: 10,
                ..Pool::default_pool()
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn default_pool_is_chosen_by_stem() {
        let pools = Pools::new(vec![pool("vnode", 0), pool("lab", 1)], Some("lab")).unwrap();
        assert_eq!(pools.default_pool().stem, "lab");
        assert!(Pools::new(vec![pool("vnode", 0)], Some("nope")).is_err());
    }
}
