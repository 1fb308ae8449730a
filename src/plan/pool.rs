//! Pools of node names ("stems"): `vnode00..vnode99` by default, and any number of disjoint
//! pools with other prefixes, widths, MAC ids, networks and resources from the config file.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::plan::mac::{MAX_MAC_ID, MAX_NUMBER, Mac, Nic};
use crate::text::names::{self, MAX_DNS_NAME, NameError};

/// The range a number of the config must lie in, and why, when the bound is not obvious.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub min: i64,
    pub max: i64,
    pub note: &'static str,
}

impl Limit {
    pub const fn new(min: i64, max: i64, note: &'static str) -> Limit {
        Limit { min, max, note }
    }

    /// `key`'s `value` within the limit, or the error that says the allowed range.
    pub fn check(&self, key: &'static str, value: i64) -> Result<(), OutOfRange> {
        if (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        Err(OutOfRange {
            key,
            value,
            limit: *self,
        })
    }
}

/// A number of the config outside its [`Limit`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key} {value} is not between {} and {}{}", .limit.min, .limit.max, .limit.note)]
pub struct OutOfRange {
    pub key: &'static str,
    pub value: i64,
    pub limit: Limit,
}

pub const WIDTH: Limit = Limit::new(1, 4, " (digits of a node number)");
pub const NUMBER: Limit = Limit::new(0, MAX_NUMBER as i64, " (the MAC scheme's 4 digits)");
pub const MAC_ID: Limit = Limit::new(0, MAX_MAC_ID as i64, " (the MAC scheme's one digit)");
/// No subnet a pool could use holds more than a /8 (2^24 addresses), so a larger offset is a
/// typo; bounding it also keeps every address computation far from overflowing.
pub const PUBLIC_OFFSET: Limit = Limit::new(0, (1 << 24) - 1, " (the size of a /8)");
pub const MEMORY_MIB: Limit = Limit::new(128, 16 << 20, " MiB (16 TiB)");
pub const VCPUS: Limit = Limit::new(1, 4096, "");
pub const DISK_GIB: Limit = Limit::new(1, 64 << 10, " GiB (64 TiB)");

/// What is wrong with one pool on its own; [`PoolProblem::field`] is the key it blames.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolProblem {
    #[error(transparent)]
    Stem(#[from] StemError),
    /// A number outside its limit; its key is the field.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    #[error("first ({first}) is greater than last ({last})")]
    FirstAfterLast { first: u32, last: u32 },
    #[error("last ({last}) does not fit in {width} digits (at most {widest})")]
    LastTooWide { last: u32, width: u8, widest: u32 },
    #[error(transparent)]
    Bridge(NameError),
    #[error(transparent)]
    Network(NameError),
    #[error(transparent)]
    Domain(NameError),
    #[error(
        "{} is too long for the pool's names: {last_node}.DOMAIN would be {longest} bytes, \
         more than DNS's {MAX_DNS_NAME}",
        names::quoted(.domain)
    )]
    DomainTooLong {
        domain: String,
        /// The pool's longest name.
        last_node: NodeName,
        longest: usize,
    },
    #[error("public_subnet {net} has no host addresses: use a /30 or a larger subnet")]
    NoHostAddresses { net: Ipv4Net },
    #[error(
        "public_subnet {net} with public_offset {offset} cannot hold nodes {first}..{last}: \
         their addresses would be at offsets {low}..{high} in the subnet, whose host addresses \
         are at offsets 1..{hosts} (choose public_offset + first >= 1 and public_offset + last \
         <= {hosts})"
    )]
    SubnetTooSmall {
        net: Ipv4Net,
        offset: u32,
        first: u32,
        last: u32,
        /// The offsets in the subnet of the first and last number's addresses.
        low: u64,
        high: u64,
        /// How many host addresses the subnet has.
        hosts: u64,
    },
}

impl PoolProblem {
    /// The pool's key the problem is about.
    pub fn field(&self) -> &'static str {
        match self {
            PoolProblem::Stem(_) => "stem",
            PoolProblem::OutOfRange(e) => e.key,
            PoolProblem::FirstAfterLast { .. } => "first",
            PoolProblem::LastTooWide { .. } => "last",
            PoolProblem::Bridge(_) => "bridge",
            PoolProblem::Network(_) => "network",
            PoolProblem::Domain(_) | PoolProblem::DomainTooLong { .. } => "domain",
            PoolProblem::NoHostAddresses { .. } | PoolProblem::SubnetTooSmall { .. } => {
                "public_offset"
            }
        }
    }
}

/// What a node gets from the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    /// The pool's digit in the MAC scheme (see [`crate::plan::mac`]).
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
    /// The `[[hosts]]` this pool's nodes may be placed on; empty: any host.
    pub hosts: Vec<String>,
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
            hosts: Vec::new(),
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

    /// The proposed public address of node `number`, if the pool has a public subnet and the
    /// address is a host address of it (always, for a checked pool's numbers).
    pub fn public_ip(&self, number: u32) -> Option<Ipv4Addr> {
        let net = self.public_subnet?;
        let host = u32::from(net.network())
            .checked_add(self.public_offset)?
            .checked_add(number)?;
        let addr = Ipv4Addr::from(host);
        (net.contains(&addr) && addr != net.network() && addr != net.broadcast()).then_some(addr)
    }

    /// The addresses a checked pool with a public subnet proposes.
    fn public_range(&self) -> Option<PublicRange> {
        let subnet = self.public_subnet?;
        let ip = |n| {
            self.public_ip(n)
                .expect("checked pools' numbers have addresses")
        };
        Some(PublicRange {
            stem: self.stem.clone(),
            subnet,
            first: ip(self.first),
            last: ip(self.last),
        })
    }

    pub fn fqdn(&self, number: u32) -> Option<String> {
        self.domain
            .as_ref()
            .map(|d| format!("{}.{d}", self.node(number)))
    }

    /// Checks one pool on its own; problems are phrased to follow "pool STEM: ".
    pub fn check(&self) -> Result<(), PoolProblem> {
        check_stem(&self.stem)?;
        WIDTH.check("width", self.width.into())?;
        NUMBER.check("first", self.first.into())?;
        NUMBER.check("last", self.last.into())?;
        if self.first > self.last {
            return Err(PoolProblem::FirstAfterLast {
                first: self.first,
                last: self.last,
            });
        }
        let widest = 10u32.pow(u32::from(self.width)) - 1;
        if self.last > widest {
            return Err(PoolProblem::LastTooWide {
                last: self.last,
                width: self.width,
                widest,
            });
        }
        MAC_ID.check("mac_id", self.mac_id.into())?;
        names::check_interface_name(&self.bridge).map_err(PoolProblem::Bridge)?;
        names::check_interface_name(&self.network).map_err(PoolProblem::Network)?;
        if let Some(domain) = &self.domain {
            names::check_domain(domain).map_err(PoolProblem::Domain)?;
            let last_node = self.node(self.last);
            let longest = last_node.to_string().len() + 1 + domain.len();
            if longest > MAX_DNS_NAME {
                return Err(PoolProblem::DomainTooLong {
                    domain: domain.clone(),
                    last_node,
                    longest,
                });
            }
        }
        PUBLIC_OFFSET.check("public_offset", self.public_offset.into())?;
        if let Some(net) = self.public_subnet {
            self.check_subnet_holds_numbers(net)?;
        }
        let r = self.resources;
        MEMORY_MIB.check("memory_mib", r.memory_mib.into())?;
        VCPUS.check("vcpus", r.vcpus.into())?;
        DISK_GIB.check("disk_gib", r.disk_gib.into())?;
        Ok(())
    }

    /// Every number's address (offset `public_offset + number` in the subnet) must be a host
    /// address: neither the network nor the broadcast address, nor beyond. Computed in u64, where
    /// the sum of two u32 cannot overflow.
    fn check_subnet_holds_numbers(&self, net: Ipv4Net) -> Result<(), PoolProblem> {
        let hosts = (1u64 << (32 - net.prefix_len())).saturating_sub(2);
        if hosts == 0 {
            return Err(PoolProblem::NoHostAddresses { net });
        }
        let low = u64::from(self.public_offset) + u64::from(self.first);
        let high = u64::from(self.public_offset) + u64::from(self.last);
        if low >= 1 && high <= hosts {
            return Ok(());
        }
        Err(PoolProblem::SubnetTooSmall {
            net,
            offset: self.public_offset,
            first: self.first,
            last: self.last,
            low,
            high,
            hosts,
        })
    }
}

/// A stem that cannot name a pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "stem {} must be 1-40 lowercase letters, digits or '-', start with a letter and not end \
     with a digit (or a digit and '-')",
    names::quoted(.stem)
)]
pub struct StemError {
    pub stem: String,
}

/// A stem: lowercase letters, digits and '-', starting with a letter and not ending with a digit.
pub fn check_stem(stem: &str) -> Result<(), StemError> {
    let ok_chars = stem
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = stem.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    // Neither `node1` nor `node1-`: the digits would be read as (part of) a number or range.
    let trimmed = stem.strip_suffix('-').unwrap_or(stem);
    let ends = trimmed.chars().last().is_some_and(|c| !c.is_ascii_digit());
    if stem.is_empty() || stem.len() > 40 || !ok_chars || !starts || !ends {
        return Err(StemError { stem: stem.into() });
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

/// Why a set of pools is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    #[error("no pools are defined")]
    Empty,
    /// Pool `index` is invalid on its own.
    #[error("pool '{stem}': {problem}")]
    Invalid {
        index: usize,
        stem: String,
        problem: PoolProblem,
    },
    /// Pool `index` has the stem of the `earlier` pool.
    #[error("pools '{earlier}' and '{stem}' have the same stem, so their names overlap")]
    SameStem {
        index: usize,
        earlier: String,
        stem: String,
    },
    /// Pool `index` has the MAC id of the `earlier` pool.
    #[error(
        "pools '{earlier}' and '{stem}' both use mac_id {mac_id}, so their MACs overlap; give \
         each pool its own mac_id (0-9)"
    )]
    SameMacId {
        index: usize,
        earlier: String,
        stem: String,
        mac_id: u8,
    },
    /// Pool `index` proposes public addresses that the `earlier` pool proposes too.
    #[error(
        "pools '{}' ({}) and '{}' ({}) propose overlapping public addresses ({}-{} and {}-{})",
        .earlier.stem, .earlier.subnet, .pool.stem, .pool.subnet,
        .earlier.first, .earlier.last, .pool.first, .pool.last
    )]
    OverlappingAddresses {
        index: usize,
        earlier: PublicRange,
        pool: PublicRange,
    },
    #[error("default_pool {} is not one of the pools ({stems})", names::quoted(.stem))]
    UnknownDefault { stem: String, stems: String },
}

/// A pool's public subnet and the first and last address its numbers propose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicRange {
    pub stem: String,
    pub subnet: Ipv4Net,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl PoolsError {
    /// The pool the problem is blamed on and its key, when it is one pool's.
    pub fn blame(&self) -> Option<(usize, &'static str)> {
        match self {
            PoolsError::Invalid { index, problem, .. } => Some((*index, problem.field())),
            PoolsError::SameStem { index, .. } => Some((*index, "stem")),
            PoolsError::SameMacId { index, .. } => Some((*index, "mac_id")),
            PoolsError::OverlappingAddresses { index, .. } => Some((*index, "public_subnet")),
            PoolsError::Empty | PoolsError::UnknownDefault { .. } => None,
        }
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
    pub fn new(pools: Vec<Pool>, default_stem: Option<&str>) -> Result<Pools, PoolsError> {
        if pools.is_empty() {
            return Err(PoolsError::Empty);
        }
        for (index, p) in pools.iter().enumerate() {
            p.check().map_err(|problem| PoolsError::Invalid {
                index,
                stem: p.stem.clone(),
                problem,
            })?;
        }
        for (index, b) in pools.iter().enumerate() {
            for a in &pools[..index] {
                clash(index, a, b)?;
            }
        }
        let default = match default_stem {
            None => 0,
            Some(stem) => pools.iter().position(|p| p.stem == stem).ok_or_else(|| {
                PoolsError::UnknownDefault {
                    stem: stem.into(),
                    stems: stems(&pools),
                }
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

/// Whether pool `b` (at `index`) overlaps the earlier pool `a`: in names, MACs or addresses.
fn clash(index: usize, a: &Pool, b: &Pool) -> Result<(), PoolsError> {
    if a.stem == b.stem {
        return Err(PoolsError::SameStem {
            index,
            earlier: a.stem.clone(),
            stem: b.stem.clone(),
        });
    }
    if a.mac_id == b.mac_id {
        return Err(PoolsError::SameMacId {
            index,
            earlier: a.stem.clone(),
            stem: b.stem.clone(),
            mac_id: a.mac_id,
        });
    }
    if let (Some(ra), Some(rb)) = (a.public_range(), b.public_range())
        && ra.first <= rb.last
        && rb.first <= ra.last
    {
        return Err(PoolsError::OverlappingAddresses {
            index,
            earlier: ra,
            pool: rb,
        });
    }
    Ok(())
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
        let e = tight.check().unwrap_err();
        assert_eq!(e.field(), "public_offset");
        assert!(e.to_string().contains("cannot hold nodes 0..99"), "{e}");
    }

    #[test]
    fn public_addresses_never_overflow() {
        let p = Pool {
            public_subnet: Some("255.255.255.0/24".parse().unwrap()),
            public_offset: u32::MAX,
            last: MAX_NUMBER,
            width: 4,
            ..Pool::default_pool()
        };
        assert_eq!(p.public_ip(MAX_NUMBER), None);
        assert_eq!(p.public_ip(u32::MAX), None);
        assert_eq!(p.check().unwrap_err().field(), "public_offset");
        // The last host address is the highest a number may get; the broadcast address is not.
        let top = Pool {
            public_offset: 253,
            last: 1,
            ..p.clone()
        };
        assert_eq!(top.public_ip(1), Some(Ipv4Addr::new(255, 255, 255, 254)));
        assert_eq!(top.public_ip(2), None);
        assert!(top.check().is_ok());
        let no_hosts = Pool {
            public_subnet: Some("198.18.0.0/31".parse().unwrap()),
            ..top
        };
        assert!(
            no_hosts
                .check()
                .unwrap_err()
                .to_string()
                .contains("no host addresses")
        );
    }

    #[test]
    fn overlapping_pools_are_rejected_naming_both() {
        let e = Pools::new(vec![pool("vnode", 0), pool("lab", 0)], None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'vnode' and 'lab'") && e.contains("mac_id 0"),
            "{e}"
        );
        let e = Pools::new(vec![pool("lab", 1), pool("lab", 2)], None)
            .unwrap_err()
            .to_string();
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
        let e = Pools::new(vec![a, b], None).unwrap_err().to_string();
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
