//! What hypervisors and guests answer is not trusted: every parser of such an answer takes any
//! bytes without a panic. Generated answers are arbitrary bytes, and near misses of the real
//! thing (a real answer with bytes changed, cut or spliced in), so that the parsers get past their
//! first check.
//!
//! Cases per parser: `PROPTEST_CASES` (256 by default, what CI runs);
//! `PROPTEST_CASES=2000 cargo test --release --test hostile_answers` runs the 10,000+ of the
//! hardening benchmark (7 properties).

use proptest::prelude::*;

use vnode::hosts::capabilities::{parse_free_mib, parse_nodeinfo, parse_version, parse_virt_types};
use vnode::libvirt::osinfo::OsinfoDb;
use vnode::libvirt::storage::parse as storage;
use vnode::libvirt::virsh::{
    parse_domain_list, parse_domstats, parse_leases, parse_names, parse_net_info_active,
    parse_network_list,
};
use vnode::process::ip_json;
use vnode::spawn::guest_facts::{parse_cloud_init_result, parse_facts};
use vnode::text::terminal::{escaped, unsafe_to_show};

/// Real answers, each a seed for near misses.
const SEEDS: &[&str] = &[
    "<capabilities><guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>",
    "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.0\n",
    "CPU model:           x86_64\nCPU(s):              2\nMemory size:         24609328 KiB\n",
    "total  :             24609328 KiB\nfree   :             20000000 KiB\nbuffers:  100 KiB\ncached :  2000 KiB\n",
    "Domain: 'vnode03'\n  state.state=1\n  state.reason=1\n\nDomain: 'vnode04'\n  state.state=3\n  state.reason=5\n",
    " Expiry Time           MAC address         Protocol   IP address           Hostname   Client ID or DUID\n-----------------------------------------------------------------------------------------------------------\n 2026-12-04 19:00:00   52:54:00:10:00:03   ipv4       192.168.122.7/24     vnode03    01:52:54:00:10:00:03\n",
    " Id   Name      State\n--------------------------\n 1    vnode03   running\n -    vnode04   shut off\n",
    " Name      State    Autostart   Persistent\n--------------------------------------------\n default   active   yes         yes\n",
    "Name:           default\nUUID:           0a1b\nActive:         yes\n",
    "[{\"ifindex\":2,\"ifname\":\"public\",\"address\":\"52:54:00:00:00:03\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"198.18.0.3\",\"prefixlen\":24}]}]",
    "{\"v1\": {\"datasource\": \"DataSourceNoCloud\", \"errors\": [\"x\"], \"recoverable_errors\": {}}}",
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n---\nvnode03\n",
    "debian11, debian11-unknown\nfedora43\nubuntu24.04, ubuntu-noble\n",
    "Name:           vnode\nState:          running\nPersistent:     yes\nAutostart:      no\n",
    "<pool type='dir'>\n  <name>vnode</name>\n  <target>\n    <path>/var/lib/vnode/pool</path>\n  </target>\n</pool>\n",
    "Name:           base.qcow2\nType:           file\nCapacity:       2.00 GiB\nAllocation:     1.50 GiB\n",
    " Name   Path   Type   Capacity   Allocation\n----\n a.qcow2   /p/a.qcow2   file   2.00 GiB   1.00 GiB\n",
    "error: failed to get pool 'x'\nerror: Storage pool not found: no storage pool with matching name 'x'\n",
];

/// A seed with bytes changed, cut or spliced in, or arbitrary bytes.
fn answer() -> impl Strategy<Value = String> {
    let near_miss = (
        proptest::sample::select(SEEDS),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..6),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.as_bytes().to_vec();
            for (at, byte, how) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    2 => bytes.insert(i, byte),
                    _ => bytes
                        .splice(i..i, "\u{e9}\u{202e}&#x1F600;&amp'\"=<>:\n".bytes())
                        .for_each(drop),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
    let any_bytes = proptest::collection::vec(any::<u8>(), 0..600)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    prop_oneof![3 => near_miss, 1 => any_bytes]
}

proptest! {
    #[test]
    fn virsh_storage_answers(text in answer()) {
        let _ = storage::pool_info(&text);
        let _ = storage::pool_dump(&text);
        let _ = storage::unescape(&text);
        let _ = storage::vol_info(&text);
        let _ = storage::vol_list_details(&text);
        let _ = storage::conflicting_pool(&text);
        for word in text.split_whitespace().collect::<Vec<_>>().windows(2) {
            let _ = storage::scaled(word[0], word[1]);
        }
    }

    #[test]
    fn virsh_capabilities_version_nodeinfo_and_memory(text in answer()) {
        let _ = parse_virt_types(&text);
        let _ = parse_version(&text);
        let _ = parse_nodeinfo(&text);
        let _ = parse_free_mib(&text);
    }

    #[test]
    fn virsh_domstats_and_leases(text in answer()) {
        let _ = parse_domstats(&text);
        let _ = parse_leases(&text);
    }

    #[test]
    fn virsh_listings(text in answer()) {
        let _ = parse_names(&text);
        let _ = parse_net_info_active(&text);
        let _ = parse_domain_list(&text);
        let _ = parse_network_list(&text);
    }

    #[test]
    fn ip_json_of_a_guest_or_host(text in answer()) {
        if let Ok(links) = ip_json::parse(&text) {
            let _ = ip_json::ipv4_by_mac(&links);
        }
    }

    #[test]
    fn a_guests_os_release_and_cloud_init_result(text in answer()) {
        let facts = parse_facts(&text);
        // What a guest names itself is shown through the one escaping function.
        if let Some(name) = &facts.pretty_name {
            let shown = escaped(name);
            prop_assert!(!shown.chars().any(unsafe_to_show), "{:?}", shown);
        }
        let _ = parse_cloud_init_result(&text);
    }

    #[test]
    fn the_hosts_osinfo_list(text in answer()) {
        let _ = OsinfoDb::parse_list(&text);
    }
}
