//! The keys outside any table that are not a section of their own: the libvirt connection and
//! virt type, libvirt's grace period, the boot limit, vnode's directories, the size cap of
//! pulled images, the default distro and the user catalog's path. Each has a default.

use std::path::PathBuf;

use toml::Spanned;

use super::located::Located;
use super::virt_type::VirtType;
use crate::plan::pool::Limit;
use crate::text::names;
use crate::text::toml_file::FileError;

/// The default of `libvirt_grace_secs`, and what it may be (a day at most).
pub const DEFAULT_LIBVIRT_GRACE_SECS: u64 = 30;
pub(super) const LIBVIRT_GRACE_SECS: Limit = Limit::new(0, 86_400, " seconds (a day)");
/// The default of `max_image_mib` (64 GiB: the largest cloud images are a few GiB), and what
/// it may be (16 TiB at most).
pub const DEFAULT_MAX_IMAGE_MIB: u64 = 64 << 10;
pub(super) const MAX_IMAGE_MIB: Limit = Limit::new(1, 16 << 20, " MiB (16 TiB)");
/// The default of `fresh_states_cap_gib` (a state is about the guest's used memory plus what
/// its first boot wrote: ~0.2-0.6 GiB), and what it may be.
pub const DEFAULT_FRESH_STATES_CAP_GIB: u64 = 50;
pub(super) const FRESH_STATES_CAP_GIB: Limit = Limit::new(0, 1 << 20, " GiB (1 PiB)");
const DEFAULT_LIBVIRT_URI: &str = "qemu:///system";
pub(super) const DEFAULT_CACHE_DIR: &str = "/var/lib/vnode/images";
pub(super) const DEFAULT_STATE_DIR: &str = "/var/lib/vnode/nodes";

/// A `default_distro` that names no image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is not an image name (a catalog name or alias like f43, an imported or a derived image)",
    names::quoted(.name)
)]
pub struct NotAnImageName {
    pub name: String,
}

impl Located<'_> {
    pub(super) fn libvirt_uri(&self, uri: Option<Spanned<String>>) -> Result<String, FileError> {
        Ok(self
            .optional(uri, "libvirt_uri", |u| {
                names::check_word(u, "a libvirt URI")
            })?
            .unwrap_or_else(|| DEFAULT_LIBVIRT_URI.into()))
    }

    pub(super) fn virt_type(&self, value: Option<Spanned<String>>) -> Result<VirtType, FileError> {
        match value {
            None => Ok(VirtType::default()),
            Some(v) => {
                VirtType::parse(v.get_ref()).map_err(|e| self.error(Some(v.span()), "virt_type", e))
            }
        }
    }

    /// An absolute path, `default` when the file leaves it out.
    pub(super) fn directory(
        &self,
        value: Option<Spanned<String>>,
        field: &str,
        default: &str,
    ) -> Result<PathBuf, FileError> {
        Ok(self
            .optional(value, field, names::check_absolute_path)?
            .unwrap_or_else(|| default.into())
            .into())
    }

    /// The user catalog's path, on one line.
    pub(super) fn catalog(
        &self,
        value: Option<Spanned<String>>,
    ) -> Result<Option<PathBuf>, FileError> {
        Ok(self
            .optional(value, "catalog", |c| names::check_line(c, "a path"))?
            .map(PathBuf::from))
    }
}

/// `default_distro`, checked against the built-in catalog's naming rule; a user catalog is
/// checked when it is loaded.
pub(super) fn check_distro(name: &str) -> Result<(), NotAnImageName> {
    crate::images::catalog::check_name(&name.to_ascii_lowercase())
        .map_err(|_| NotAnImageName { name: name.into() })
}
