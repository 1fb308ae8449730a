//! What every command works with: the effective config, where it came from, the catalog, and the
//! output mode.

use std::path::Path;

use crate::config::{Config, ConfigSource};
use crate::error::Result;
use crate::files::strict_modes::{Trusted, check_dir, check_file};
use crate::images::catalog::Catalog;

pub struct Context {
    pub config: Config,
    pub source: ConfigSource,
    pub catalog: Catalog,
    /// `--json`: machine-readable output on stdout.
    pub json: bool,
    /// `--lab[=NAME]`: the lab this process acts in (it has already entered its namespaces).
    pub lab: Option<String>,
}

impl Context {
    /// The context of a command: the config file named (else looked up), the lab it runs in,
    /// JSON output or not.
    ///
    /// The config file and the user catalog are obeyed as root, so they are checked first as
    /// OpenSSH's StrictModes checks `~/.ssh` ([`crate::files::strict_modes`]).
    pub fn load(config: Option<&Path>, lab: Option<&str>, json: bool) -> Result<Context> {
        let source = ConfigSource::find(config)?;
        if let Some(path) = source.path() {
            check_file(Trusted::ConfigFile, path)?;
        }
        let mut config = Config::load_from(&source)?;
        // In a lab every pool has the public subnet and domain the lab's DHCP serves, so plans
        // and nodes show the addresses the nodes really get.
        if let Some(lab) = lab {
            let name = crate::lab::LabName::new(lab)?;
            config.pools = crate::lab::lab_pools(&config.pools, &name)?;
            // A lab with hosts: they are the hosts vnode places nodes on, whatever the file
            // says. Unreadable state is `lab up`'s and `lab down`'s to deal with, not a reason
            // to refuse them.
            if let Ok(Some(state)) = crate::lab::state_of(&name)
                && !state.hosts.is_empty()
            {
                config.hosts = state.host_configs();
            }
        }
        if let Some(path) = config.user_catalog() {
            check_file(Trusted::Catalog, &path)?;
        }
        let catalog = config.load_catalog()?;
        Ok(Context {
            config,
            source,
            catalog,
            json,
            lab: lab.map(String::from),
        })
    }

    /// Refuses a cache or state directory (or a parent of one) that someone other than the
    /// invoking user or root owns, or that group or others may write. Commands that read or
    /// write either call it once, before anything else.
    pub fn check_dirs(&self) -> Result<()> {
        check_dir(Trusted::CacheDir, &self.config.cache_dir)?;
        check_dir(Trusted::StateDir, &self.config.state_dir)?;
        Ok(())
    }

    /// Names of cached images that are not catalog entries (imported, derived), for spec resolution.
    pub fn local_images(&self) -> Vec<String> {
        crate::images::local_names(&self.config.cache_dir)
            .into_iter()
            .filter(|n| self.catalog.get(n).is_none())
            .collect()
    }

    /// Prints a value as pretty JSON on stdout.
    pub fn print_json<T: serde::Serialize>(&self, value: &T) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("output serializes")
        );
    }
}
