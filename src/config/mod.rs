//! vnode's configuration: where it is looked up, its defaults, and its validation.
//!
//! Every key has a default, so a config file may set just one. The file is read as written
//! ([`file`]), then each section is checked on the lines it came from ([`located`] and one
//! module per section); pools are validated together (see [`crate::plan::pool::Pools`]) and
//! every error names the file, line and field.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::images::catalog::Catalog;
use crate::plan::pool::{Pools, Resources};

mod cloud_init;
mod file;
mod fresh_states;
mod hosts;
mod located;
mod lookup;
mod pools;
mod top_level;
mod users;
pub mod virt_install_args;
mod virt_type;

#[cfg(test)]
mod tests;

pub use cloud_init::{CloudInitExtra, ModuleLists};
pub use fresh_states::FreshStates;
pub use hosts::{DEFAULT_POOL_PATH, DEFAULT_STORAGE_POOL, HostConfig};
pub use lookup::ConfigSource;
pub use users::UserConfig;
pub use virt_type::VirtType;

use crate::text::toml_file::{self, FileError};
use file::ConfigFile;
use located::Located;

/// A commented example config, printed by `vnode config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub libvirt_uri: String,
    pub virt_type: VirtType,
    /// How long spawn's waits ride out libvirt not answering (libvirtd restarting).
    pub libvirt_grace_secs: u64,
    /// At most this many nodes boot at once on each host (`--parallel`); `None`: auto (one per
    /// host CPU under TCG, all at once under KVM).
    pub parallel_boots: Option<u32>,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    /// No pulled image may be larger, in MiB (a mirror cannot fill the disk).
    pub max_image_mib: u64,
    /// When a cold-booted node's state is saved at its first ready, so that a respawn or reset
    /// restores it (`--fresh-states` / `--no-fresh-states` per command). Restoring a state
    /// that exists is on unless `--cold` or `--no-fresh-states`.
    pub fresh_states: FreshStates,
    /// The fresh states are held under this many GiB (least recently used go first).
    pub fresh_states_cap_gib: u64,
    /// Public keys authorized for root in every node; empty means the invoking user's ~/.ssh/id_*.pub.
    pub ssh_keys: Vec<String>,
    pub users: Vec<UserConfig>,
    pub default_distro: Option<String>,
    pub catalog: Option<PathBuf>,
    pub cloud_init: CloudInitExtra,
    /// Arguments added to every node's virt-install command after vnode's own, e.g.
    /// `["--memballoon", "none"]` (a later option wins over vnode's).
    pub virt_install_args: Vec<String>,
    pub pools: Pools,
    /// `[[hosts]]`: the libvirt hosts nodes are spread over. Empty: this host only, through
    /// `libvirt_uri`, with node files in `state_dir` (vnode as it always was).
    pub hosts: Vec<HostConfig>,
}

impl Config {
    /// The configuration with no file at all.
    pub fn defaults() -> Config {
        Config::from_file(ConfigFile::default(), Path::new("<defaults>"), "")
            .expect("defaults are valid")
    }

    /// Parses and validates a config file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Config, FileError> {
        Config::from_file(toml_file::parse(path, text)?, path, text)
    }

    /// Checks each section of the file and fills in the defaults. The sections are checked in
    /// this order, so a file with several problems is always refused for the same one.
    fn from_file(f: ConfigFile, path: &Path, text: &str) -> Result<Config, FileError> {
        let at = Located { path, text };
        let resources = at.resources(
            &f.resources,
            |k| format!("resources.{k}"),
            Resources::default(),
        )?;
        let hosts = at.hosts(f.hosts)?;
        let pools = at.pools(f.pools, resources, f.default_pool.as_ref(), &hosts)?;
        let users = at.users(f.users)?;
        let default_distro =
            at.optional(f.default_distro, "default_distro", top_level::check_distro)?;
        Ok(Config {
            libvirt_uri: at.libvirt_uri(f.libvirt_uri)?,
            virt_type: at.virt_type(f.virt_type)?,
            libvirt_grace_secs: at
                .number(
                    f.libvirt_grace_secs.as_ref(),
                    "libvirt_grace_secs",
                    "libvirt_grace_secs",
                    top_level::LIBVIRT_GRACE_SECS,
                )?
                .unwrap_or(top_level::DEFAULT_LIBVIRT_GRACE_SECS),
            parallel_boots: at.number(
                f.parallel_boots.as_ref(),
                "parallel_boots",
                "parallel_boots",
                hosts::PARALLEL_BOOTS,
            )?,
            cache_dir: at.directory(f.cache_dir, "cache_dir", top_level::DEFAULT_CACHE_DIR)?,
            state_dir: at.directory(f.state_dir, "state_dir", top_level::DEFAULT_STATE_DIR)?,
            max_image_mib: at
                .number(
                    f.max_image_mib.as_ref(),
                    "max_image_mib",
                    "max_image_mib",
                    top_level::MAX_IMAGE_MIB,
                )?
                .unwrap_or(top_level::DEFAULT_MAX_IMAGE_MIB),
            fresh_states: fresh_states::parse(f.fresh_states.as_ref())
                .map_err(|(span, e)| at.error(span, "fresh_states", e))?,
            fresh_states_cap_gib: at
                .number(
                    f.fresh_states_cap_gib.as_ref(),
                    "fresh_states_cap_gib",
                    "fresh_states_cap_gib",
                    top_level::FRESH_STATES_CAP_GIB,
                )?
                .unwrap_or(top_level::DEFAULT_FRESH_STATES_CAP_GIB),
            ssh_keys: at.strings(f.ssh_keys, "ssh_keys", users::check_key)?,
            users,
            default_distro,
            catalog: at.catalog(f.catalog)?,
            cloud_init: at.cloud_init(f.cloud_init)?,
            virt_install_args: at.strings(
                f.virt_install_args,
                "virt_install_args",
                virt_install_args::check_virt_install_arg,
            )?,
            pools,
            hosts,
        })
    }

    /// Finds and loads the config: `--config`, `$VNODE_CONFIG`, the user's, the system's, or defaults.
    /// A file named by the flag or the variable must exist.
    pub fn load(flag: Option<&Path>) -> Result<(Config, ConfigSource), FileError> {
        let source = ConfigSource::find(flag)?;
        let config = Config::load_from(&source)?;
        Ok((config, source))
    }

    /// The config `source` names (the defaults when it names none).
    pub fn load_from(source: &ConfigSource) -> Result<Config, FileError> {
        match source.path() {
            None => Ok(Config::defaults()),
            Some(path) => Config::parse(path, &toml_file::read_text(path)?),
        }
    }

    /// The user catalog this config reads, if any: the one it names, else
    /// `~/.config/vnode/images.toml` when that exists.
    pub fn user_catalog(&self) -> Option<PathBuf> {
        lookup::user_catalog(self.catalog.as_deref())
    }

    /// The catalog: built-in, plus the user catalog named in the config or found at
    /// `~/.config/vnode/images.toml`.
    pub fn load_catalog(&self) -> Result<Catalog, FileError> {
        match self.user_catalog() {
            None => Catalog::load(None),
            Some(path) => {
                let text = toml_file::read_text(&path)?;
                Catalog::load(Some((&path, &text)))
            }
        }
    }
}
