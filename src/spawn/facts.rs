//! What vnode reports about a ready node, read from the node itself in one round trip.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::mac::Mac;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub pretty_name: Option<String>,
    pub hostname: String,
    /// IPv4 addresses by interface MAC.
    pub addresses: Vec<(Mac, Ipv4Addr)>,
}

/// Waits for cloud-init to finish and prints its status (one line, `status: done`).
pub const CLOUD_INIT_COMMAND: &str = "cloud-init status --wait >/dev/null 2>&1; cloud-init status 2>&1";

/// os-release, hostname and addresses, in sections.
pub const FACTS_COMMAND: &str = "echo '== os-release'; cat /etc/os-release; \
    echo '== hostname'; hostname; \
    echo '== ip'; ip -j addr show";

/// Just the addresses (to wait for a NIC whose DHCP answer comes later).
pub const ADDRESSES_COMMAND: &str = "echo '== ip'; ip -j addr show";

/// `status: done` → `done`.
pub fn parse_cloud_init_status(output: &str) -> String {
    output
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("status:")
        .trim()
        .to_string()
}

pub fn parse_facts(output: &str) -> Facts {
    let mut sections: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut current = "";
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = name.trim();
        } else {
            sections.entry(current).or_default().push(line);
        }
    }
    let section = |n: &str| sections.get(n).cloned().unwrap_or_default();
    let pretty_name = section("os-release").iter().find_map(|l| {
        let v = l.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim_matches('"').to_string())
    });
    let links = crate::ip_json::parse(&section("ip").join("\n")).unwrap_or_default();
    Facts {
        pretty_name,
        hostname: section("hostname").join("").trim().to_string(),
        addresses: crate::ip_json::ipv4_by_mac(&links),
    }
}

impl Facts {
    pub fn address_of(&self, mac: Mac) -> Option<Ipv4Addr> {
        self.addresses
            .iter()
            .find(|(m, _)| *m == mac)
            .map(|(_, ip)| *ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_parsed() {
        let out = "== os-release\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                   == hostname\nvnode03\n== ip\n[{\"ifindex\":1,\"ifname\":\"lo\",\"address\":\"00:00:00:00:00:00\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"127.0.0.1\"}]},\
                   {\"ifindex\":2,\"ifname\":\"enp1s0\",\"address\":\"52:54:00:10:00:03\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"192.168.122.45\",\"prefixlen\":24}]},\
                   {\"ifindex\":3,\"ifname\":\"enp2s0\",\"address\":\"52:54:00:00:00:03\",\"addr_info\":[]}]\n";
        let f = parse_facts(out);
        assert_eq!(
            f.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(f.hostname, "vnode03");
        let private: Mac = "52:54:00:10:00:03".parse().unwrap();
        let public: Mac = "52:54:00:00:00:03".parse().unwrap();
        assert_eq!(
            f.address_of(private),
            Some(Ipv4Addr::new(192, 168, 122, 45))
        );
        assert_eq!(f.address_of(public), None);
        assert_eq!(parse_facts("garbage"), Facts::default());
    }

    #[test]
    fn cloud_init_status_is_read() {
        assert_eq!(parse_cloud_init_status("status: done\n"), "done");
        assert_eq!(parse_cloud_init_status("status: error\n"), "error");
        assert_eq!(parse_cloud_init_status(""), "");
    }
}
