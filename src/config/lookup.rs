//! Where the config file (and the user catalog) is found: `--config`, `$VNODE_CONFIG`, the
//! user's, the system's, or none (the built-in defaults).

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::text::toml_file::FileError;

/// Where the effective config came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum ConfigSource {
    Flag(PathBuf),
    Env(PathBuf),
    User(PathBuf),
    System(PathBuf),
    Defaults,
}

impl ConfigSource {
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p)
            | ConfigSource::Env(p)
            | ConfigSource::User(p)
            | ConfigSource::System(p) => Some(p),
            ConfigSource::Defaults => None,
        }
    }

    /// The config this process is told to read (`--config` is `flag`), in the lookup order.
    /// A file named by the flag or the variable must exist.
    pub fn find(flag: Option<&Path>) -> Result<ConfigSource, FileError> {
        locate(
            flag,
            env::var_os("VNODE_CONFIG").map(PathBuf::from),
            home_dir(),
        )
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Flag(p) => write!(f, "{} (from --config)", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (from $VNODE_CONFIG)", p.display()),
            ConfigSource::User(p) => write!(f, "{} (user config)", p.display()),
            ConfigSource::System(p) => write!(f, "{} (system config)", p.display()),
            ConfigSource::Defaults => f.write_str("built-in defaults (no config file found)"),
        }
    }
}

/// The user catalog: the one the config names, else `~/.config/vnode/images.toml` if it exists.
pub(super) fn user_catalog(configured: Option<&Path>) -> Option<PathBuf> {
    configured.map(Path::to_path_buf).or_else(|| {
        home_dir()
            .map(|h| h.join(".config/vnode/images.toml"))
            .filter(|p| p.exists())
    })
}

fn home_dir() -> Option<PathBuf> {
    env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The lookup order, separated from the process environment for tests.
fn locate(
    flag: Option<&Path>,
    env: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<ConfigSource, FileError> {
    let must_exist = |p: PathBuf, what: &str| {
        if p.is_file() {
            Ok(p)
        } else {
            Err(FileError {
                path: p,
                line: None,
                field: None,
                message: format!("no such config file (named by {what})"),
            })
        }
    };
    if let Some(p) = flag {
        return Ok(ConfigSource::Flag(must_exist(p.to_path_buf(), "--config")?));
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(ConfigSource::Env(must_exist(p, "$VNODE_CONFIG")?));
    }
    if let Some(p) = home
        .map(|h| h.join(".config/vnode/config.toml"))
        .filter(|p| p.is_file())
    {
        return Ok(ConfigSource::User(p));
    }
    let system = PathBuf::from("/etc/vnode/config.toml");
    if system.is_file() {
        return Ok(ConfigSource::System(system));
    }
    Ok(ConfigSource::Defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order_flag_env_user_system() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "").unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".config/vnode")).unwrap();
        std::fs::write(home.join(".config/vnode/config.toml"), "").unwrap();
        assert_eq!(
            locate(Some(&file), None, None).unwrap(),
            ConfigSource::Flag(file.clone())
        );
        assert_eq!(
            locate(None, Some(file.clone()), Some(home.clone())).unwrap(),
            ConfigSource::Env(file.clone())
        );
        assert_eq!(
            locate(None, None, Some(home.clone())).unwrap(),
            ConfigSource::User(home.join(".config/vnode/config.toml"))
        );
        let missing = dir.path().join("missing.toml");
        assert!(
            locate(Some(&missing), None, None)
                .unwrap_err()
                .message
                .contains("--config")
        );
        assert!(
            locate(None, Some(missing), None)
                .unwrap_err()
                .message
                .contains("VNODE_CONFIG")
        );
    }
}
