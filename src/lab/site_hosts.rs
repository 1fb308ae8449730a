//! The hosts of a lab (`lab up --hosts N`): their names, their addresses on the site LAN, the
//! veth pairs that put them on it, and the libvirt URI the site reaches each through.

use std::net::Ipv4Addr;

use super::state::PublicNet;
use super::{LabError, LabName};
use crate::plan::pool::Pools;

/// At most this many hosts in one lab: each is a libvirtd, a virtlogd, an sshd and a holder, and
/// the site's address counts down past them.
pub const MAX_HOSTS: u8 = 8;

/// The name of host `i` (from 1): `h1`, `h2`, ...
pub fn host_name(i: usize) -> String {
    format!("h{i}")
}

/// The libvirt URI of a host at `address`, as vnode's `[[hosts]]` take it.
pub fn host_uri(address: Ipv4Addr) -> String {
    format!("qemu+ssh://root@{address}/system")
}

/// Checks the number of hosts `lab up` was asked for.
pub fn check_count(lab: &LabName, count: u8) -> Result<(), LabError> {
    if count > MAX_HOSTS {
        return Err(LabError::TooManyHosts {
            lab: lab.clone(),
            count,
        });
    }
    Ok(())
}

/// What a lab with hosts runs besides the single-host lab's programs: each host's sshd, and
/// ssh-keygen and ssh for the keys and the site's side. Checked before anything is created, so
/// a machine without them gets the package to install, not a half-made lab.
pub fn check_tools(lab: &LabName) -> Result<(), LabError> {
    let on_path = |program: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
    };
    let missing = [
        (
            super::sshd::SSHD,
            "openssh-server",
            std::path::Path::new(super::sshd::SSHD).is_file(),
        ),
        ("ssh-keygen", "openssh-client", on_path("ssh-keygen")),
        ("ssh", "openssh-client", on_path("ssh")),
    ]
    .into_iter()
    .find(|(_, _, found)| !found);
    match missing {
        Some((program, package, _)) => Err(LabError::Missing {
            lab: lab.clone(),
            program: program.into(),
            package: package.into(),
        }),
        None => Ok(()),
    }
}

/// The addresses of `count` hosts on the default pool's public subnet: the highest ones below
/// the site's own address that no node of any pool is planned at (`.253`, `.252`, ... for the
/// default pool, whose nodes take `.100`-`.199`). The site DHCP hands out planned addresses only
/// (static ranges), so there is no dynamic range to avoid.
pub fn host_addresses(
    lab: &LabName,
    pools: &Pools,
    nets: &[PublicNet],
    count: usize,
) -> Result<Vec<Ipv4Addr>, LabError> {
    let default = &pools.default_pool().stem;
    let Some(net) = nets.iter().find(|n| &n.pool == default) else {
        return Err(LabError::NoHostAddress {
            lab: lab.clone(),
            count,
            reason: format!("the default pool '{default}' has no public subnet in the lab"),
        });
    };
    let taken = |a: &Ipv4Addr| {
        nets.iter().any(|n| n.host == *a)
            || pools.all().iter().any(|pool| {
                let address = |n| crate::plan::planned_node::NodeIdentity::new(pool, n).public_ip;
                matches!((address(pool.first), address(pool.last)), (Some(lo), Some(hi)) if lo <= *a && *a <= hi)
            })
    };
    let out: Vec<Ipv4Addr> = net
        .subnet
        .hosts()
        .rev()
        .filter(|a| *a < net.host && !taken(a))
        .take(count)
        .collect();
    if out.len() < count {
        return Err(LabError::NoHostAddress {
            lab: lab.clone(),
            count,
            reason: format!(
                "{} has only {} address(es) below the lab's {} that no node is planned at",
                net.subnet,
                out.len(),
                net.host
            ),
        });
    }
    Ok(out)
}

/// The veth pair that puts a host on the site's bridge `bridge` (the pools' `j`th bridge): the
/// end in the site (enslaved to the site's bridge) and the end in the host (enslaved to the
/// host's bridge of the same name). Interface names have at most 15 characters; a long bridge
/// name is replaced by its index.
pub fn veth_names(host: &str, bridge: &str, j: usize) -> (String, String) {
    const IFNAMSIZ: usize = 15;
    let name = |prefix: &str| {
        let long = format!("{prefix}-{bridge}");
        if long.len() <= IFNAMSIZ {
            long
        } else {
            format!("{prefix}-b{j}")
        }
    };
    (name(host), name("site"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lab::{lab_pools, public_nets};
    use std::path::Path;

    fn lab() -> LabName {
        LabName::new("t").unwrap()
    }

    fn addresses(pools: &Pools, count: usize) -> Result<Vec<String>, LabError> {
        let pools = lab_pools(pools, &lab()).unwrap();
        let nets = public_nets(&pools);
        host_addresses(&lab(), &pools, &nets, count)
            .map(|v| v.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn hosts_count_down_from_the_site_address() {
        let got = addresses(&Config::defaults().pools, 3).unwrap();
        assert_eq!(got, ["198.18.0.253", "198.18.0.252", "198.18.0.251"]);
        assert_eq!(
            host_uri("198.18.0.253".parse().unwrap()),
            "qemu+ssh://root@198.18.0.253/system"
        );
        assert_eq!(host_name(2), "h2");
    }

    #[test]
    fn hosts_skip_the_nodes_addresses() {
        // Nodes take .150-.249; the site is .254; hosts get .253-.250, then jump below .150.
        let text = "[[pool]]\nstem = \"a\"\nfirst = 0\nlast = 99\npublic_offset = 150\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        let got = addresses(&c.pools, 6).unwrap();
        assert_eq!(
            got,
            [
                "198.18.0.253",
                "198.18.0.252",
                "198.18.0.251",
                "198.18.0.250",
                "198.18.0.149",
                "198.18.0.148"
            ]
        );
    }

    #[test]
    fn a_full_subnet_fails_clearly() {
        // Nodes .1-.61, the site .62: no room for a host.
        let text = "[[pool]]\nstem = \"a\"\nfirst = 0\nlast = 60\npublic_offset = 1\n\
                    public_subnet = \"10.0.0.0/26\"\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        let e = addresses(&c.pools, 1).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/26 has only 0 address(es)"), "{e}");
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        assert_eq!(
            veth_names("h1", "br0", 0),
            ("h1-br0".to_string(), "site-br0".to_string())
        );
        let (site, host) = veth_names("h8", "a-long-bridge15", 3);
        assert_eq!((site.as_str(), host.as_str()), ("h8-b3", "site-b3"));
        for name in [site, host] {
            assert!(name.len() <= 15);
        }
    }

    #[test]
    fn too_many_hosts_are_refused() {
        assert!(check_count(&lab(), MAX_HOSTS).is_ok());
        let e = check_count(&lab(), 9).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::EXIT_BAD_INPUT);
        assert!(e.to_string().contains("at most 8"), "{e}");
    }
}
