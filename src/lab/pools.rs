//! The pools as the lab serves them: every pool gets a public subnet and a domain, so that
//! `vnode --lab plan` shows exactly the addresses the lab's DHCP hands out.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::state::PublicNet;
use super::{LabError, LabName};
use crate::plan::pool::{Pool, Pools};

/// Where the lab's public subnets come from: 198.18.0.0/15, reserved for benchmarking
/// (RFC 2544), so it collides with no real network.
pub const LAB_SUPERNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15);

/// `pools` with a public subnet for each pool that has none and the domain `<lab>.test` for each
/// pool without a domain. Subnets are handed out in config order from [`LAB_SUPERNET`]: with
/// pools that fit a /24 (the default pool does), pool i gets 198.18.i.0/24; a pool whose
/// numbers and offset need more gets a larger block, and blocks a configured subnet occupies are
/// skipped. Applying it again changes nothing.
pub fn lab_pools(pools: &Pools, lab: &LabName) -> Result<Pools, LabError> {
    let configured: Vec<Ipv4Net> = pools.all().iter().filter_map(|p| p.public_subnet).collect();
    let mut next = u32::from(LAB_SUPERNET.network());
    let end = u64::from(u32::from(LAB_SUPERNET.broadcast())) + 1;
    let mut out = Vec::new();
    for pool in pools.all() {
        let mut pool = pool.clone();
        if pool.public_subnet.is_none() {
            let size = block_size(&pool);
            let subnet = loop {
                let start = next.next_multiple_of(size);
                if u64::from(start) + u64::from(size) > end {
                    return Err(LabError::NoSubnet {
                        lab: lab.clone(),
                        pool: pool.stem.clone(),
                    });
                }
                let prefix = 32 - size.trailing_zeros() as u8;
                let net = Ipv4Net::new(Ipv4Addr::from(start), prefix).expect("prefix <= 32");
                next = start + size;
                if !configured
                    .iter()
                    .any(|c| c.contains(&net.network()) || net.contains(&c.network()))
                {
                    break net;
                }
            };
            pool.public_subnet = Some(subnet);
        }
        if pool.domain.is_none() {
            pool.domain = Some(lab.domain());
        }
        out.push(pool);
    }
    let default = pools.default_pool().stem.clone();
    Pools::new(out, Some(&default)).map_err(|e| LabError::Pools {
        lab: lab.clone(),
        message: e.to_string(),
    })
}

/// The smallest power-of-two block (at least a /24) holding the network address, the pool's
/// nodes at their offset, the lab's own address and the broadcast address.
fn block_size(pool: &Pool) -> u32 {
    let needed = u64::from(pool.public_offset) + u64::from(pool.last) + 3;
    needed.next_power_of_two().max(256) as u32
}

/// The lab's side of each pool's public subnet: the highest host address no node of the pool
/// uses (normally `.254` of a /24). None when the pool has no subnet or no free address.
pub fn public_nets(pools: &Pools) -> Vec<PublicNet> {
    pools
        .all()
        .iter()
        .filter_map(|pool| {
            let subnet = pool.public_subnet?;
            let address = |n| crate::plan::planned_node::NodeIdentity::new(pool, n).public_ip;
            let (lo, hi) = (address(pool.first)?, address(pool.last)?);
            let host = subnet.hosts().rev().find(|a| *a < lo || *a > hi)?;
            Some(PublicNet {
                pool: pool.stem.clone(),
                bridge: pool.bridge.clone(),
                subnet,
                host,
                domain: pool.domain.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EXAMPLE};
    use std::path::Path;

    fn lab() -> LabName {
        LabName::new("t").unwrap()
    }

    #[test]
    fn the_default_pool_gets_198_18_0_0_24() {
        let pools = lab_pools(&Config::defaults().pools, &lab()).unwrap();
        let p = pools.default_pool();
        assert_eq!(p.public_subnet, Some("198.18.0.0/24".parse().unwrap()));
        assert_eq!(p.domain.as_deref(), Some("t.test"));
        assert_eq!(
            crate::plan::planned_node::NodeIdentity::new(p, 3).public_ip,
            Some(Ipv4Addr::new(198, 18, 0, 103))
        );
        let nets = public_nets(&pools);
        assert_eq!(nets[0].host_cidr(), "198.18.0.254/24");
        assert_eq!(lab_pools(&pools, &lab()).unwrap(), pools, "idempotent");
    }

    #[test]
    fn pools_get_consecutive_blocks_and_big_pools_bigger_ones() {
        // The example: "vnode" (0-99) and "big" (0-199, offset 100: needs 302 addresses).
        let c = Config::parse(Path::new("example"), EXAMPLE).unwrap();
        let pools = lab_pools(&c.pools, &lab()).unwrap();
        let subnets: Vec<String> = pools
            .all()
            .iter()
            .map(|p| p.public_subnet.unwrap().to_string())
            .collect();
        assert_eq!(subnets, ["198.18.0.0/24", "198.18.2.0/23"]);
        let hosts: Vec<String> = public_nets(&pools)
            .iter()
            .map(|n| n.host.to_string())
            .collect();
        assert_eq!(hosts, ["198.18.0.254", "198.18.3.254"]);
    }

    #[test]
    fn configured_subnets_and_domains_are_kept_and_avoided() {
        let text = "[[pool]]\nstem = \"a\"\n[[pool]]\nstem = \"b\"\ndomain = \"b.example\"\n\
                    public_subnet = \"198.18.0.0/24\"\npublic_offset = 10\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        let pools = lab_pools(&c.pools, &lab()).unwrap();
        let [a, b] = pools.all() else { panic!() };
        assert_eq!(a.public_subnet, Some("198.18.1.0/24".parse().unwrap()));
        assert_eq!(a.domain.as_deref(), Some("t.test"));
        assert_eq!(b.public_subnet, Some("198.18.0.0/24".parse().unwrap()));
        assert_eq!(b.domain.as_deref(), Some("b.example"));
    }

    #[test]
    fn the_host_address_avoids_the_nodes() {
        let text = "[[pool]]\nstem = \"a\"\npublic_subnet = \"10.0.0.0/24\"\npublic_offset = 155\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        // Nodes take .155-.254, so the lab's side is the highest free address below them.
        assert_eq!(public_nets(&c.pools)[0].host, Ipv4Addr::new(10, 0, 0, 154));
    }
}
