//! The DHCP/DNS plan for the site admin: which MAC gets which name (and, when the pool has a
//! public subnet, which address). Rendered for dnsmasq, ISC dhcpd, /etc/hosts, CSV, JSON or a table.
//! vnode's lab serves exactly the dnsmasq rendering, which proves the plan with a real DHCP server.

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::planned_node::NodeIdentity;
use crate::plan::pool::Pool;
use crate::text::table::Table;

/// One node of the plan: its identity (see [`crate::plan::planned_node`]).
pub type PlanEntry = NodeIdentity;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    Table,
    Json,
    Csv,
    Dnsmasq,
    IscDhcpd,
    Hosts,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "the hosts format needs addresses, but pool '{pool}' has no public_subnet; set public_subnet \
     for the pool in the config, or use --format dnsmasq, isc-dhcpd, csv or json"
)]
pub struct NoAddresses {
    pub pool: String,
}

impl Plan {
    /// The plan for every node of `pools`' full ranges.
    pub fn for_pools<'a>(pools: impl IntoIterator<Item = &'a Pool>) -> Plan {
        let entries = pools
            .into_iter()
            .flat_map(|p| (p.first..=p.last).map(|n| NodeIdentity::new(p, n)))
            .collect();
        Plan { entries }
    }

    pub fn for_nodes<'a>(nodes: impl IntoIterator<Item = (&'a Pool, u32)>) -> Plan {
        Plan {
            entries: nodes
                .into_iter()
                .map(|(p, n)| NodeIdentity::new(p, n))
                .collect(),
        }
    }

    pub fn render(&self, format: PlanFormat) -> Result<String, NoAddresses> {
        Ok(match format {
            PlanFormat::Table => self.table(),
            PlanFormat::Json => serde_json::to_string_pretty(self).expect("plan serializes") + "\n",
            PlanFormat::Csv => self.csv(),
            PlanFormat::Dnsmasq => self.dnsmasq(),
            PlanFormat::IscDhcpd => self.isc_dhcpd(),
            PlanFormat::Hosts => self.hosts()?,
        })
    }

    fn table(&self) -> String {
        let mut t = Table::new([
            "NAME",
            "PUBLIC MAC",
            "PUBLIC IP",
            "FQDN",
            "PRIVATE MAC",
            "BRIDGE",
        ]);
        for e in &self.entries {
            t.row([
                e.name.to_string(),
                e.public_mac.to_string(),
                e.public_ip.map_or("-".into(), |ip| ip.to_string()),
                e.fqdn.clone().unwrap_or_else(|| "-".into()),
                e.private_mac.to_string(),
                e.bridge.clone(),
            ]);
        }
        t.render()
    }

    fn csv(&self) -> String {
        // No field can hold a comma or quote: names, MACs, addresses and bridges are validated.
        let mut out =
            String::from("name,pool,number,public_mac,public_ip,fqdn,private_mac,bridge\n");
        for e in &self.entries {
            let ip = e.public_ip.map(|ip| ip.to_string()).unwrap_or_default();
            let fqdn = e.fqdn.clone().unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{ip},{fqdn},{},{}",
                e.name, e.pool, e.number, e.public_mac, e.private_mac, e.bridge
            );
        }
        out
    }

    fn dnsmasq(&self) -> String {
        let mut out = String::from(
            "# vnode DHCP plan for the public NICs (dnsmasq); `vnode plan --format dnsmasq`\n",
        );
        for e in &self.entries {
            match e.public_ip {
                Some(ip) => {
                    let _ = writeln!(out, "dhcp-host={},{},{ip}", e.public_mac, e.name);
                    let names = match &e.fqdn {
                        Some(fqdn) => format!("{fqdn},{}", e.name),
                        None => e.name.to_string(),
                    };
                    let _ = writeln!(out, "host-record={names},{ip}");
                }
                None => {
                    let _ = writeln!(out, "dhcp-host={},{}", e.public_mac, e.name);
                }
            }
        }
        out
    }

    fn isc_dhcpd(&self) -> String {
        let mut out = String::from(
            "# vnode DHCP plan for the public NICs (ISC dhcpd); `vnode plan --format isc-dhcpd`\n",
        );
        for e in &self.entries {
            let _ = writeln!(out, "host {} {{", e.name);
            let _ = writeln!(out, "  hardware ethernet {};", e.public_mac);
            if let Some(ip) = e.public_ip {
                let _ = writeln!(out, "  fixed-address {ip};");
            }
            let _ = writeln!(out, "  option host-name \"{}\";", e.name);
            let _ = writeln!(out, "}}");
        }
        out
    }

    fn hosts(&self) -> Result<String, NoAddresses> {
        let mut out = String::from("# vnode public addresses; `vnode plan --format hosts`\n");
        for e in &self.entries {
            let ip = e.public_ip.ok_or_else(|| NoAddresses {
                pool: e.pool.clone(),
            })?;
            match &e.fqdn {
                Some(fqdn) => writeln!(out, "{ip}\t{fqdn} {}", e.name),
                None => writeln!(out, "{ip}\t{}", e.name),
            }
            .expect("writing to a String");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_pool() -> Pool {
        Pool {
            public_subnet: Some("198.18.0.0/24".parse().unwrap()),
            domain: Some("pub.test".into()),
            ..Pool::default_pool()
        }
    }

    #[test]
    fn dnsmasq_lines() {
        let plan = Plan::for_nodes([(&lab_pool(), 3)]);
        let out = plan.render(PlanFormat::Dnsmasq).unwrap();
        assert!(
            out.contains("dhcp-host=52:54:00:00:00:03,vnode03,198.18.0.103\n"),
            "{out}"
        );
        assert!(
            out.contains("host-record=vnode03.pub.test,vnode03,198.18.0.103\n"),
            "{out}"
        );
        let bare = Plan::for_nodes([(&Pool::default_pool(), 18)])
            .render(PlanFormat::Dnsmasq)
            .unwrap();
        assert!(
            bare.ends_with("dhcp-host=52:54:00:00:00:18,vnode18\n"),
            "{bare}"
        );
    }

    #[test]
    fn isc_hosts_and_csv() {
        let plan = Plan::for_nodes([(&lab_pool(), 3)]);
        let isc = plan.render(PlanFormat::IscDhcpd).unwrap();
        assert!(isc.contains("host vnode03 {\n  hardware ethernet 52:54:00:00:00:03;\n  fixed-address 198.18.0.103;\n"), "{isc}");
        assert_eq!(
            plan.render(PlanFormat::Hosts).unwrap().lines().nth(1),
            Some("198.18.0.103\tvnode03.pub.test vnode03")
        );
        let csv = plan.render(PlanFormat::Csv).unwrap();
        assert_eq!(
            csv.lines().nth(1),
            Some(
                "vnode03,vnode,3,52:54:00:00:00:03,198.18.0.103,vnode03.pub.test,52:54:00:10:00:03,br0"
            )
        );
    }

    #[test]
    fn hosts_without_addresses_is_an_error() {
        let plan = Plan::for_nodes([(&Pool::default_pool(), 3)]);
        assert_eq!(
            plan.render(PlanFormat::Hosts),
            Err(NoAddresses {
                pool: "vnode".into()
            })
        );
    }

    #[test]
    fn full_pool_plan_has_unique_macs() {
        let plan = Plan::for_pools([&Pool::default_pool()]);
        assert_eq!(plan.entries.len(), 100);
        let mut macs: Vec<_> = plan
            .entries
            .iter()
            .flat_map(|e| [e.public_mac, e.private_mac])
            .collect();
        macs.sort();
        macs.dedup();
        assert_eq!(macs.len(), 200);
    }
}
