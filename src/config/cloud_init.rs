//! `[cloud_init]`: the cloud-config the user adds to every node, as written in the config.
//! The node module's `cloud_init` turns it into the documents a node's seed holds.

use serde::Serialize;

use super::file::CloudInitFile;
use super::located::Located;
use crate::text::names::{self, NameError};
use crate::text::toml_file::FileError;

/// Extra cloud-config the user adds to every node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CloudInitExtra {
    pub packages: Vec<String>,
    pub runcmd: Vec<String>,
    /// Which modules cloud-init runs (`modules = "needed"|"image"`).
    pub modules: ModuleLists,
}

/// Which cloud-init modules a node runs (the config's `[cloud_init] modules`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleLists {
    /// The image's own lists (`/etc/cloud/cloud.cfg`): every module its distribution enables.
    #[default]
    Image,
    /// Only the modules the node's cloud-config needs (node::cloud_init's
    /// `UserData::name_needed_modules`).
    Needed,
}

impl ModuleLists {
    pub fn parse(s: &str) -> Result<ModuleLists, CloudInitError> {
        match s {
            "image" => Ok(ModuleLists::Image),
            "needed" => Ok(ModuleLists::Needed),
            _ => Err(CloudInitError::NotAModuleChoice { value: s.into() }),
        }
    }
}

/// Why a `[cloud_init]` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloudInitError {
    /// A package name that is not one word.
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "{} is not a shell command: it contains a NUL character",
        names::quoted(.command)
    )]
    NulInCommand { command: String },
    #[error(
        "{} is not a module choice: write \"needed\" (only what vnode's cloud-config needs) or \
         \"image\" (the image's own lists)",
        names::quoted(.value)
    )]
    NotAModuleChoice { value: String },
}

impl Located<'_> {
    /// `packages` (one word each), `runcmd` (shell scripts) and the module lists.
    pub(super) fn cloud_init(&self, c: CloudInitFile) -> Result<CloudInitExtra, FileError> {
        Ok(CloudInitExtra {
            packages: self.strings(c.packages, "cloud_init.packages", |p| {
                names::check_word(p, "a package name")
            })?,
            runcmd: self.strings(c.runcmd, "cloud_init.runcmd", check_command)?,
            modules: match c.modules {
                None => ModuleLists::default(),
                Some(m) => ModuleLists::parse(m.get_ref())
                    .map_err(|e| self.error(Some(m.span()), "cloud_init.modules", e))?,
            },
        })
    }
}

/// A runcmd entry may span lines (it is a shell script); only NUL cannot be in one.
fn check_command(command: &str) -> Result<(), CloudInitError> {
    if command.contains('\0') {
        return Err(CloudInitError::NulInCommand {
            command: command.into(),
        });
    }
    Ok(())
}
