//! MAC addresses and vnode's MAC scheme.
//!
//! Every node has two NICs whose MACs are derived from (pool, NIC role, number) so that a site's
//! DHCP admin can write the plan once. The scheme is readable by a human:
//!
//! ```text
//!   52:54:00 : R P : N N : N N
//!              | |   `-----'-- the node number's decimal digits, 4 of them (0000-9999)
//!              | `------------ the pool's mac_id, one decimal digit (0-9)
//!              `-------------- the NIC role: 0 = public (bridge), 1 = private (libvirt network)
//! ```
//!
//! so the public NIC of vnode18 in the default pool (mac_id 0) is `52:54:00:00:00:18`, exactly
//! what the seed's DHCP admin already has, and its private NIC is `52:54:00:10:00:18`. Each byte
//! after the OUI holds two decimal digits (BCD), so reading a MAC aloud gives role, pool and number.
//! Distinct (role, mac_id, number) triples give distinct MACs, which is what makes pools with
//! distinct mac_ids collision-free.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// QEMU's OUI: libvirt and every DHCP admin recognise these as virtual machines.
const OUI: [u8; 3] = [0x52, 0x54, 0x00];

/// The highest node number the scheme can encode (four decimal digits).
pub const MAX_NUMBER: u32 = 9999;
/// The highest pool mac_id the scheme can encode (one decimal digit).
pub const MAX_MAC_ID: u8 = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

/// Which of a node's two NICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nic {
    /// On the host bridge (the site LAN); the site's DHCP gives its address by MAC.
    Public,
    /// On libvirt's NAT network.
    Private,
}

impl Nic {
    fn digit(self) -> u8 {
        match self {
            Nic::Public => 0,
            Nic::Private => 1,
        }
    }
}

/// Two decimal digits in one byte: 18 -> 0x18.
fn bcd(value: u32) -> u8 {
    debug_assert!(value < 100);
    (((value / 10) << 4) | (value % 10)) as u8
}

impl Mac {
    /// The MAC of `nic` of node `number` in the pool with `mac_id`.
    ///
    /// Callers guarantee `mac_id <= MAX_MAC_ID` and `number <= MAX_NUMBER` (the pool validates both).
    pub fn for_node(mac_id: u8, nic: Nic, number: u32) -> Mac {
        assert!(
            mac_id <= MAX_MAC_ID && number <= MAX_NUMBER,
            "MAC scheme out of range"
        );
        Mac([
            OUI[0],
            OUI[1],
            OUI[2],
            bcd(u32::from(nic.digit()) * 10 + u32::from(mac_id)),
            bcd(number / 100),
            bcd(number % 100),
        ])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a MAC address (expected six hex bytes like 52:54:00:00:00:18)")]
pub struct MacParseError(String);

impl FromStr for Mac {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(MacParseError(s.to_string()));
        }
        let mut out = [0u8; 6];
        for (slot, part) in out.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(MacParseError(s.to_string()));
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_string()))?;
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_pool_public_mac_is_the_seeds() {
        assert_eq!(
            Mac::for_node(0, Nic::Public, 18).to_string(),
            "52:54:00:00:00:18"
        );
        assert_eq!(
            Mac::for_node(0, Nic::Public, 3).to_string(),
            "52:54:00:00:00:03"
        );
        assert_eq!(
            Mac::for_node(0, Nic::Private, 18).to_string(),
            "52:54:00:10:00:18"
        );
    }

    #[test]
    fn other_pools_and_wide_numbers_read_as_decimal() {
        assert_eq!(
            Mac::for_node(2, Nic::Public, 123).to_string(),
            "52:54:00:02:01:23"
        );
        assert_eq!(
            Mac::for_node(9, Nic::Private, 9999).to_string(),
            "52:54:00:19:99:99"
        );
    }

    #[test]
    fn parses_its_own_output_and_rejects_garbage() {
        let m = Mac::for_node(3, Nic::Private, 42);
        assert_eq!(m.to_string().parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "52:54:00:00:00",
            "52:54:00:00:00:1g",
            "525400000018",
            "52:54:00:00:00:018",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn distinct_inputs_give_distinct_macs(
            a in (0u8..=9, any::<bool>(), 0u32..=9999),
            b in (0u8..=9, any::<bool>(), 0u32..=9999),
        ) {
            let nic = |p: bool| if p { Nic::Public } else { Nic::Private };
            let ma = Mac::for_node(a.0, nic(a.1), a.2);
            let mb = Mac::for_node(b.0, nic(b.1), b.2);
            prop_assert_eq!(a == b, ma == mb);
            // locally administered, unicast
            prop_assert_eq!(ma.0[0] & 0b11, 0b10);
        }
    }
}
