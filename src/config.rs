//! vnode's configuration: where it is looked up, its defaults, and its validation.
//!
//! Every key has a default, so a config file may set just one. Pools are validated together
//! (see [`crate::pool::Pools`]) and every error names the file, line and field.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::Catalog;
use crate::pool::{Pool, Pools, Resources};
use crate::toml_file::{self, FileError, line_of};

/// A commented example config, printed by `vnode config example`.
pub const EXAMPLE: &str = include_str!("config_example.toml");

/// Which hypervisor acceleration guests run under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    /// Probe the host: use KVM only when a guest can really run under it, else TCG.
    #[default]
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// Software emulation (TCG): slow, but works everywhere.
    Qemu,
}

impl fmt::Display for VirtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VirtType::Auto => "auto",
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        })
    }
}

/// An extra account created in every node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Public keys (literal `ssh-ed25519 AAAA...` lines or paths to .pub files).
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// Passwordless sudo.
    #[serde(default)]
    pub sudo: bool,
    pub shell: Option<String>,
}

/// Extra cloud-config the user adds to every node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudInitExtra {
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub runcmd: Vec<String>,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub libvirt_uri: String,
    pub virt_type: VirtType,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Public keys authorized for root in every node; empty means the invoking user's ~/.ssh/id_*.pub.
    pub ssh_keys: Vec<String>,
    pub users: Vec<UserConfig>,
    pub default_distro: Option<String>,
    pub catalog: Option<PathBuf>,
    pub cloud_init: CloudInitExtra,
    pub pools: Pools,
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    libvirt_uri: Option<String>,
    virt_type: Option<VirtType>,
    cache_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    ssh_keys: Vec<String>,
    #[serde(default)]
    users: Vec<UserConfig>,
    default_distro: Option<Spanned<String>>,
    default_pool: Option<Spanned<String>>,
    catalog: Option<PathBuf>,
    #[serde(default)]
    cloud_init: CloudInitExtra,
    resources: Option<Resources>,
    #[serde(default, rename = "pool")]
    pools: Vec<PoolFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    stem: Spanned<String>,
    width: Option<u8>,
    first: Option<u32>,
    last: Option<u32>,
    mac_id: Option<u8>,
    bridge: Option<String>,
    network: Option<String>,
    domain: Option<String>,
    public_subnet: Option<Ipv4Net>,
    public_offset: Option<u32>,
    memory_mib: Option<u32>,
    vcpus: Option<u32>,
    disk_gib: Option<u32>,
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

    fn from_file(f: ConfigFile, path: &Path, text: &str) -> Result<Config, FileError> {
        let err = |line: Option<usize>, field: &str, message: String| FileError {
            path: path.into(),
            line,
            field: Some(field.into()),
            message,
        };
        let resources = f.resources.unwrap_or_default();
        let mut pools = Vec::new();
        for (i, p) in f.pools.into_iter().enumerate() {
            let line = Some(line_of(text, p.stem.span().start));
            let base = Pool::default_pool();
            let pool = Pool {
                stem: p.stem.into_inner(),
                width: p.width.unwrap_or(base.width),
                first: p.first.unwrap_or(base.first),
                last: p.last.unwrap_or_else(|| {
                    10u32.pow(u32::from(p.width.unwrap_or(base.width).min(4))) - 1
                }),
                mac_id: p.mac_id.unwrap_or(i as u8),
                bridge: p.bridge.unwrap_or(base.bridge),
                network: p.network.unwrap_or(base.network),
                domain: p.domain,
                public_subnet: p.public_subnet,
                public_offset: p.public_offset.unwrap_or(base.public_offset),
                resources: Resources {
                    memory_mib: p.memory_mib.unwrap_or(resources.memory_mib),
                    vcpus: p.vcpus.unwrap_or(resources.vcpus),
                    disk_gib: p.disk_gib.unwrap_or(resources.disk_gib),
                },
            };
            pool.check()
                .map_err(|m| err(line, &format!("pool[{i}]"), m))?;
            pools.push(pool);
        }
        if pools.is_empty() {
            pools.push(Pool {
                resources,
                ..Pool::default_pool()
            });
        }
        let default_pool_line = f
            .default_pool
            .as_ref()
            .map(|s| line_of(text, s.span().start));
        let pools = Pools::new(pools, f.default_pool.as_ref().map(|s| s.get_ref().as_str()))
            .map_err(|m| err(default_pool_line, "pool", m))?;
        for (i, u) in f.users.iter().enumerate() {
            let ok = !u.name.is_empty()
                && u.name.len() <= 32
                && u.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
                && u.name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
            if !ok || u.name == "root" {
                return Err(err(
                    None,
                    &format!("users[{i}].name"),
                    format!("'{}' is not a valid new user name", u.name),
                ));
            }
        }
        let default_distro = match f.default_distro {
            None => None,
            Some(d) => {
                let line = Some(line_of(text, d.span().start));
                let d = d.into_inner();
                // Checked against the built-in catalog; a user catalog is checked when loaded.
                if crate::catalog::check_name(&d.to_ascii_lowercase()).is_err() {
                    return Err(err(
                        line,
                        "default_distro",
                        format!("'{d}' is not an image name"),
                    ));
                }
                Some(d)
            }
        };
        Ok(Config {
            libvirt_uri: f.libvirt_uri.unwrap_or_else(|| "qemu:///system".into()),
            virt_type: f.virt_type.unwrap_or_default(),
            cache_dir: f
                .cache_dir
                .unwrap_or_else(|| "/var/lib/vnode/images".into()),
            state_dir: f.state_dir.unwrap_or_else(|| "/var/lib/vnode/nodes".into()),
            ssh_keys: f.ssh_keys,
            users: f.users,
            default_distro,
            catalog: f.catalog,
            cloud_init: f.cloud_init,
            pools,
        })
    }

    /// Finds and loads the config: `--config`, `$VNODE_CONFIG`, the user's, the system's, or defaults.
    /// A file named by the flag or the variable must exist.
    pub fn load(flag: Option<&Path>) -> Result<(Config, ConfigSource), FileError> {
        let source = locate(
            flag,
            env::var_os("VNODE_CONFIG").map(PathBuf::from),
            home_dir(),
        )?;
        let config = match source.path() {
            None => Config::defaults(),
            Some(path) => Config::parse(path, &toml_file::read_text(path)?)?,
        };
        Ok((config, source))
    }

    /// The catalog: built-in, plus the user catalog named in the config or found at
    /// `~/.config/vnode/images.toml`.
    pub fn load_catalog(&self) -> Result<Catalog, FileError> {
        let user = self.catalog.clone().or_else(|| {
            home_dir()
                .map(|h| h.join(".config/vnode/images.toml"))
                .filter(|p| p.exists())
        });
        match user {
            None => Catalog::load(None),
            Some(path) => {
                let text = toml_file::read_text(&path)?;
                Catalog::load(Some((&path, &text)))
            }
        }
    }
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
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults();
        assert_eq!(c.libvirt_uri, "qemu:///system");
        assert_eq!(c.virt_type, VirtType::Auto);
        assert_eq!(c.cache_dir, Path::new("/var/lib/vnode/images"));
        let p = c.pools.default_pool();
        assert_eq!(
            (p.stem.as_str(), p.width, p.first, p.last, p.mac_id),
            ("vnode", 2, 0, 99, 0)
        );
        assert_eq!((p.bridge.as_str(), p.network.as_str()), ("br0", "default"));
    }

    #[test]
    fn a_partial_resources_table_keeps_the_other_defaults() {
        let c = Config::parse(Path::new("c.toml"), "[resources]\nmemory_mib = 512\n").unwrap();
        let r = c.pools.default_pool().resources;
        assert_eq!((r.memory_mib, r.vcpus, r.disk_gib), (512, 1, 10));
    }

    #[test]
    fn one_key_is_enough() {
        let c = Config::parse(Path::new("c.toml"), "virt_type = \"qemu\"\n").unwrap();
        assert_eq!(c.virt_type, VirtType::Qemu);
        assert_eq!(c.pools, Config::defaults().pools);
    }

    #[test]
    fn the_example_config_is_valid_and_has_two_pools() {
        let c = Config::parse(Path::new("example"), EXAMPLE).unwrap();
        assert_eq!(c.pools.all().len(), 2);
        assert_eq!(c.pools.all()[1].resources.memory_mib, 2048);
    }

    #[test]
    fn pools_inherit_global_resources_and_get_their_own_mac_ids() {
        let text = "[resources]\nmemory_mib = 512\nvcpus = 2\ndisk_gib = 5\n[[pool]]\nstem = \"vnode\"\n[[pool]]\nstem = \"big\"\nwidth = 3\nmemory_mib = 4096\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        let [a, b] = c.pools.all() else { panic!() };
        assert_eq!((a.resources.memory_mib, a.mac_id), (512, 0));
        assert_eq!(
            (b.resources.memory_mib, b.resources.vcpus, b.mac_id, b.last),
            (4096, 2, 1, 999)
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = Config::parse(Path::new("c.toml"), "virt_type = \"qemu\"\nvirt_typo = 1\n")
            .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().starts_with("c.toml:2"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "\n[[pool]]\nstem = \"a1\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(3), Some("pool[0]")),
            "{e}"
        );
        let overlap = "[[pool]]\nstem = \"a\"\nmac_id = 1\n[[pool]]\nstem = \"b\"\nmac_id = 1\n";
        let e = Config::parse(Path::new("c.toml"), overlap).unwrap_err();
        assert!(e.message.contains("'a' and 'b'"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "virt_type = \"xen\"\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

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
