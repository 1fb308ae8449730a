//! What each cloud-init release makes of vnode's network-config, per renderer: cloud-init's own
//! `devel net-convert` renders the network-config the library generates for a node for networkd,
//! netplan, network-manager and sysconfig, and the test says per version what the guest gets:
//! NICs matched by MAC and named `public`/`private`, DHCP on both, the route metrics that give the
//! public NIC the default route, and whether the public NIC is optional for "online".
//! Where a release cannot honour something, the assertion says so and checks the mitigation.
//!
//! The releases are the distributions' own builds: Debian 12's 22.4 (the host's package, see
//! .ci/install-deps; the test guests run it too), Debian 13's 25.1 and sid's 26.2 or later, which
//! `tests/cloud-init-releases/fetch.sh` downloads from Debian's archive with a private apt
//! configuration and unpacks into a cache (nothing is installed). 25.1 is the last before 26.2's
//! NetworkManager route-metric fix, sid's the first after it.

use std::collections::BTreeMap;
use std::path::Path;

mod common;

use common::cloud_init_releases::{CloudInit, releases};
use vnode::node::cloud_init::{NetworkConfig, NmRouteMetrics, UserData, WriteFile};
use vnode::plan::mac::{Mac, Nic};

const PUBLIC_METRIC: &str = "100";
const PRIVATE_METRIC: &str = "200";
fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}/{rel}: {e}", dir.display()))
}

/// A keyfile / unit file: section → key → value (the last value of a key wins).
fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

fn get<'a>(
    ini: &'a BTreeMap<String, BTreeMap<String, String>>,
    s: &str,
    k: &str,
) -> Option<&'a str> {
    ini.get(s).and_then(|m| m.get(k)).map(String::as_str)
}

/// Shell-style KEY=VALUE lines (ifcfg files).
fn ifcfg(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

struct Node {
    public: Mac,
    private: Mac,
    config: NetworkConfig,
}

impl Node {
    /// vnode03 of the default pool, as the library generates it.
    fn vnode03() -> Node {
        let public = Mac::for_node(0, Nic::Public, 3);
        let private = Mac::for_node(0, Nic::Private, 3);
        Node {
            public,
            private,
            config: NetworkConfig::for_node(public, private),
        }
    }

    /// (key = name the NIC gets, MAC, metric)
    fn nics(&self) -> [(&'static str, Mac, &'static str); 2] {
        [
            ("public", self.public, PUBLIC_METRIC),
            ("private", self.private, PRIVATE_METRIC),
        ]
    }
}

#[test]
fn the_network_config_as_each_cloud_init_release_renders_it() {
    let scratch = tempfile::tempdir().unwrap();
    let node = Node::vnode03();
    let config = scratch.path().join("network-config");
    std::fs::write(&config, node.config.render()).unwrap();
    let out = scratch.path().join("out");
    let mut findings = Vec::new();

    for ci in releases() {
        let v = &ci.version;
        networkd(
            &ci,
            &node,
            &ci.convert(&config, "debian", "networkd", &out),
            &mut findings,
        );
        netplan(&ci, &node, &ci.convert(&config, "ubuntu", "netplan", &out));
        network_manager(
            &ci,
            &node,
            &ci.convert(&config, "fedora", "network-manager", &out),
            &mut findings,
        );
        sysconfig(
            &ci,
            &node,
            &ci.convert(&config, "centos", "sysconfig", &out),
            &mut findings,
        );
        eprintln!("cloud-init {v}: rendered for networkd, netplan, network-manager, sysconfig");
    }
    for f in findings {
        eprintln!("{f}");
    }
}

/// `[cloud_init] modules = "needed"`: every module vnode names exists in each release (a name it
/// does not know, cloud-init only logs and skips), and each release's schema check, strict,
/// accepts a user-data that names them all.
#[test]
fn the_modules_vnode_names_exist_in_each_release_and_its_schema_accepts_them() {
    let scratch = tempfile::tempdir().unwrap();
    let mut u = UserData::defaults();
    u.hostname = "vnode03".into();
    u.ssh_authorized_keys = vec![
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0p7tN6s3G0W1d8qq2ou4nZ3m7fPpQfG4n0cV5Ygk8m a@b"
            .into(),
    ];
    u.packages = vec!["curl".into()];
    u.runcmd = vec!["true".into()];
    u.write_files = vec![WriteFile {
        path: "/etc/x".into(),
        content: "x".into(),
        permissions: "0644".into(),
    }];
    u.name_needed_modules();
    let modules: Vec<String> = [
        &u.cloud_init_modules,
        &u.cloud_config_modules,
        &u.cloud_final_modules,
    ]
    .into_iter()
    .flat_map(|m| m.clone().expect("vnode names every stage's modules"))
    .collect();
    assert!(modules.len() >= 10, "{modules:?}");
    let user_data = scratch.path().join("user-data");
    std::fs::write(&user_data, u.render()).unwrap();
    // Without runcmd or packages the config stage runs nothing: an empty list.
    let mut bare = u.clone();
    bare.packages.clear();
    bare.runcmd.clear();
    bare.name_needed_modules();
    assert_eq!(bare.cloud_config_modules, Some(vec![]));
    let bare_data = scratch.path().join("bare-user-data");
    std::fs::write(&bare_data, bare.render()).unwrap();
    for ci in releases() {
        let package = ci.package_root().join("cloudinit/config");
        for m in &modules {
            let file = package.join(format!("cc_{m}.py"));
            assert!(
                file.is_file(),
                "cloud-init {}: no module {m} ({})",
                ci.version,
                file.display()
            );
        }
        for doc in [&user_data, &bare_data] {
            let out = ci
                .python()
                .args([
                    "-c",
                    "import sys, yaml\n\
                     from cloudinit.config.schema import get_schema, validate_cloudconfig_schema\n\
                     doc = yaml.safe_load(open(sys.argv[1]))\n\
                     validate_cloudconfig_schema(doc, get_schema(), strict=True)\n\
                     print('valid', len(doc['cloud_init_modules']))",
                ])
                .arg(doc)
                .output()
                .unwrap();
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("valid"),
                "cloud-init {}, {}: {}{}",
                ci.version,
                doc.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// networkd: `10-cloud-init-NAME.network` per NIC, matched by MAC and by the name cloud-init
/// gives the NIC before networkd starts.
fn networkd(ci: &CloudInit, node: &Node, dir: &Path, findings: &mut Vec<String>) {
    let v = &ci.version;
    for (name, mac, metric) in node.nics() {
        let unit = ini(&read(
            dir,
            &format!("etc/systemd/network/10-cloud-init-{name}.network"),
        ));
        let ctx = format!("cloud-init {v} networkd, {name}: {unit:?}");
        assert_eq!(
            get(&unit, "Match", "MACAddress"),
            Some(mac.to_string().as_str()),
            "{ctx}"
        );
        assert_eq!(get(&unit, "Match", "Name"), Some(name), "{ctx}");
        assert_eq!(get(&unit, "Network", "DHCP"), Some("ipv4"), "{ctx}");
        assert_eq!(get(&unit, "DHCPv4", "RouteMetric"), Some(metric), "{ctx}");
        let required = get(&unit, "Link", "RequiredForOnline");
        if name == "private" {
            assert_eq!(required, None, "{ctx}");
        } else if ci.at_least(24, 4) {
            assert_eq!(required, Some("no"), "{ctx}");
        } else {
            // 22.4 (Debian 12) has no mapping for `optional`: the public link stays required
            // for systemd-networkd-wait-online. What that costs is measured in
            // tests/vm/guest_variants.rs (variant networkd runs this release).
            assert_eq!(required, None, "{ctx}");
            findings.push(format!(
                "cloud-init {v} networkd: `optional` is not rendered (no RequiredForOnline=no)"
            ));
        }
    }
}

/// netplan: the v2 document is passed through, so every key vnode writes reaches netplan.
fn netplan(ci: &CloudInit, node: &Node, dir: &Path) {
    let v = &ci.version;
    let text = read(dir, "etc/netplan/50-cloud-init.yaml");
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let eth = &doc["network"]["ethernets"];
    for (name, mac, metric) in node.nics() {
        let nic = &eth[name];
        let ctx = format!("cloud-init {v} netplan, {name}:\n{text}");
        // A string, not YAML 1.1's base-60 integer.
        assert_eq!(nic["match"]["macaddress"], mac.to_string(), "{ctx}");
        assert_eq!(nic["set-name"], name, "{ctx}");
        assert_eq!(nic["dhcp4"], true, "{ctx}");
        assert_eq!(
            nic["dhcp4-overrides"]["route-metric"].to_string(),
            metric,
            "{ctx}"
        );
        let optional = name == "public";
        assert_eq!(
            nic["optional"].as_bool().unwrap_or(false),
            optional,
            "{ctx}"
        );
    }
}

/// network-manager: a keyfile per NIC, matched by MAC. Before 26.2 the keyfiles carry no route
/// metric; vnode's NetworkManager drop-in (written by user-data) gives it by MAC instead.
fn network_manager(ci: &CloudInit, node: &Node, dir: &Path, findings: &mut Vec<String>) {
    let v = &ci.version;
    let drop_in = node.config.network_manager_route_metrics();
    let drop_in_ini = ini(&drop_in.render());
    for (name, mac, metric) in node.nics() {
        let profile = ini(&read(
            dir,
            &format!("etc/NetworkManager/system-connections/cloud-init-{name}.nmconnection"),
        ));
        let ctx = format!("cloud-init {v} network-manager, {name}: {profile:?}");
        assert_eq!(
            get(&profile, "connection", "type"),
            Some("ethernet"),
            "{ctx}"
        );
        assert_eq!(
            get(&profile, "ethernet", "mac-address").map(str::to_lowercase),
            Some(mac.to_string()),
            "{ctx}"
        );
        // No interface-name: the profile follows the MAC whatever the NIC is called (cloud-init
        // renames it to `public`/`private` before NetworkManager starts).
        assert_eq!(get(&profile, "connection", "interface-name"), None, "{ctx}");
        assert_eq!(get(&profile, "ipv4", "method"), Some("auto"), "{ctx}");

        // vnode's drop-in: a [connection-vnode-NAME] section for this MAC with the metric.
        let section = format!("connection-vnode-{name}");
        assert_eq!(
            get(&drop_in_ini, &section, "match-device"),
            Some(format!("mac:{mac}").as_str()),
            "{drop_in_ini:?}"
        );
        assert_eq!(
            get(&drop_in_ini, &section, "ipv4.route-metric"),
            Some(metric)
        );

        let rendered = get(&profile, "ipv4", "route-metric");
        if ci.at_least(26, 2) {
            assert_eq!(rendered, Some(metric), "{ctx}");
        } else {
            // Cannot honour dhcp4-overrides: the profile leaves ipv4.route-metric unset, which
            // is exactly when NetworkManager takes the connection default from vnode's drop-in.
            assert_eq!(rendered, None, "{ctx}");
            findings.push(format!(
                "cloud-init {v} network-manager: no route-metric for {name}; mitigated by {} \
                 (ipv4.route-metric={metric} for mac:{mac})",
                NmRouteMetrics::PATH
            ));
        }
        // `optional` has no NetworkManager mapping in any release. The profiles require IPv4
        // (may-fail=false); what a missing public lease costs at boot is measured in
        // tests/vm/guest_variants.rs (variant nm).
        assert_eq!(get(&profile, "ipv4", "may-fail"), Some("false"), "{ctx}");
        if name == "public" {
            findings.push(format!(
                "cloud-init {v} network-manager: `optional` is not rendered (ipv4.may-fail=false)"
            ));
        }
    }
}

/// sysconfig (ifcfg files, RHEL-like): renamed by a udev rule on the MAC; the metric is
/// METRIC= in 22.4 and IPV4_ROUTE_METRIC= from 24.4 on.
fn sysconfig(ci: &CloudInit, node: &Node, dir: &Path, findings: &mut Vec<String>) {
    let v = &ci.version;
    let rules = read(dir, "etc/udev/rules.d/70-persistent-net.rules");
    for (name, mac, metric) in node.nics() {
        let f = ifcfg(&read(
            dir,
            &format!("etc/sysconfig/network-scripts/ifcfg-{name}"),
        ));
        let ctx = format!("cloud-init {v} sysconfig, {name}: {f:?}");
        assert_eq!(f.get("DEVICE").map(String::as_str), Some(name), "{ctx}");
        assert_eq!(
            f.get("HWADDR").map(|m| m.to_lowercase()),
            Some(mac.to_string()),
            "{ctx}"
        );
        assert_eq!(
            f.get("BOOTPROTO").map(String::as_str),
            Some("dhcp"),
            "{ctx}"
        );
        let key = if ci.at_least(24, 4) {
            "IPV4_ROUTE_METRIC"
        } else {
            "METRIC"
        };
        assert_eq!(f.get(key).map(String::as_str), Some(metric), "{ctx}");
        assert!(
            rules.contains(&format!("ATTR{{address}}==\"{mac}\", NAME=\"{name}\"")),
            "{rules}"
        );
        if name == "public" {
            findings.push(format!(
                "cloud-init {v} sysconfig: `optional` has no ifcfg equivalent (ONBOOT={})",
                f.get("ONBOOT").map(String::as_str).unwrap_or("-")
            ));
        }
    }
}
