//! What vnode knows that a shell should offer: its nodes (directories under `state_dir`), its
//! cached images and catalog names, and its labs. Read from the same places the commands read
//! them, with the config the command line being completed names (or the usual lookup).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::context::Context;

/// `--config FILE` of the command line being completed, if it has one.
static CONFIG_FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Remembers the `--config` of the words being completed (the completers see only the word
/// under the cursor). `args` is the completion request: `vnode -- WORDS...`.
pub fn remember_words(args: &[OsString]) {
    let words = match args.iter().position(|a| a == "--") {
        Some(escape) => &args[escape + 1..],
        None => args,
    };
    let _ = CONFIG_FLAG.set(config_flag(words));
}

fn config_flag(words: &[OsString]) -> Option<PathBuf> {
    let mut words = words.iter().map(|w| w.to_string_lossy());
    while let Some(w) = words.next() {
        if w == "--" {
            break;
        } else if w == "--config" {
            return words.next().map(|p| PathBuf::from(p.as_ref()));
        } else if let Some(p) = w.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// The context a command would run with; None when the config does not load (a completion
/// offers nothing rather than an error).
fn context() -> Option<Context> {
    let config = CONFIG_FLAG.get().cloned().flatten();
    Context::load(config.as_deref(), None, false).ok()
}

/// Names of the nodes vnode has state for, as `vnode list` shows them.
pub fn nodes() -> Vec<String> {
    context()
        .map(|ctx| crate::commands::known_nodes::names(&ctx))
        .unwrap_or_default()
}

/// Images in the cache (catalog, imported and derived), as `vnode images list` shows them.
pub fn cached_images() -> Vec<String> {
    context()
        .map(|ctx| crate::images::local_names(&ctx.config.cache_dir))
        .unwrap_or_default()
}

/// What a spec's `:DISTRO` or `-d` may name: cached images, then catalog names not cached.
pub fn distros() -> Vec<String> {
    let Some(ctx) = context() else {
        return Vec::new();
    };
    let mut names = crate::images::local_names(&ctx.config.cache_dir);
    for entry in ctx.catalog.entries() {
        if !names.contains(&entry.name) {
            names.push(entry.name.clone());
        }
    }
    names
}

/// Catalog names, for `images pull`.
pub fn catalog() -> Vec<String> {
    context()
        .map(|ctx| {
            ctx.catalog
                .entries()
                .iter()
                .map(|e| e.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Labs that have state on this host.
pub fn labs() -> Vec<String> {
    crate::lab::existing_labs(Path::new(crate::lab::LAB_ROOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_config_flag_of_the_line() {
        assert_eq!(
            config_flag(&words(&["vnode", "--config", "/c.toml", "ssh", ""])),
            Some("/c.toml".into())
        );
        assert_eq!(
            config_flag(&words(&["vnode", "ssh", "--config=/d.toml", "x"])),
            Some("/d.toml".into())
        );
        assert_eq!(
            config_flag(&words(&["vnode", "ssh", "--", "--config", "x"])),
            None
        );
        assert_eq!(config_flag(&words(&["vnode", "ssh"])), None);
    }
}
