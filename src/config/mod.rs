//! vnode's configuration: where it is looked up, its defaults, and its validation.
//!
//! Every key has a default, so a config file may set just one. Pools are validated together
//! (see [`crate::plan::pool::Pools`]) and every error names the file, line and field.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::images::catalog::Catalog;
use crate::plan::pool::{
    DISK_GIB, Limit, MAC_ID, MEMORY_MIB, NUMBER, PUBLIC_OFFSET, Pool, PoolProblem, Pools,
    PoolsError, Resources, VCPUS, WIDTH,
};
use crate::text::names;

pub mod toml_file;

use toml_file::{FileError, line_of};

/// A commented example config, printed by `vnode config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserConfig {
    pub name: String,
    /// Public keys (literal `ssh-ed25519 AAAA...` lines or paths to .pub files).
    pub ssh_keys: Vec<String>,
    /// Passwordless sudo.
    pub sudo: bool,
    pub shell: Option<String>,
}

/// Extra cloud-config the user adds to every node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CloudInitExtra {
    pub packages: Vec<String>,
    pub runcmd: Vec<String>,
    /// Which modules cloud-init runs (`modules = "needed"|"image"`).
    pub modules: crate::node::cloud_init::ModuleLists,
}

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

/// One `[[hosts]]` entry: a libvirt host vnode places nodes on, reached through libvirt's own
/// remote protocol (`qemu+ssh://root@HOST/system`); vnode runs nothing of its own there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostConfig {
    /// What specs (`3@h2`), `--host` and the tables call it.
    pub name: String,
    pub uri: String,
    /// At most this many vnode nodes on the host (placement skips a full host).
    pub max_nodes: Option<u32>,
    /// At most this many nodes boot at once on this host; overrides the top-level
    /// `parallel_boots`, and `--parallel` overrides both.
    pub parallel_boots: Option<u32>,
    /// The libvirt storage pool that holds vnode's volumes there (base images, overlays, seeds).
    pub storage_pool: String,
    /// Where that pool's directory is created when the pool does not exist yet.
    pub pool_path: PathBuf,
}

/// The storage pool vnode uses on a `[[hosts]]` host unless told otherwise.
pub const DEFAULT_STORAGE_POOL: &str = "vnode";
/// Its directory on the host, when vnode has to create the pool.
pub const DEFAULT_POOL_PATH: &str = "/var/lib/libvirt/vnode";
const MAX_NODES: Limit = Limit::new(1, 100_000, " nodes");

/// The default of `libvirt_grace_secs`, and what it may be (a day at most).
pub const DEFAULT_LIBVIRT_GRACE_SECS: u64 = 30;
const LIBVIRT_GRACE_SECS: Limit = Limit::new(0, 86_400, " seconds (a day)");
/// What `parallel_boots` may be.
const PARALLEL_BOOTS: Limit = Limit::new(1, 100_000, " nodes");

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

// The file's shape. Every value is kept with its span, so that a problem names the line of its
// key; numbers are read as i64 and strings as strings, so that an out-of-range or malformed value
// gets a message saying what is allowed rather than serde's "expected u8".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    libvirt_uri: Option<Spanned<String>>,
    virt_type: Option<Spanned<String>>,
    libvirt_grace_secs: Option<Spanned<i64>>,
    parallel_boots: Option<Spanned<i64>>,
    cache_dir: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    #[serde(default)]
    ssh_keys: Vec<Spanned<String>>,
    #[serde(default)]
    users: Vec<UserFile>,
    default_distro: Option<Spanned<String>>,
    default_pool: Option<Spanned<String>>,
    catalog: Option<Spanned<String>>,
    #[serde(default)]
    cloud_init: CloudInitFile,
    #[serde(default)]
    virt_install_args: Vec<Spanned<String>>,
    #[serde(default)]
    resources: ResourcesFile,
    #[serde(default, rename = "pool")]
    pools: Vec<PoolFile>,
    #[serde(default)]
    hosts: Vec<HostFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    name: Spanned<String>,
    uri: Spanned<String>,
    max_nodes: Option<Spanned<i64>>,
    parallel_boots: Option<Spanned<i64>>,
    storage_pool: Option<Spanned<String>>,
    pool_path: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    name: Spanned<String>,
    #[serde(default)]
    ssh_keys: Vec<Spanned<String>>,
    #[serde(default)]
    sudo: bool,
    shell: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CloudInitFile {
    packages: Vec<Spanned<String>>,
    runcmd: Vec<Spanned<String>>,
    modules: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResourcesFile {
    memory_mib: Option<Spanned<i64>>,
    vcpus: Option<Spanned<i64>>,
    disk_gib: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    stem: Spanned<String>,
    width: Option<Spanned<i64>>,
    first: Option<Spanned<i64>>,
    last: Option<Spanned<i64>>,
    mac_id: Option<Spanned<i64>>,
    bridge: Option<Spanned<String>>,
    network: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    public_subnet: Option<Spanned<String>>,
    public_offset: Option<Spanned<i64>>,
    memory_mib: Option<Spanned<i64>>,
    vcpus: Option<Spanned<i64>>,
    disk_gib: Option<Spanned<i64>>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
}

impl PoolFile {
    /// Where each key the file sets is, for problems found on the whole pool.
    fn spans(&self) -> Vec<(&'static str, Span)> {
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

type Span = std::ops::Range<usize>;

/// One config file's text, to locate its problems.
struct Located<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Located<'_> {
    fn error(&self, span: Option<Span>, field: &str, message: String) -> FileError {
        FileError {
            path: self.path.into(),
            line: span.map(|s| line_of(self.text, s.start)),
            field: Some(field.into()),
            message,
        }
    }

    /// A string that `rule` accepts.
    fn string(
        &self,
        value: Spanned<String>,
        field: &str,
        rule: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<String, FileError> {
        rule(value.get_ref()).map_err(|m| self.error(Some(value.span()), field, m))?;
        Ok(value.into_inner())
    }

    fn strings(
        &self,
        values: Vec<Spanned<String>>,
        field: &str,
        rule: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Vec<String>, FileError> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| self.string(v, &format!("{field}[{i}]"), &rule))
            .collect()
    }

    /// A number within `limit`, as the field's type (every limit lies within it).
    fn number<T: TryFrom<i64>>(
        &self,
        value: Option<&Spanned<i64>>,
        field: &str,
        key: &str,
        limit: Limit,
    ) -> Result<Option<T>, FileError> {
        let Some(value) = value else { return Ok(None) };
        let n = *value.get_ref();
        limit
            .check(key, n)
            .map_err(|m| self.error(Some(value.span()), field, m))?;
        Ok(Some(T::try_from(n).unwrap_or_else(|_| {
            unreachable!("the limit of {key} lies within its type")
        })))
    }

    fn resources(
        &self,
        r: &ResourcesFile,
        field: impl Fn(&str) -> String,
        inherited: Resources,
    ) -> Result<Resources, FileError> {
        Ok(Resources {
            memory_mib: self
                .number(
                    r.memory_mib.as_ref(),
                    &field("memory_mib"),
                    "memory_mib",
                    MEMORY_MIB,
                )?
                .unwrap_or(inherited.memory_mib),
            vcpus: self
                .number(r.vcpus.as_ref(), &field("vcpus"), "vcpus", VCPUS)?
                .unwrap_or(inherited.vcpus),
            disk_gib: self
                .number(
                    r.disk_gib.as_ref(),
                    &field("disk_gib"),
                    "disk_gib",
                    DISK_GIB,
                )?
                .unwrap_or(inherited.disk_gib),
        })
    }

    /// The extra accounts: valid, new and distinct names, one-line keys, absolute shells.
    fn users(&self, users: Vec<UserFile>) -> Result<Vec<UserConfig>, FileError> {
        let mut out: Vec<UserConfig> = Vec::new();
        for (i, u) in users.into_iter().enumerate() {
            let field = |key: &str| format!("users[{i}].{key}");
            let name = self.string(u.name, &field("name"), |name| {
                if let Some(j) = out.iter().position(|o| o.name == name) {
                    return Err(format!("{} is already users[{j}]", names::quoted(name)));
                }
                check_user_name(name)
            })?;
            out.push(UserConfig {
                name,
                ssh_keys: self.strings(u.ssh_keys, &field("ssh_keys"), check_key)?,
                sudo: u.sudo,
                shell: match u.shell {
                    None => None,
                    Some(s) => Some(self.string(s, &field("shell"), check_shell)?),
                },
            });
        }
        Ok(out)
    }

    /// The `[[hosts]]`: distinct host names, one-word URIs, limits in range.
    fn hosts(&self, hosts: Vec<HostFile>) -> Result<Vec<HostConfig>, FileError> {
        let mut out: Vec<HostConfig> = Vec::new();
        for (i, h) in hosts.into_iter().enumerate() {
            let field = |key: &str| format!("hosts[{i}].{key}");
            let name = self.string(h.name, &field("name"), |name| {
                if let Some(j) = out.iter().position(|o| o.name == name) {
                    return Err(format!("{} is already hosts[{j}]", names::quoted(name)));
                }
                if name == crate::plan::planned_node::HostName::LOCAL {
                    return Err(format!(
                        "{} is what vnode calls this host when there are no [[hosts]]; give \
                         the host another name",
                        names::quoted(name)
                    ));
                }
                names::check_host_name(name)
            })?;
            let uri = self.string(h.uri, &field("uri"), |u| {
                names::check_word(u, "a libvirt URI")?;
                if !u.contains("://") {
                    return Err(format!(
                        "{} is not a libvirt URI: write e.g. qemu+ssh://root@HOST/system",
                        names::quoted(u)
                    ));
                }
                Ok(())
            })?;
            let max_nodes = self.number(
                h.max_nodes.as_ref(),
                &field("max_nodes"),
                "max_nodes",
                MAX_NODES,
            )?;
            let parallel_boots = self.number(
                h.parallel_boots.as_ref(),
                &field("parallel_boots"),
                "parallel_boots",
                PARALLEL_BOOTS,
            )?;
            let storage_pool = match h.storage_pool {
                None => DEFAULT_STORAGE_POOL.into(),
                Some(p) => self.string(p, &field("storage_pool"), |p| {
                    names::check_host_name(p).map_err(|_| {
                        format!(
                            "{} is not a storage pool name (letters, digits, '-', '_', '.')",
                            names::quoted(p)
                        )
                    })
                })?,
            };
            let pool_path = match h.pool_path {
                None => DEFAULT_POOL_PATH.into(),
                Some(p) => self
                    .string(p, &field("pool_path"), names::check_absolute_path)?
                    .into(),
            };
            out.push(HostConfig {
                name,
                uri,
                max_nodes,
                parallel_boots,
                storage_pool,
                pool_path,
            });
        }
        Ok(out)
    }

    /// Pool `i` of the file, checked on its own; `resources` are the file's defaults.
    fn pool(
        &self,
        i: usize,
        mut p: PoolFile,
        resources: Resources,
        hosts: &[HostConfig],
    ) -> Result<Pool, FileError> {
        let field = |key: &str| format!("pool[{i}].{key}");
        let spans = p.spans();
        let pool_hosts = self.strings(std::mem::take(&mut p.hosts), &field("hosts"), |h| {
            if hosts.iter().any(|c| c.name == h) {
                Ok(())
            } else if hosts.is_empty() {
                Err(format!(
                    "{} is not a host: the config has no [[hosts]]",
                    names::quoted(h)
                ))
            } else {
                Err(format!(
                    "{} is not one of the [[hosts]] ({})",
                    names::quoted(h),
                    hosts
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        })?;
        let base = Pool::default_pool();
        let width: u8 = self
            .number(p.width.as_ref(), &field("width"), "width", WIDTH)?
            .unwrap_or(base.width);
        let number =
            |v: &Option<Spanned<i64>>, key| self.number(v.as_ref(), &field(key), key, NUMBER);
        let public_subnet = match p.public_subnet {
            None => None,
            Some(s) => Some(s.get_ref().parse::<Ipv4Net>().map_err(|_| {
                self.error(
                    Some(s.span()),
                    &field("public_subnet"),
                    format!(
                        "{} is not an IPv4 subnet: write ADDRESS/PREFIX, e.g. 198.18.0.0/24",
                        names::quoted(s.get_ref())
                    ),
                )
            })?),
        };
        let pool = Pool {
            width,
            first: number(&p.first, "first")?.unwrap_or(base.first),
            last: number(&p.last, "last")?.unwrap_or(10u32.pow(width.into()) - 1),
            // Past the tenth pool the position is no mac_id, and the check says so.
            mac_id: self
                .number(p.mac_id.as_ref(), &field("mac_id"), "mac_id", MAC_ID)?
                .unwrap_or(u8::try_from(i).unwrap_or(u8::MAX)),
            bridge: p.bridge.map_or(base.bridge, Spanned::into_inner),
            network: p.network.map_or(base.network, Spanned::into_inner),
            domain: p.domain.map(Spanned::into_inner),
            public_subnet,
            public_offset: self
                .number(
                    p.public_offset.as_ref(),
                    &field("public_offset"),
                    "public_offset",
                    PUBLIC_OFFSET,
                )?
                .unwrap_or(base.public_offset),
            resources: self.resources(
                &ResourcesFile {
                    memory_mib: p.memory_mib,
                    vcpus: p.vcpus,
                    disk_gib: p.disk_gib,
                },
                field,
                resources,
            )?,
            hosts: pool_hosts,
            stem: p.stem.into_inner(),
        };
        pool.check()
            .map_err(|problem| self.pool_error(i, &spans, problem))?;
        Ok(pool)
    }

    /// A problem of pool `i`, on the line of the key it blames, or of the pool's stem when the
    /// key is not set (then the message says the default was used).
    fn pool_error(&self, i: usize, spans: &[(&str, Span)], problem: PoolProblem) -> FileError {
        let field = format!("pool[{i}].{}", problem.field);
        match spans.iter().find(|(k, _)| *k == problem.field) {
            Some((_, span)) => self.error(Some(span.clone()), &field, problem.message),
            None => self.error(
                spans.first().map(|(_, s)| s.clone()),
                &field,
                format!(
                    "{}; {} is not set in this pool, so it has its default",
                    problem.message, problem.field
                ),
            ),
        }
    }
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
        let at = Located { path, text };
        let resources = at.resources(
            &f.resources,
            |k| format!("resources.{k}"),
            Resources::default(),
        )?;
        let hosts = at.hosts(f.hosts)?;
        let mut pools = Vec::new();
        let mut spans = Vec::new();
        for (i, p) in f.pools.into_iter().enumerate() {
            spans.push(p.spans());
            pools.push(at.pool(i, p, resources, &hosts)?);
        }
        if pools.is_empty() {
            pools.push(Pool {
                resources,
                ..Pool::default_pool()
            });
        }
        let default_pool = f.default_pool.as_ref();
        let pools = Pools::validate(pools, default_pool.map(|s| s.get_ref().as_str())).map_err(
            |e| match e {
                PoolsError::Pool { index, problem } => at.pool_error(index, &spans[index], problem),
                PoolsError::DefaultPool(m) => {
                    at.error(default_pool.map(Spanned::span), "default_pool", m)
                }
                PoolsError::Empty => unreachable!("a config without pools gets the default pool"),
            },
        )?;
        let users = at.users(f.users)?;
        let default_distro = match f.default_distro {
            None => None,
            Some(d) => Some(at.string(d, "default_distro", |d| {
                // Checked against the built-in catalog; a user catalog is checked when loaded.
                crate::images::catalog::check_name(&d.to_ascii_lowercase()).map_err(|_| {
                    format!(
                        "{} is not an image name (a catalog name or alias like f43, an imported \
                         or a derived image)",
                        names::quoted(d)
                    )
                })
            })?),
        };
        let path_of = |v: Option<Spanned<String>>, field: &str, default: &str| {
            v.map_or(Ok(default.into()), |v| {
                at.string(v, field, names::check_absolute_path)
            })
            .map(PathBuf::from)
        };
        Ok(Config {
            libvirt_uri: match f.libvirt_uri {
                None => "qemu:///system".into(),
                Some(u) => {
                    at.string(u, "libvirt_uri", |u| names::check_word(u, "a libvirt URI"))?
                }
            },
            virt_type: match f.virt_type {
                None => VirtType::default(),
                Some(v) => parse_virt_type(v.get_ref())
                    .map_err(|m| at.error(Some(v.span()), "virt_type", m))?,
            },
            libvirt_grace_secs: at
                .number(
                    f.libvirt_grace_secs.as_ref(),
                    "libvirt_grace_secs",
                    "libvirt_grace_secs",
                    LIBVIRT_GRACE_SECS,
                )?
                .unwrap_or(DEFAULT_LIBVIRT_GRACE_SECS),
            parallel_boots: at.number(
                f.parallel_boots.as_ref(),
                "parallel_boots",
                "parallel_boots",
                PARALLEL_BOOTS,
            )?,
            cache_dir: path_of(f.cache_dir, "cache_dir", "/var/lib/vnode/images")?,
            state_dir: path_of(f.state_dir, "state_dir", "/var/lib/vnode/nodes")?,
            ssh_keys: at.strings(f.ssh_keys, "ssh_keys", check_key)?,
            users,
            default_distro,
            catalog: match f.catalog {
                None => None,
                Some(c) => Some(
                    at.string(c, "catalog", |c| names::check_line(c, "a path"))?
                        .into(),
                ),
            },
            cloud_init: CloudInitExtra {
                packages: at.strings(f.cloud_init.packages, "cloud_init.packages", |p| {
                    names::check_word(p, "a package name")
                })?,
                runcmd: at.strings(f.cloud_init.runcmd, "cloud_init.runcmd", check_command)?,
                modules: match f.cloud_init.modules {
                    None => Default::default(),
                    Some(m) => {
                        let span = m.span();
                        let m = m.into_inner();
                        crate::node::cloud_init::ModuleLists::parse(&m).ok_or_else(|| {
                            at.error(
                                Some(span),
                                "cloud_init.modules",
                                format!(
                                    "{} is not a module choice: write \"needed\" (only what \
                                     vnode's cloud-config needs) or \"image\" (the image's own lists)",
                                    names::quoted(&m)
                                ),
                            )
                        })?
                    }
                },
            },
            virt_install_args: at.strings(
                f.virt_install_args,
                "virt_install_args",
                check_virt_install_arg,
            )?,
            pools,
            hosts,
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

fn parse_virt_type(value: &str) -> Result<VirtType, String> {
    [VirtType::Auto, VirtType::Kvm, VirtType::Qemu]
        .into_iter()
        .find(|v| v.to_string() == value)
        .ok_or_else(|| {
            format!(
                "{} is not a virt_type: use auto, kvm or qemu",
                names::quoted(value)
            )
        })
}

/// A name useradd accepts everywhere, for an account that does not exist yet.
fn check_user_name(name: &str) -> Result<(), String> {
    let chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
    let start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if chars && start && name.len() <= 32 && name != "root" {
        return Ok(());
    }
    Err(format!(
        "{} is not a valid new user name: use 1-32 lowercase letters, digits, '_' or '-', \
         starting with a letter or '_', and not root",
        names::quoted(name)
    ))
}

/// A literal public key or a path to one: a single line either way (a newline would authorize
/// a second key).
fn check_key(key: &str) -> Result<(), String> {
    names::check_line(key, "a public key or a path to one")
}

fn check_shell(shell: &str) -> Result<(), String> {
    names::check_word(shell, "a login shell")?;
    if !shell.starts_with('/') {
        return Err(format!(
            "{} is not a login shell: it must be an absolute path like /bin/bash",
            names::quoted(shell)
        ));
    }
    Ok(())
}

/// A runcmd entry may span lines (it is a shell script); only NUL cannot be in one.
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

fn check_virt_install_arg(arg: &str) -> Result<(), String> {
    if arg.is_empty() || arg.contains(['\0', '\n']) {
        return Err("an argument must be one non-empty line".into());
    }
    let option = arg.split('=').next().unwrap_or(arg);
    if VNODE_OWNS.contains(&option) {
        return Err(format!(
            "{} is vnode's to set (it owns {}); leave it out",
            names::quoted(arg),
            VNODE_OWNS.join(", ")
        ));
    }
    Ok(())
}

fn check_command(command: &str) -> Result<(), String> {
    if command.contains('\0') {
        return Err(format!(
            "{} is not a shell command: it contains a NUL character",
            names::quoted(command)
        ));
    }
    Ok(())
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
    fn a_host_may_cap_its_own_boots_and_the_cap_is_checked() {
        let text = "parallel_boots = 4\n[[hosts]]\nname = \"h1\"\nuri = \"qemu+ssh://root@a/system\"\nparallel_boots = 1\n[[hosts]]\nname = \"h2\"\nuri = \"qemu+ssh://root@b/system\"\n";
        let c = Config::parse(Path::new("c.toml"), text).unwrap();
        assert_eq!(c.parallel_boots, Some(4));
        assert_eq!(c.hosts[0].parallel_boots, Some(1));
        assert_eq!(c.hosts[1].parallel_boots, None);
        let e = Config::parse(
            Path::new("c.toml"),
            &text.replace("parallel_boots = 1", "parallel_boots = 0"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("c.toml:5") && e.contains("parallel_boots"),
            "{e}"
        );
    }

    #[test]
    fn virt_install_args_are_kept_in_order_and_vnodes_own_options_refused() {
        let c = Config::parse(
            Path::new("c.toml"),
            "virt_install_args = [\"--memballoon\", \"none\"]\n[cloud_init]\nmodules = \"needed\"\n",
        )
        .unwrap();
        assert_eq!(c.virt_install_args, ["--memballoon", "none"]);
        assert_eq!(
            c.cloud_init.modules,
            crate::node::cloud_init::ModuleLists::Needed
        );
        for bad in ["--name=x", "--connect", "--import", ""] {
            let e = Config::parse(
                Path::new("c.toml"),
                &format!("virt_install_args = [\"--cpu\", \"{bad}\"]\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("virt_install_args[1]"), "{bad}: {e}");
        }
        let e = Config::parse(Path::new("c.toml"), "[cloud_init]\nmodules = \"few\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml:2") && e.contains("\"needed\""), "{e}");
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
            (Some(3), Some("pool[0].stem")),
            "{e}"
        );
        let overlap = "[[pool]]\nstem = \"a\"\nmac_id = 1\n[[pool]]\nstem = \"b\"\nmac_id = 1\n";
        let e = Config::parse(Path::new("c.toml"), overlap).unwrap_err();
        assert!(e.message.contains("'a' and 'b'"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "virt_type = \"xen\"\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    /// The line, field and message of the text's rejection.
    fn rejection(text: &str) -> (usize, String, String) {
        let e = Config::parse(Path::new("c.toml"), text).expect_err(text);
        assert!(!e.message.contains('\n'), "{e}");
        (
            e.line.expect("a line"),
            e.field.expect("a field"),
            e.message,
        )
    }

    fn assert_rejected(text: &str, line: usize, field: &str, says: &str) {
        let (l, f, m) = rejection(text);
        assert_eq!((l, f.as_str()), (line, field), "{m}");
        assert!(m.contains(says), "{m}");
    }

    const POOL: &str = "virt_type = \"qemu\"\n[[pool]]\nstem = \"a\"\n";

    #[test]
    fn bridge_and_network_are_interface_names() {
        for (key, value, says) in [
            ("bridge", r#""br0,model=e1000""#, "it contains ','"),
            ("bridge", r#""br0\nx""#, "it contains '\\n'"),
            (
                "bridge",
                r#""abcdefghijklmnop""#,
                "it is 16 bytes, more than Linux's 15",
            ),
            ("bridge", r#""""#, "it is empty"),
            ("bridge", r#"".""#, "'.' and '..' are not interface names"),
            ("network", r#""def ault""#, "it contains ' '"),
            ("network", r#""net/1""#, "it contains '/'"),
        ] {
            let text = format!("{POOL}width = 2\n{key} = {value}\n");
            assert_rejected(&text, 5, &format!("pool[0].{key}"), says);
        }
        let ok = format!("{POOL}bridge = \"br-lab_0.1\"\nnetwork = \"abcdefghijklmno\"\n");
        Config::parse(Path::new("c.toml"), &ok).unwrap();
    }

    #[test]
    fn domain_is_a_dns_domain() {
        for (value, says) in [
            (r#""lab\nserver=1.1.1.1""#, "it contains '\\n'"),
            (r#""lab,local""#, "it contains ','"),
            (r#""lab.""#, "without the trailing dot"),
            (r#""-lab.org""#, "starts or ends with '-'"),
            (r#""a..b""#, "empty label"),
        ] {
            assert_rejected(
                &format!("{POOL}domain = {value}\n"),
                4,
                "pool[0].domain",
                says,
            );
        }
        let long = vec!["a".repeat(63); 3].join(".") + "." + &"a".repeat(59);
        assert_rejected(
            &format!("{POOL}domain = \"{long}\"\n"),
            4,
            "pool[0].domain",
            "a99.DOMAIN would be 255 bytes, more than DNS's 253",
        );
        let ok = format!("{POOL}domain = \"Lab-1.example.org\"\n");
        Config::parse(Path::new("c.toml"), &ok).unwrap();
    }

    #[test]
    fn pool_numbers_are_range_checked_on_their_line() {
        for (key, value, says) in [
            ("width", "300", "width 300 is not between 1 and 4"),
            ("width", "0", "width 0 is not between 1 and 4"),
            ("first", "-1", "first -1 is not between 0 and 9999"),
            (
                "last",
                "100",
                "last (100) does not fit in 2 digits (at most 99)",
            ),
            (
                "last",
                "99999999999",
                "last 99999999999 is not between 0 and 9999",
            ),
            ("mac_id", "10", "mac_id 10 is not between 0 and 9"),
            (
                "public_offset",
                "4294967295",
                "public_offset 4294967295 is not between 0 and 16777215",
            ),
            ("public_offset", "-5", "public_offset -5 is not between"),
            (
                "memory_mib",
                "64",
                "memory_mib 64 is not between 128 and 16777216 MiB (16 TiB)",
            ),
            ("memory_mib", "16777217", "is not between 128 and 16777216"),
            ("vcpus", "4097", "vcpus 4097 is not between 1 and 4096"),
            ("vcpus", "0", "vcpus 0 is not between 1 and 4096"),
            (
                "disk_gib",
                "65537",
                "disk_gib 65537 is not between 1 and 65536 GiB (64 TiB)",
            ),
        ] {
            let text = format!("{POOL}\n{key} = {value}\n");
            assert_rejected(&text, 5, &format!("pool[0].{key}"), says);
        }
        assert_rejected(
            &format!("{POOL}last = 3\nfirst = 5\n"),
            5,
            "pool[0].first",
            "first (5) is greater than last (3)",
        );
        assert_rejected(
            "[resources]\nvcpus = 2\nmemory_mib = 99999999999999\n",
            3,
            "resources.memory_mib",
            "memory_mib 99999999999999 is not between 128",
        );
        assert_rejected(
            "[resources]\ndisk_gib = 0\n",
            2,
            "resources.disk_gib",
            "disk_gib 0",
        );
    }

    #[test]
    fn public_addresses_must_fit_the_subnet() {
        let subnet = format!("{POOL}public_subnet = \"198.18.0.0/24\"\n");
        assert_rejected(
            &format!("{subnet}public_offset = 200\n"),
            5,
            "pool[0].public_offset",
            "cannot hold nodes 0..99: their addresses would be at offsets 200..299 in the \
             subnet, whose host addresses are at offsets 1..254",
        );
        // The default offset (100) is blamed on the stem's line, and the message says so.
        assert_rejected(
            &format!("{POOL}public_subnet = \"198.18.0.0/25\"\n"),
            3,
            "pool[0].public_offset",
            "public_offset is not set in this pool, so it has its default",
        );
        assert_rejected(
            &format!("{POOL}public_subnet = \"198.18.0.0/31\"\n"),
            3,
            "pool[0].public_offset",
            "has no host addresses",
        );
        assert_rejected(
            &format!("{POOL}public_subnet = \"198.18.0.0\"\n"),
            4,
            "pool[0].public_subnet",
            "'198.18.0.0' is not an IPv4 subnet: write ADDRESS/PREFIX",
        );
        let top = format!("{POOL}public_subnet = \"255.255.255.0/24\"\npublic_offset = 155\n");
        let c = Config::parse(Path::new("c.toml"), &top).unwrap();
        let p = c.pools.default_pool();
        assert_eq!(p.public_ip(99), Some("255.255.255.254".parse().unwrap()));
    }

    #[test]
    fn pools_clash_on_the_later_pools_line() {
        let two = |a: &str, b: &str| {
            format!("[[pool]]\nstem = \"a\"\n{a}\n[[pool]]\nstem = \"b\"\n{b}\n")
        };
        assert_rejected(
            &two("mac_id = 3", "mac_id = 3"),
            6,
            "pool[1].mac_id",
            "pools 'a' and 'b' both use mac_id 3",
        );
        assert_rejected(
            "[[pool]]\nstem = \"a\"\n[[pool]]\nstem = \"a\"\n",
            4,
            "pool[1].stem",
            "same stem",
        );
        let net = "public_subnet = \"198.18.0.0/24\"";
        assert_rejected(
            &two(net, &format!("{net}\npublic_offset = 150")),
            6,
            "pool[1].public_subnet",
            "overlapping public addresses (198.18.0.100-198.18.0.199 and 198.18.0.150-198.18.0.249)",
        );
        let eleven: String = (0..11)
            .map(|i| format!("[[pool]]\nstem = \"p{}\"\n", char::from(b'a' + i)))
            .collect();
        assert_rejected(
            &eleven,
            22,
            "pool[10].mac_id",
            "mac_id 10 is not between 0 and 9 (the MAC scheme's one digit); mac_id is not set",
        );
        assert_rejected(
            "\ndefault_pool = \"nope\"\n",
            2,
            "default_pool",
            "default_pool 'nope' is not one of the pools (vnode)",
        );
        // Found by the property test: the value is quoted with its newline escaped.
        assert_rejected(
            "default_pool = \"lab\\nserver=1.1.1.1\"\n",
            1,
            "default_pool",
            "default_pool 'lab\\nserver=1.1.1.1' is not one of the pools",
        );
    }

    #[test]
    fn top_level_strings_stay_on_one_line() {
        for (key, value, says) in [
            (
                "libvirt_uri",
                r#""qemu:///system --foo""#,
                "is not a libvirt URI: it must be non-empty, without whitespace or control characters",
            ),
            ("libvirt_uri", r#""""#, "is not a libvirt URI"),
            (
                "virt_type",
                r#""xen""#,
                "'xen' is not a virt_type: use auto, kvm or qemu",
            ),
            (
                "cache_dir",
                r#""images""#,
                "'images' is not an absolute path: it must start with '/'",
            ),
            (
                "state_dir",
                r#""/var/\u0000x""#,
                "'/var/\\u{0}x' is not a path: it must be non-empty and one line",
            ),
            ("catalog", r#""/etc/a\nb""#, "is not a path"),
            ("default_distro", r#""F 43""#, "'F 43' is not an image name"),
        ] {
            assert_rejected(&format!("\n{key} = {value}\n"), 2, key, says);
        }
        assert_rejected(
            "ssh_keys = [\n  \"ssh-ed25519 AAAA a@b\",\n  \"ssh-ed25519 AAAA\\nssh-rsa BBBB\",\n]\n",
            3,
            "ssh_keys[1]",
            "is not a public key or a path to one: it must be non-empty and one line",
        );
        assert_rejected(
            "[cloud_init]\npackages = [\"vim\", \"a b\"]\n",
            2,
            "cloud_init.packages[1]",
            "'a b' is not a package name",
        );
        assert_rejected(
            "[cloud_init]\nruncmd = [\"echo\\u0000\"]\n",
            2,
            "cloud_init.runcmd[0]",
            "contains a NUL character",
        );
        let multi_line = "[cloud_init]\nruncmd = [\"\"\"\nset -e\necho hi\n\"\"\"\"]\n";
        Config::parse(Path::new("c.toml"), multi_line).unwrap();
    }

    #[test]
    fn users_are_checked_on_their_lines() {
        let user = |body: &str| format!("[[users]]\nname = \"alice\"\n[[users]]\n{body}\n");
        assert_rejected(
            &user("name = \"Bob\""),
            4,
            "users[1].name",
            "'Bob' is not a valid new user name: use 1-32 lowercase",
        );
        assert_rejected(&user("name = \"root\""), 4, "users[1].name", "and not root");
        assert_rejected(
            &user("name = \"alice\""),
            4,
            "users[1].name",
            "'alice' is already users[0]",
        );
        assert_rejected(
            &user("name = \"bob\"\nshell = \"bash\""),
            5,
            "users[1].shell",
            "'bash' is not a login shell: it must be an absolute path like /bin/bash",
        );
        assert_rejected(
            &user("name = \"bob\"\nshell = \"/bin/sh\\n\""),
            5,
            "users[1].shell",
            "is not a login shell: it must be non-empty, without whitespace",
        );
        assert_rejected(
            &user("name = \"bob\"\nssh_keys = [\"k\\rx\"]"),
            5,
            "users[1].ssh_keys[0]",
            "is not a public key or a path to one",
        );
    }

    #[test]
    fn values_of_the_wrong_type_still_name_their_line() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[[pool]]\nstem = \"a\"\nwidth = \"2\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Config::parse(Path::new("c.toml"), "\nvcpus = 99999999999999999999\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
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
