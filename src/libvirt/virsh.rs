//! Queries and lifecycle calls through `virsh` (LC_ALL=C, one process per call, never a shell).
//!
//! vnode drives libvirt through its command-line tools rather than the C library: no FFI in the
//! binary, the same tools an admin uses to look at what vnode did, and the lab works by running
//! them inside its namespaces.

use std::net::Ipv4Addr;
use std::process::Stdio;

use tokio::process::Command;

use super::LibvirtError;
use crate::debug_log::{self, Outcome};
use crate::mac::Mac;

/// A DHCP lease from libvirt's dnsmasq, as `virsh net-dhcp-leases` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// "YYYY-MM-DD HH:MM:SS" as virsh prints it; only compared for equality.
    pub expiry: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Virsh {
    uri: String,
}

impl Virsh {
    pub fn new(uri: &str) -> Virsh {
        Virsh {
            uri: uri.to_string(),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("virsh");
        cmd.env("LC_ALL", "C")
            .arg("-q")
            .arg("-c")
            .arg(&self.uri)
            .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `virsh ARGS`; stdout on success, the error with virsh's own words otherwise.
    pub async fn run(&self, args: &[&str]) -> Result<String, LibvirtError> {
        let mut cmd = self.command(args);
        let started = std::time::Instant::now();
        let out = cmd.output().await;
        let line = debug_log::CommandLine::of(cmd.as_std());
        match &out {
            Ok(o) => {
                debug_log::command_finished(&line, started.elapsed(), Outcome::Exited(o.status))
            }
            Err(e) => debug_log::command_finished(&line, started.elapsed(), Outcome::NotRun(e)),
        }
        let out = out.map_err(|e| LibvirtError::Tool {
            tool: "virsh".into(),
            message: format!("cannot run it: {e}; install libvirt-clients"),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LibvirtError::Virsh {
                args: args.join(" "),
                message: String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .trim_start_matches("error: ")
                    .replace('\n', " "),
            })
        }
    }

    /// Checks that libvirt answers at the URI.
    pub async fn ping(&self) -> Result<(), LibvirtError> {
        self.run(&["version"])
            .await
            .map(|_| ())
            .map_err(|e| LibvirtError::Unreachable {
                uri: self.uri.clone(),
                message: e.to_string(),
            })
    }

    /// The domain's state ("running", "shut off", ...), or None when no such domain exists.
    pub async fn domain_state(&self, name: &str) -> Result<Option<String>, LibvirtError> {
        match self.run(&["domstate", name]).await {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(LibvirtError::Virsh { message, .. }) if is_no_domain(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stops a domain at once; a domain that is not running is fine.
    pub async fn destroy(&self, name: &str) -> Result<(), LibvirtError> {
        match self.run(&["destroy", name]).await {
            Ok(_) => Ok(()),
            Err(LibvirtError::Virsh { message, .. })
                if message.contains("not running") || is_no_domain(&message) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes a domain's definition (not its disks); a missing domain is fine.
    pub async fn undefine(&self, name: &str) -> Result<(), LibvirtError> {
        match self.run(&["undefine", name]).await {
            Ok(_) => Ok(()),
            Err(LibvirtError::Virsh { message, .. }) if is_no_domain(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the guest to power off (ACPI).
    pub async fn shutdown(&self, name: &str) -> Result<(), LibvirtError> {
        self.run(&["shutdown", name]).await.map(|_| ())
    }

    /// Names of all domains, running or not.
    pub async fn domains(&self) -> Result<Vec<String>, LibvirtError> {
        Ok(self
            .run(&["list", "--all", "--name"])
            .await?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The domain's XML.
    pub async fn dumpxml(&self, name: &str) -> Result<String, LibvirtError> {
        self.run(&["dumpxml", name]).await
    }

    /// Is the libvirt network defined and active? (None: not defined.)
    pub async fn network_active(&self, net: &str) -> Result<Option<bool>, LibvirtError> {
        match self.run(&["net-info", net]).await {
            Ok(info) => Ok(Some(info.lines().any(|l| {
                let mut parts = l.split(':');
                parts.next().map(str::trim) == Some("Active")
                    && parts.next().map(str::trim) == Some("yes")
            }))),
            Err(LibvirtError::Virsh { message, .. })
                if message.contains("ot found") || message.contains("no network") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The current DHCP leases of a libvirt network.
    pub async fn leases(&self, net: &str) -> Result<Vec<Lease>, LibvirtError> {
        Ok(parse_leases(&self.run(&["net-dhcp-leases", net]).await?))
    }
}

fn is_no_domain(message: &str) -> bool {
    message.contains("failed to get domain")
        || message.contains("Domain not found")
        || message.contains("no domain with matching name")
}

/// Parses `virsh -q net-dhcp-leases` output:
/// ` 2026-11-25 05:12:33   52:54:00:10:00:03   ipv4   192.168.122.45/24   vnode03   ff:00:...`
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[3] != "ipv4" {
                return None;
            }
            Some(Lease {
                expiry: format!("{} {}", f[0], f[1]),
                mac: f[2].parse().ok()?,
                ip: f[4].split('/').next()?.parse().ok()?,
                hostname: f.get(5).filter(|h| **h != "-").map(|h| h.to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lease_lines() {
        let text = " 2026-11-25 05:12:33   52:54:00:10:00:03   ipv4       192.168.122.45/24   vnode03   ff:00:01\n \
                    2026-11-25 05:13:00   52:54:00:10:00:04   ipv4       192.168.122.46/24   -         -\n \
                    2026-11-25 05:13:00   52:54:00:10:00:05   ipv6       fd00::5/64          -         -\n";
        let leases = parse_leases(text);
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].ip, Ipv4Addr::new(192, 168, 122, 45));
        assert_eq!(leases[0].mac.to_string(), "52:54:00:10:00:03");
        assert_eq!(leases[0].hostname.as_deref(), Some("vnode03"));
        assert_eq!(leases[1].hostname, None);
        assert!(parse_leases("garbage\n\n").is_empty());
    }
}
