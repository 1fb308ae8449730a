//! The config file's shape, as written: what serde reads before anything is checked.
//!
//! Every value is kept with its span, so that a problem names the line of its key; numbers are
//! read as i64 and strings as strings, so that an out-of-range or malformed value gets a message
//! saying what is allowed rather than serde's "expected u8".

use serde::Deserialize;
use toml::Spanned;

/// Where a value is in the file's text (byte offsets).
pub(super) type Span = std::ops::Range<usize>;

/// `fresh_states` as the file writes it: a boolean, a word, or anything else (an error said
/// with the accepted values, not serde's).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FreshStatesFile {
    Bool(bool),
    Word(String),
    Other(toml::Value),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub libvirt_uri: Option<Spanned<String>>,
    pub virt_type: Option<Spanned<String>>,
    pub libvirt_grace_secs: Option<Spanned<i64>>,
    pub parallel_boots: Option<Spanned<i64>>,
    pub cache_dir: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub max_image_mib: Option<Spanned<i64>>,
    pub fresh_states: Option<Spanned<FreshStatesFile>>,
    pub fresh_states_cap_gib: Option<Spanned<i64>>,
    #[serde(default)]
    pub ssh_keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<UserFile>,
    pub default_distro: Option<Spanned<String>>,
    pub default_pool: Option<Spanned<String>>,
    pub catalog: Option<Spanned<String>>,
    #[serde(default)]
    pub cloud_init: CloudInitFile,
    #[serde(default)]
    pub virt_install_args: Vec<Spanned<String>>,
    #[serde(default)]
    pub resources: ResourcesFile,
    #[serde(default, rename = "pool")]
    pub pools: Vec<PoolFile>,
    #[serde(default)]
    pub hosts: Vec<HostFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HostFile {
    pub name: Spanned<String>,
    pub uri: Spanned<String>,
    pub max_nodes: Option<Spanned<i64>>,
    pub parallel_boots: Option<Spanned<i64>>,
    pub storage_pool: Option<Spanned<String>>,
    pub pool_path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub ssh_keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub sudo: bool,
    pub shell: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CloudInitFile {
    pub packages: Vec<Spanned<String>>,
    pub runcmd: Vec<Spanned<String>>,
    pub modules: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourcesFile {
    pub memory_mib: Option<Spanned<i64>>,
    pub vcpus: Option<Spanned<i64>>,
    pub disk_gib: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolFile {
    pub stem: Spanned<String>,
    pub width: Option<Spanned<i64>>,
    pub first: Option<Spanned<i64>>,
    pub last: Option<Spanned<i64>>,
    pub mac_id: Option<Spanned<i64>>,
    pub bridge: Option<Spanned<String>>,
    pub network: Option<Spanned<String>>,
    pub domain: Option<Spanned<String>>,
    pub public_subnet: Option<Spanned<String>>,
    pub public_offset: Option<Spanned<i64>>,
    pub memory_mib: Option<Spanned<i64>>,
    pub vcpus: Option<Spanned<i64>>,
    pub disk_gib: Option<Spanned<i64>>,
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
}

impl PoolFile {
    /// Where each key the file sets is, for problems found on the whole pool.
    pub fn spans(&self) -> Vec<(&'static str, Span)> {
        let numbers = [
            ("width", &self.width),
            ("first", &self.first),
            ("last", &self.last),
            ("mac_id", &self.mac_id),
            ("public_offset", &self.public_offset),
            ("memory_mib", &self.memory_mib),
            ("vcpus", &self.vcpus),
            ("disk_gib", &self.disk_gib),
        ];
        let strings = [
            ("bridge", &self.bridge),
            ("network", &self.network),
            ("domain", &self.domain),
            ("public_subnet", &self.public_subnet),
        ];
        let mut out = vec![("stem", self.stem.span())];
        out.extend(
            numbers
                .iter()
                .filter_map(|(k, v)| Some((*k, v.as_ref()?.span()))),
        );
        out.extend(
            strings
                .iter()
                .filter_map(|(k, v)| Some((*k, v.as_ref()?.span()))),
        );
        out
    }
}
