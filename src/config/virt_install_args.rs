//! `virt_install_args`: options the user adds to every node's virt-install command, except the
//! ones that are vnode's to set.
//!
//! virt-install reads its arguments with Python's argparse, which takes more than the exact
//! option names: short aliases (`-n` is `--name`), a short option with its value attached
//! (`-nfoo`), short flags run together (`-vn`), `--opt=value`, and any unambiguous prefix of a
//! long option (`--nam`, `--conn`, `--noautoc`). So an argument is refused when argparse could
//! read it as one of vnode's options in any of these ways; tests/virt_install_args.rs checks
//! the rule against the installed virt-install's own parser.

use crate::text::names;

/// The options of vnode's own virt-install command ([`crate::libvirt::virt_install`] passes
/// exactly these names) that decide which domain it is, on which libvirt, that vnode recognizes
/// it (its description), and that it is imported from vnode's disk and returned from at once.
pub mod own {
    pub const CONNECT: &str = "--connect";
    pub const NAME: &str = "--name";
    pub const METADATA: &str = "--metadata";
    pub const IMPORT: &str = "--import";
    pub const NOAUTOCONSOLE: &str = "--noautoconsole";
    pub const PRINT_XML: &str = "--print-xml";
}

/// What vnode passes of its own (see [`own`]).
pub const PASSED: [&str; 6] = [
    own::CONNECT,
    own::NAME,
    own::METADATA,
    own::IMPORT,
    own::NOAUTOCONSOLE,
    own::PRINT_XML,
];

/// Options vnode never passes that would change whether virt-install defines the domain and
/// returns: a dry run, a console or a wait instead of returning, a domain that vanishes when
/// stopped, another domain reinstalled.
pub const NEVER: [&str; 5] = [
    "--dry-run",
    "--autoconsole",
    "--wait",
    "--transient",
    "--reinstall",
];

/// virt-install's short aliases of those options.
pub const SHORT_ALIASES: [(char, &str); 1] = [('n', own::NAME)];

/// Every long option vnode keeps to itself.
pub fn vnode_owns() -> impl Iterator<Item = &'static str> {
    PASSED.into_iter().chain(NEVER)
}

/// Why a `virt_install_args` entry is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VirtInstallArgError {
    #[error("an argument must be one non-empty line")]
    NotOneLine,
    #[error(
        "{} is vnode's to set: virt-install would read it as {option} (vnode owns {}, their \
         prefixes and -n); leave it out",
        names::quoted(.arg),
        vnode_owns().collect::<Vec<_>>().join(", ")
    )]
    VnodeOwns { arg: String, option: &'static str },
    #[error(
        "{} would end virt-install's options, and vnode's own after it would be read as \
         arguments; leave it out",
        names::quoted(.arg)
    )]
    EndOfOptions { arg: String },
}

pub fn check_virt_install_arg(arg: &str) -> Result<(), VirtInstallArgError> {
    if arg.is_empty() || arg.contains(['\0', '\n']) {
        return Err(VirtInstallArgError::NotOneLine);
    }
    match owned_option(arg) {
        Some(Owned::Option(option)) => Err(VirtInstallArgError::VnodeOwns {
            arg: arg.into(),
            option,
        }),
        Some(Owned::EndOfOptions) => Err(VirtInstallArgError::EndOfOptions { arg: arg.into() }),
        None => Ok(()),
    }
}

enum Owned {
    Option(&'static str),
    EndOfOptions,
}

/// The option of vnode's that argparse could take `arg` for. Values never start with `-`
/// (argparse would not take them as values), so each argument is judged on its own.
fn owned_option(arg: &str) -> Option<Owned> {
    if arg == "--" {
        return Some(Owned::EndOfOptions);
    }
    if let Some(long) = arg.strip_prefix("--") {
        // `--opt=value`, and any prefix: an ambiguous one virt-install refuses anyway.
        let name = long.split('=').next().unwrap_or(long);
        if name.is_empty() {
            return None;
        }
        return vnode_owns()
            .find(|own| own[2..].starts_with(name))
            .map(Owned::Option);
    }
    // `-n`, `-nfoo`, `-n=foo`, and short flags run together (`-vn`): strictly, any single-dash
    // argument with an owned short alias before a `=`.
    let cluster = arg.strip_prefix('-')?;
    let flags = cluster.split('=').next().unwrap_or(cluster);
    SHORT_ALIASES
        .iter()
        .find(|(c, _)| flags.contains(*c))
        .map(|(_, option)| Owned::Option(option))
}
