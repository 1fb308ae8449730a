//! `virt_install_args`: options the user adds to every node's virt-install command, except the
//! ones that are vnode's to set.

use crate::text::names;

/// virt-install options that would take the domain out of vnode's hands (its name, host, disks
/// and seed are vnode's; so is whether virt-install waits or only prints).
const VNODE_OWNS: [&str; 9] = [
    "--connect",
    "--name",
    "--import",
    "--print-xml",
    "--dry-run",
    "--autoconsole",
    "--noautoconsole",
    "--wait",
    "--transient",
];

/// Why a `virt_install_args` entry is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VirtInstallArgError {
    #[error("an argument must be one non-empty line")]
    NotOneLine,
    #[error(
        "{} is vnode's to set (it owns {}); leave it out",
        names::quoted(.arg),
        VNODE_OWNS.join(", ")
    )]
    VnodeOwns { arg: String },
}

pub(super) fn check_virt_install_arg(arg: &str) -> Result<(), VirtInstallArgError> {
    if arg.is_empty() || arg.contains(['\0', '\n']) {
        return Err(VirtInstallArgError::NotOneLine);
    }
    let option = arg.split('=').next().unwrap_or(arg);
    if VNODE_OWNS.contains(&option) {
        return Err(VirtInstallArgError::VnodeOwns { arg: arg.into() });
    }
    Ok(())
}
