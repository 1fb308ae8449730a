//! The one model of `ip -j addr show` output, read wherever vnode looks at interfaces: in a guest
//! (its NICs by MAC), in the lab (its bridges), on the host (the uplink a bridge takes over).

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use crate::plan::mac::Mac;

/// One interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Link {
    #[serde(default)]
    pub ifname: String,
    /// The link-layer address (a MAC for Ethernet, absent for some tunnels).
    pub address: Option<String>,
    pub operstate: Option<String>,
    #[serde(default)]
    pub addr_info: Vec<AddrInfo>,
}

/// One address of an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AddrInfo {
    /// `inet` or `inet6`.
    pub family: Option<String>,
    pub local: Option<IpAddr>,
    pub prefixlen: Option<u8>,
    /// `global`, `link`, `host`.
    pub scope: Option<String>,
}

/// Parses `ip -j addr show`; anything that is not its JSON is an error.
pub fn parse(text: &str) -> Result<Vec<Link>, serde_json::Error> {
    serde_json::from_str(text.trim())
}

impl Link {
    pub fn mac(&self) -> Option<Mac> {
        self.address.as_deref()?.parse().ok()
    }

    /// The interface's IPv4 addresses.
    pub fn ipv4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addr_info.iter().filter_map(|a| match a.local {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        })
    }

    /// Addresses of global scope as `ADDR/PREFIX`.
    pub fn global_cidrs(&self) -> Vec<String> {
        self.addr_info
            .iter()
            .filter(|a| a.scope.as_deref() == Some("global"))
            .filter_map(|a| Some(format!("{}/{}", a.local?, a.prefixlen?)))
            .collect()
    }

    /// Every address as `ADDR/PREFIX`.
    pub fn cidrs(&self) -> Vec<String> {
        self.addr_info
            .iter()
            .filter_map(|a| Some(format!("{}/{}", a.local?, a.prefixlen?)))
            .collect()
    }
}

/// (MAC, IPv4 address) of every interface that has both.
pub fn ipv4_by_mac(links: &[Link]) -> Vec<(Mac, Ipv4Addr)> {
    links
        .iter()
        .filter_map(|l| Some((l.mac()?, l)))
        .flat_map(|(mac, l)| l.ipv4().map(move |ip| (mac, ip)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[{"ifindex":1,"ifname":"lo","operstate":"UNKNOWN","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
        {"ifindex":2,"ifname":"private","operstate":"UP","address":"52:54:00:10:00:03","addr_info":[{"family":"inet","local":"192.168.122.45","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]},
        {"ifindex":3,"ifname":"public","address":"52:54:00:00:00:03","addr_info":[]},
        {"ifindex":4,"ifname":"wg0","addr_info":[{"family":"inet","local":"10.9.0.1","prefixlen":24,"scope":"global"}]}]"#;

    #[test]
    fn reads_interfaces_macs_and_addresses() {
        let links = parse(SAMPLE).unwrap();
        assert_eq!(links.len(), 4);
        assert_eq!(links[1].ifname, "private");
        assert_eq!(links[1].operstate.as_deref(), Some("UP"));
        assert_eq!(links[1].global_cidrs(), ["192.168.122.45/24"]);
        assert_eq!(links[1].cidrs(), ["192.168.122.45/24", "fe80::1/64"]);
        let pairs = ipv4_by_mac(&links);
        let private: Mac = "52:54:00:10:00:03".parse().unwrap();
        assert!(pairs.contains(&(private, Ipv4Addr::new(192, 168, 122, 45))));
        // No MAC, no pair; no address, no pair.
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert!(parse("garbage").is_err());
    }
}
