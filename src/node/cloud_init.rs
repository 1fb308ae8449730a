//! The three NoCloud documents — `meta-data`, `user-data` (`#cloud-config`) and `network-config`
//! (version 2) — as typed structs.
//!
//! vnode's policy lives in the top-level `cloud-init/` directory (`user-data.yaml`,
//! `network-config.yaml`), embedded at build time and read with **serde_norway** (a maintained
//! fork of the deprecated serde_yaml); the config's `[cloud_init]`, `[[users]]` and `ssh_keys`
//! extend it, and each node adds its names, MACs and host key.
//!
//! The documents are *written* as JSON (serde_json), which is YAML: cloud-init reads them with
//! PyYAML, a YAML 1.1 parser, and YAML 1.1 reads a plain `52:54:00:00:00:03` as the base-60
//! integer 41135040003 (and `yes`, `on`, `0755`, `1_000` as booleans and numbers). vnode's MACs
//! are all decimal digits, so nearly every one would be misread (cloud-init 22.4's net-convert
//! crashes on it: `'int' object has no attribute 'lower'`). serde_norway writes YAML 1.2 and
//! quotes only what YAML 1.2 would misread, with no way to force quotes; JSON's always-quoted
//! strings mean what they say under any YAML version. Characters YAML 1.1 cannot read raw
//! (DEL, C1 controls, U+FFFE, U+FFFF, its line breaks U+0085/U+2028/U+2029) are written as
//! `\uXXXX` escapes ([`crate::text::yaml_json`]): PyYAML drops the whole document otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::UserConfig;
use crate::plan::mac::Mac;
use crate::text::yaml_json;

/// vnode's default cloud-config (see the file's comments).
pub const USER_DATA_DEFAULTS: &str = include_str!("../../cloud-init/user-data.yaml");
/// vnode's NIC configuration (see the file's comments).
pub const NETWORK_CONFIG_DEFAULTS: &str = include_str!("../../cloud-init/network-config.yaml");

/// `meta-data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MetaData {
    /// New for every creation of the node, so cloud-init runs again in a re-created node.
    pub instance_id: String,
    pub local_hostname: String,
}

/// `user-data`: the cloud-config keys vnode sets; anything else from the defaults file is kept
/// in `extra` and passed through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    pub prefer_fqdn_over_hostname: bool,
    pub disable_root: bool,
    pub ssh_pwauth: bool,
    /// Root's keys (and the default user's).
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    #[serde(default)]
    pub users: Vec<User>,
    pub ssh_deletekeys: bool,
    /// The node's host key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_keys: Option<HostKeys>,
    /// Files cloud-init writes in its init (network) stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_files: Vec<WriteFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runcmd: Vec<String>,
    /// The modules of each stage, when vnode names them (see [`UserData::name_needed_modules`]);
    /// `None`: the image's `/etc/cloud/cloud.cfg` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_modules: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_config_modules: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_final_modules: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An entry of cloud-config's `users`: `default` (the distribution's user) or an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum User {
    Named(String),
    Account(Account),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// No password, so no password login.
    pub lock_passwd: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
}

impl Account {
    /// A config user with its keys already resolved.
    pub fn from_config(user: &UserConfig, keys: Vec<String>) -> Account {
        Account {
            name: user.name.clone(),
            sudo: user.sudo.then(|| "ALL=(ALL) NOPASSWD:ALL".to_string()),
            shell: user.shell.clone(),
            lock_passwd: true,
            ssh_authorized_keys: keys,
        }
    }
}

/// cloud-config `ssh_keys`: the host key pair sshd will present.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeys {
    pub ed25519_private: String,
    pub ed25519_public: String,
}

impl std::fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKeys")
            .field("ed25519_private", &"..")
            .field("ed25519_public", &self.ed25519_public)
            .finish()
    }
}

/// An entry of cloud-config's `write_files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFile {
    pub path: String,
    pub content: String,
    /// Octal, as a string (cloud-init reads a YAML 1.1 `0644` as an integer otherwise).
    pub permissions: String,
}

impl UserData {
    /// vnode's defaults (`cloud-init/user-data.yaml`).
    pub fn defaults() -> UserData {
        serde_norway::from_str(USER_DATA_DEFAULTS)
            .expect("cloud-init/user-data.yaml is valid (checked by the tests)")
    }

    /// Makes NetworkManager honour the NICs' route metrics (see [`NmRouteMetrics`]): writes its
    /// drop-in and, first thing in runcmd, applies it to the already active connections.
    pub fn add_network_manager_route_metrics(&mut self, metrics: &NmRouteMetrics) {
        self.write_files.push(WriteFile {
            path: NmRouteMetrics::PATH.to_string(),
            content: metrics.render(),
            permissions: "0644".to_string(),
        });
        self.runcmd.insert(0, metrics.apply_command());
    }

    /// Names the modules each stage runs: those that act on a key this document sets, and
    /// nothing else (no locale, timezone, ntp, mounts, apt or yum sources, keys-to-console,
    /// phone-home...), so that cloud-init's stages load and run less. Every module name here
    /// exists in cloud-init 22.4 and later, on every distribution. A document with keys vnode
    /// does not know (`extra`) keeps the image's lists: vnode cannot tell which modules they need.
    pub fn name_needed_modules(&mut self) {
        if !self.extra.is_empty() {
            return;
        }
        let mut init = Vec::new();
        if !self.write_files.is_empty() {
            init.push("write_files");
        }
        // The overlay is larger than the base image: grow the root partition and filesystem.
        init.extend(["growpart", "resizefs"]);
        init.extend(["set_hostname", "update_hostname", "update_etc_hosts"]);
        init.extend(["users_groups", "ssh"]);
        let mut config = Vec::new();
        let mut last = Vec::new();
        if !self.runcmd.is_empty() {
            // runcmd writes the script in the config stage; scripts_user runs it in the final.
            config.push("runcmd");
        }
        if !self.packages.is_empty() {
            last.push("package_update_upgrade_install");
        }
        if !self.runcmd.is_empty() {
            last.push("scripts_user");
        }
        // The console's "Cloud-init ... finished" line, which users look for.
        last.push("final_message");
        let owned = |v: Vec<&str>| Some(v.into_iter().map(String::from).collect());
        self.cloud_init_modules = owned(init);
        self.cloud_config_modules = owned(config);
        self.cloud_final_modules = owned(last);
    }

    /// The `user-data` file: the `#cloud-config` marker line, then the document.
    pub fn render(&self) -> String {
        format!("#cloud-config\n{}\n", to_json(self))
    }
}

/// `network-config` version 2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub version: u8,
    pub ethernets: BTreeMap<String, Ethernet>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ethernet {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_mac: Option<MatchMac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_name: Option<String>,
    /// Not required for the boot to be "online" (wait-online does not wait for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    pub dhcp4: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp4_overrides: Option<Dhcp4Overrides>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchMac {
    pub macaddress: Mac,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Dhcp4Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_metric: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_routes: Option<bool>,
}

/// The keys of the two NICs in `cloud-init/network-config.yaml`.
pub const PUBLIC_NIC: &str = "public";
pub const PRIVATE_NIC: &str = "private";

impl NetworkConfig {
    /// vnode's NIC configuration (`cloud-init/network-config.yaml`) with both NICs matched by MAC.
    pub fn for_node(public: Mac, private: Mac) -> NetworkConfig {
        let mut config: NetworkConfig = serde_norway::from_str(NETWORK_CONFIG_DEFAULTS)
            .expect("cloud-init/network-config.yaml is valid (checked by the tests)");
        for (key, mac) in [(PUBLIC_NIC, public), (PRIVATE_NIC, private)] {
            let nic = config
                .ethernets
                .get_mut(key)
                .expect("cloud-init/network-config.yaml configures both NICs");
            nic.match_mac = Some(MatchMac { macaddress: mac });
        }
        config
    }

    pub fn render(&self) -> String {
        format!("{}\n", to_json(self))
    }

    /// The route metric of each NIC matched by MAC, as NetworkManager connection defaults.
    pub fn network_manager_route_metrics(&self) -> NmRouteMetrics {
        let sections = self
            .ethernets
            .iter()
            .filter_map(|(key, nic)| {
                let mac = nic.match_mac.as_ref()?.macaddress;
                let metric = nic.dhcp4_overrides.as_ref()?.route_metric?;
                Some(NmConnectionDefaults {
                    name: format!("vnode-{key}"),
                    device: nic.set_name.clone().unwrap_or_else(|| key.clone()),
                    mac,
                    ipv4_route_metric: metric,
                })
            })
            .collect();
        NmRouteMetrics { sections }
    }
}

/// The NICs' route metrics for NetworkManager, which cloud-init's network-manager renderer drops:
/// before cloud-init 26.2 it writes no `route-metric` for a DHCP connection (`dhcp4-overrides` is
/// ignored; Fedora's releases ship older cloud-init), so both NICs get NetworkManager's default
/// ethernet metric and the default route goes through whichever NIC came up first.
///
/// The fix is a NetworkManager.conf drop-in with one `[connection-…]` section per NIC, matched by
/// MAC: connection defaults apply to every profile that leaves `ipv4.route-metric` unset, as
/// cloud-init's profiles do, whatever cloud-init version wrote them. The seed cannot put it in
/// place before NetworkManager's first activation (cloud-init's network stage, where write_files
/// runs, is ordered after NetworkManager-wait-online on Fedora), so a runcmd reloads
/// NetworkManager's configuration and sets the metrics on the active connections; every later
/// activation (and boot) takes them from the drop-in. On a guest without NetworkManager the file is inert and the command
/// does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmRouteMetrics {
    pub sections: Vec<NmConnectionDefaults>,
}

/// One `[connection-NAME]` section of a NetworkManager.conf drop-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmConnectionDefaults {
    pub name: String,
    /// The device name the NIC gets (`set-name`), for re-applying it.
    pub device: String,
    pub mac: Mac,
    pub ipv4_route_metric: u32,
}

impl NmRouteMetrics {
    pub const PATH: &'static str = "/etc/NetworkManager/conf.d/90-vnode-route-metrics.conf";

    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Written by vnode: the NICs' route metrics (cloud-init before 26.2 drops them)\n",
        );
        for s in &self.sections {
            out.push_str(&format!(
                "\n[connection-{}]\nmatch-device=mac:{}\nipv4.route-metric={}\n",
                s.name, s.mac, s.ipv4_route_metric
            ));
        }
        out
    }

    /// A runcmd entry (sh): only where NetworkManager runs, reload its configuration (so later
    /// activations use the drop-in) and set each NIC's metric on its active connection. Only
    /// the applied connection changes (`nmcli device modify`, a reapply without restarting
    /// DHCP); re-applying the unchanged profile would not pick up a new connection default.
    pub fn apply_command(&self) -> String {
        let modify: Vec<String> = self
            .sections
            .iter()
            .map(|s| {
                format!(
                    "nmcli device modify {} ipv4.route-metric {}",
                    s.device, s.ipv4_route_metric
                )
            })
            .collect();
        format!(
            "if command -v nmcli >/dev/null 2>&1 && nmcli -t -f RUNNING general >/dev/null 2>&1; \
             then nmcli general reload conf && {}; fi",
            modify.join(" && ")
        )
    }
}

impl MetaData {
    pub fn render(&self) -> String {
        format!("{}\n", to_json(self))
    }
}

/// JSON with every character YAML 1.1 cannot read raw escaped ([`yaml_json`]).
fn to_json<T: Serialize>(value: &T) -> String {
    yaml_json::to_string_pretty(value).expect("documents serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mac::Nic;

    #[test]
    fn defaults_parse_and_say_what_the_lab_needed() {
        let u = UserData::defaults();
        assert!(!u.disable_root && !u.ssh_pwauth && !u.prefer_fqdn_over_hostname);
        assert!(u.ssh_deletekeys);
        assert_eq!(u.users, [User::Named("default".into())]);
        assert!(u.extra.is_empty(), "{:?}", u.extra);
        let n = NetworkConfig::for_node(
            Mac::for_node(0, Nic::Public, 3),
            Mac::for_node(0, Nic::Private, 3),
        );
        assert_eq!(n.version, 2);
        let public = &n.ethernets[PUBLIC_NIC];
        let private = &n.ethernets[PRIVATE_NIC];
        assert!(public.dhcp4 && private.dhcp4);
        let metric = |e: &Ethernet| e.dhcp4_overrides.as_ref().unwrap().route_metric.unwrap();
        assert!(
            metric(public) < metric(private),
            "public must win the default route"
        );
        assert_eq!(public.set_name.as_deref(), Some(PUBLIC_NIC));
        assert_eq!(private.set_name.as_deref(), Some(PRIVATE_NIC));
    }

    #[test]
    fn network_manager_gets_the_metrics_by_mac_and_applies_them_now() {
        let n = NetworkConfig::for_node(
            Mac::for_node(0, Nic::Public, 3),
            Mac::for_node(0, Nic::Private, 3),
        );
        assert_eq!(n.ethernets[PUBLIC_NIC].optional, Some(true));
        assert_eq!(n.ethernets[PRIVATE_NIC].optional, None);
        let m = n.network_manager_route_metrics();
        assert_eq!(
            m.render(),
            "# Written by vnode: the NICs' route metrics (cloud-init before 26.2 drops them)\n\
             \n[connection-vnode-private]\nmatch-device=mac:52:54:00:10:00:03\nipv4.route-metric=200\n\
             \n[connection-vnode-public]\nmatch-device=mac:52:54:00:00:00:03\nipv4.route-metric=100\n"
        );
        let cmd = m.apply_command();
        assert!(cmd.starts_with("if command -v nmcli"), "{cmd}");
        assert!(cmd.contains("nmcli general reload conf && nmcli device modify private ipv4.route-metric 200 && nmcli device modify public ipv4.route-metric 100; fi"), "{cmd}");

        let mut u = UserData::defaults();
        u.runcmd.push("echo user".into());
        u.add_network_manager_route_metrics(&m);
        assert_eq!(u.runcmd, [cmd, "echo user".to_string()]);
        assert_eq!(
            u.write_files,
            [WriteFile {
                path: NmRouteMetrics::PATH.into(),
                content: m.render(),
                permissions: "0644".into(),
            }]
        );
    }

    #[test]
    fn macs_are_quoted_so_yaml_1_1_reads_strings() {
        let n = NetworkConfig::for_node(
            Mac::for_node(0, Nic::Public, 3),
            Mac::for_node(0, Nic::Private, 3),
        );
        let text = n.render();
        assert!(
            text.contains("\"macaddress\": \"52:54:00:00:00:03\""),
            "{text}"
        );
        assert!(
            text.contains("\"macaddress\": \"52:54:00:10:00:03\""),
            "{text}"
        );
        // And it is still YAML that serde_norway reads back to the same document.
        let back: NetworkConfig = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn user_data_renders_with_the_marker_and_passes_extra_keys_through() {
        let mut u = UserData::defaults();
        u.hostname = "vnode03".into();
        u.extra
            .insert("manage_etc_hosts".into(), serde_json::Value::Bool(true));
        let text = u.render();
        assert!(text.starts_with("#cloud-config\n{"), "{text}");
        assert!(text.contains("\"manage_etc_hosts\": true"), "{text}");
        let back: UserData = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn config_users_become_locked_accounts() {
        let user = UserConfig {
            name: "alice".into(),
            ssh_keys: vec![],
            sudo: true,
            shell: Some("/bin/bash".into()),
        };
        let a = Account::from_config(&user, vec!["ssh-ed25519 AAAA a".into()]);
        let json = serde_json::to_value(User::Account(a)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "alice", "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash", "lock_passwd": true,
                "ssh_authorized_keys": ["ssh-ed25519 AAAA a"]})
        );
    }
}
