//! A lab's name, and the names derived from it (network namespace, DNS domain).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::LabError;

/// The lab `vnode lab up` and a bare `--lab` mean.
pub const DEFAULT_LAB: &str = "vnode";

/// A validated lab name: a DNS label (it becomes the lab's domain `<name>.test`), at most 32
/// characters so the namespace name `vnode-<name>` stays readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabName(String);

impl LabName {
    pub fn new(name: &str) -> Result<LabName, LabError> {
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ends_ok = !name.starts_with('-') && !name.ends_with('-');
        if name.is_empty() || name.len() > 32 || !ok_chars || !ends_ok {
            return Err(LabError::BadName(name.into()));
        }
        Ok(LabName(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The network namespace (`ip netns`) of the lab.
    pub fn netns(&self) -> String {
        format!("vnode-{}", self.0)
    }

    /// The network namespace of the lab's host `host` (`h1`). A dot joins them: lab names have
    /// none, so no other lab's namespace ever has this name (`vnode-a-h1` could be lab "a-h1").
    pub fn host_netns(&self, host: &str) -> String {
        format!("{}{host}", self.host_netns_prefix())
    }

    /// What the names of the lab's hosts' namespaces start with.
    pub fn host_netns_prefix(&self) -> String {
        format!("{}.", self.netns())
    }

    /// The DNS domain the lab gives pools that have none.
    pub fn domain(&self) -> String {
        format!("{}.test", self.0)
    }

    /// How a user names this lab on the command line (`--lab` alone means the default lab).
    pub fn flag(&self) -> String {
        if self.0 == DEFAULT_LAB {
            "--lab".into()
        } else {
            format!("--lab={}", self.0)
        }
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LabName {
    type Error = LabError;
    fn try_from(s: String) -> Result<LabName, LabError> {
        LabName::new(&s)
    }
}

impl From<LabName> for String {
    fn from(n: LabName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(33)] {
            assert!(LabName::new(bad).is_err(), "{bad}");
        }
        let n = LabName::new("t1-boot").unwrap();
        assert_eq!(
            (n.netns(), n.domain(), n.flag()),
            (
                "vnode-t1-boot".into(),
                "t1-boot.test".into(),
                "--lab=t1-boot".into()
            )
        );
        assert_eq!(LabName::new(DEFAULT_LAB).unwrap().flag(), "--lab");
        assert_eq!(n.host_netns("h2"), "vnode-t1-boot.h2");
        assert!(n.host_netns("h2").starts_with(&n.host_netns_prefix()));
        let other = LabName::new("t1-boot-h2").unwrap();
        assert_ne!(other.netns(), n.host_netns("h2"));
    }
}
