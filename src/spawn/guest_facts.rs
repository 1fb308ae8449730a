//! What vnode reports about a ready node, read from the node itself in one round trip.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::plan::mac::Mac;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub pretty_name: Option<String>,
    pub hostname: String,
    /// IPv4 addresses by interface MAC.
    pub addresses: Vec<(Mac, Ipv4Addr)>,
}

/// Waits for cloud-init's end and prints its result. cloud-init writes `/run/cloud-init/result.json`
/// (atomically) when its last stage is over; polling for the file in the guest's shell costs a
/// `sleep` every 0.25 s (seen within that, well inside the 0.5 s asked for, at 4 forks a second
/// in a guest whose boot shares the CPU), where `cloud-init status --wait` starts a Python
/// interpreter (seconds under emulation) and polls every 0.25 s.
pub const CLOUD_INIT_COMMAND: &str =
    "f=/run/cloud-init/result.json; while [ ! -s $f ]; do sleep 0.25; done; cat $f";

/// os-release, hostname and addresses, in sections.
pub const FACTS_COMMAND: &str = "echo '== os-release'; cat /etc/os-release; \
    echo '== hostname'; hostname; \
    echo '== ip'; ip -j addr show";

/// Just the addresses (to wait for a NIC whose DHCP answer comes later).
pub const ADDRESSES_COMMAND: &str = "echo '== ip'; ip -j addr show";

/// Text that is not cloud-init's `result.json`.
#[derive(Debug, thiserror::Error)]
#[error("cloud-init's result.json is not what cloud-init writes ({0})")]
pub struct NotResultJson(#[source] serde_json::Error);

/// cloud-init's `result.json`: `{"v1": {"datasource": "...", "errors": [...]}}`. The errors, or
/// why the text is not that file.
pub fn parse_cloud_init_result(output: &str) -> Result<Vec<String>, NotResultJson> {
    #[derive(serde::Deserialize)]
    struct Result1 {
        v1: V1,
    }
    #[derive(serde::Deserialize)]
    struct V1 {
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    let r: Result1 = serde_json::from_str(output.trim()).map_err(NotResultJson)?;
    Ok(r.v1
        .errors
        .into_iter()
        .map(|e| match e {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
        .collect())
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
    let links = crate::process::ip_json::parse(&section("ip").join("\n")).unwrap_or_default();
    Facts {
        pretty_name,
        hostname: section("hostname").join("").trim().to_string(),
        addresses: crate::process::ip_json::ipv4_by_mac(&links),
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
    fn cloud_init_results_are_read() {
        let ok = r#"{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/sr0]", "errors": []}}"#;
        assert_eq!(parse_cloud_init_result(ok).unwrap(), Vec::<String>::new());
        let bad = r#"{"v1": {"datasource": null, "errors": ["('scripts_user', RuntimeError('Runparts: 1 failures'))"]}}"#;
        assert_eq!(
            parse_cloud_init_result(bad).unwrap(),
            ["('scripts_user', RuntimeError('Runparts: 1 failures'))"]
        );
        assert!(parse_cloud_init_result("status: done").is_err());
    }
}
