//! The site's DHCP/DNS server of the lab: one dnsmasq on the public bridges, serving the plan
//! (`vnode plan --format dnsmasq`) of the lab's pools and nothing else: `static` ranges, so only
//! the plan's MACs get an address, and each gets the plan's address.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::state::{PublicNet, bridges};
use crate::plan::pool::Pools;
use crate::plan::site_dhcp::{Plan, PlanFormat};

/// How long a lease lasts; nodes renew long before.
const LEASE_TIME: &str = "1h";

pub struct PublicDhcp {
    pub nets: Vec<PublicNet>,
    pub pid_file: PathBuf,
    pub lease_file: PathBuf,
    pub log_file: PathBuf,
    /// Where the plan (dhcp-host and host-record lines) is written; the main file includes it.
    pub plan_file: PathBuf,
}

impl PublicDhcp {
    /// The main configuration file.
    pub fn config(&self) -> String {
        let mut out = String::from("# vnode lab: the site's DHCP/DNS on the public bridge(s)\n");
        for bridge in bridges(&self.nets) {
            let _ = writeln!(out, "interface={bridge}");
        }
        let p = |path: &PathBuf| path.display().to_string();
        for line in [
            // Binds the bridges' addresses as they come and go, without the "LOUD WARNING" of
            // bind-interfaces, and never the loopback.
            "bind-dynamic".to_string(),
            "except-interface=lo".into(),
            // Answers from the plan only: no upstream servers, no /etc/hosts of the host.
            "no-resolv".into(),
            "no-hosts".into(),
            "domain-needed".into(),
            "dhcp-authoritative".into(),
            "log-dhcp".into(),
            format!("pid-file={}", p(&self.pid_file)),
            format!("dhcp-leasefile={}", p(&self.lease_file)),
            format!("log-facility={}", p(&self.log_file)),
        ] {
            out.push_str(&line);
            out.push('\n');
        }
        for net in &self.nets {
            let tag = format!("pool-{}", net.pool);
            let _ = writeln!(
                out,
                "dhcp-range=set:{tag},{},static,{},{LEASE_TIME}",
                net.subnet.network(),
                net.subnet.netmask()
            );
            let _ = writeln!(out, "dhcp-option=tag:{tag},option:router,{}", net.host);
            let _ = writeln!(out, "dhcp-option=tag:{tag},option:dns-server,{}", net.host);
            if let Some(domain) = &net.domain {
                // `local`: names in the domain are answered here and never forwarded.
                let _ = writeln!(out, "domain={domain},{},local", net.subnet);
            }
        }
        let _ = writeln!(out, "conf-file={}", p(&self.plan_file));
        out
    }

    /// The plan file: exactly `vnode plan --format dnsmasq` of the lab's pools.
    pub fn plan(pools: &Pools) -> String {
        Plan::for_pools(pools.all())
            .render(PlanFormat::Dnsmasq)
            .expect("the dnsmasq format needs no addresses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lab::{LabName, lab_pools, public_nets};

    #[test]
    fn config_serves_each_pool_subnet_statically() {
        let pools = lab_pools(&Config::defaults().pools, &LabName::new("t").unwrap()).unwrap();
        let dhcp = PublicDhcp {
            nets: public_nets(&pools),
            pid_file: "/l/p.pid".into(),
            lease_file: "/l/leases".into(),
            log_file: "/l/log".into(),
            plan_file: "/l/plan.conf".into(),
        };
        let conf = dhcp.config();
        for line in [
            "interface=br0\n",
            "dhcp-range=set:pool-vnode,198.18.0.0,static,255.255.255.0,1h\n",
            "dhcp-option=tag:pool-vnode,option:router,198.18.0.254\n",
            "domain=t.test,198.18.0.0/24,local\n",
            "conf-file=/l/plan.conf\n",
        ] {
            assert!(conf.contains(line), "{line} missing from\n{conf}");
        }
        let plan = PublicDhcp::plan(&pools);
        assert!(plan.contains("dhcp-host=52:54:00:00:00:03,vnode03,198.18.0.103\n"));
        assert!(plan.contains("host-record=vnode03.t.test,vnode03,198.18.0.103\n"));
    }
}
