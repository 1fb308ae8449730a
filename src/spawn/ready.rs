//! Readiness without fixed sleeps: the private lease, then sshd's banner, then a real login that
//! verifies the node's pinned host key, then cloud-init's end; then the facts of the node.
//! Every poll waits at most [`POLL`] between tries.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::libvirt::virsh::{Lease, Virsh};
use crate::mac::Mac;
use crate::ssh::{ClientKey, Session, SshError};

pub const POLL: Duration = Duration::from_millis(250);

/// One `virsh net-dhcp-leases` per network per poll interval, shared by every waiting node.
pub struct Leases {
    virsh: Virsh,
    cache: Mutex<HashMap<String, (Instant, Vec<Lease>)>>,
}

impl Leases {
    pub fn new(virsh: Virsh) -> Leases {
        Leases {
            virsh,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The network's leases, at most one poll interval old.
    pub async fn current(&self, net: &str) -> Result<Vec<Lease>, crate::libvirt::LibvirtError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, leases)) = cache.get(net)
            && at.elapsed() < POLL
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
    ) -> Result<Ipv4Addr, String> {
        loop {
            match self.current(net).await {
                Ok(leases) => {
                    if let Some(l) = leases.iter().find(|l| l.mac == mac && !before.contains(l)) {
                        return Ok(l.ip);
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
            if Instant::now() >= deadline {
                return Err(format!("no DHCP lease for {mac} on network '{net}'"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits until `addr` answers with an SSH banner.
pub async fn wait_banner(addr: SocketAddr, deadline: Instant) -> Result<(), String> {
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let attempt = async {
            let mut s = TcpStream::connect(addr).await?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(buf)) if &buf == b"SSH-" => return Ok(()),
            Ok(Ok(_)) => last = "something that is not sshd answers".into(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".into(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("sshd on {addr} did not answer ({last})"))
}

/// Logs in, retrying while the guest is still installing keys; a wrong host key ends it at once.
pub async fn wait_login(
    addr: SocketAddr,
    host_key: &str,
    key: &ClientKey,
    deadline: Instant,
) -> Result<Session, String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match Session::connect(&addr.to_string(), host_key, key, Duration::from_secs(10)).await {
            Ok(s) => return Ok(s),
            Err(e @ SshError::WrongHostKey { .. }) => return Err(e.to_string()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("could not log in: {last}"))
}

/// What vnode reports about a ready node, read from the node itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub cloud_init: String,
    pub pretty_name: Option<String>,
    pub hostname: String,
    /// IPv4 addresses by interface MAC.
    pub addresses: Vec<(Mac, Ipv4Addr)>,
}

/// Waits for cloud-init to finish, then reads os-release, hostname and addresses in one round trip.
pub const FACTS_COMMAND: &str = "cloud-init status --wait >/dev/null 2>&1; \
    echo '== cloud-init'; cloud-init status 2>&1; \
    echo '== os-release'; cat /etc/os-release; \
    echo '== hostname'; hostname; \
    echo '== ip'; ip -j addr show";

/// Just the addresses (to wait for a NIC whose DHCP answer comes later).
pub const ADDRESSES_COMMAND: &str = "echo '== ip'; ip -j addr show";

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
    Facts {
        cloud_init: section("cloud-init")
            .join(" ")
            .trim()
            .trim_start_matches("status:")
            .trim()
            .to_string(),
        pretty_name,
        hostname: section("hostname").join("").trim().to_string(),
        addresses: parse_ip_json(&section("ip").join("\n")),
    }
}

/// `ip -j addr show` → (MAC, address) pairs.
fn parse_ip_json(text: &str) -> Vec<(Mac, Ipv4Addr)> {
    #[derive(serde::Deserialize)]
    struct Link {
        address: Option<String>,
        #[serde(default)]
        addr_info: Vec<Addr>,
    }
    #[derive(serde::Deserialize)]
    struct Addr {
        family: Option<String>,
        local: Option<String>,
    }
    let links: Vec<Link> = serde_json::from_str(text.trim()).unwrap_or_default();
    links
        .into_iter()
        .filter_map(|l| Some((l.address?.parse::<Mac>().ok()?, l.addr_info)))
        .flat_map(|(mac, addrs)| {
            addrs
                .into_iter()
                .filter(|a| a.family.as_deref() == Some("inet"))
                .filter_map(move |a| Some((mac, a.local?.parse().ok()?)))
        })
        .collect()
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
        let out = "== cloud-init\nstatus: done\n== os-release\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                   == hostname\nvnode03\n== ip\n[{\"ifindex\":1,\"ifname\":\"lo\",\"address\":\"00:00:00:00:00:00\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"127.0.0.1\"}]},\
                   {\"ifindex\":2,\"ifname\":\"enp1s0\",\"address\":\"52:54:00:10:00:03\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"192.168.122.45\",\"prefixlen\":24}]},\
                   {\"ifindex\":3,\"ifname\":\"enp2s0\",\"address\":\"52:54:00:00:00:03\",\"addr_info\":[]}]\n";
        let f = parse_facts(out);
        assert_eq!(f.cloud_init, "done");
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
}
