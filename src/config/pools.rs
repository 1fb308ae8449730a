//! `[resources]`, `[[pool]]` and `default_pool`: each pool checked on its own lines, then all of
//! them together (see [`crate::plan::pool::Pools`]).

use std::fmt::Display;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::file::{PoolFile, ResourcesFile, Span};
use super::hosts::HostConfig;
use super::located::Located;
use crate::plan::pool::{
    DISK_GIB, MAC_ID, MEMORY_MIB, NUMBER, PUBLIC_OFFSET, Pool, Pools, PoolsError, Resources, VCPUS,
    WIDTH,
};
use crate::text::names;
use crate::text::toml_file::FileError;

/// Why a `[[pool]]` value is refused before the pool is checked as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolValueError {
    #[error("{} is not a host: the config has no [[hosts]]", names::quoted(.host))]
    NoHosts { host: String },
    #[error("{} is not one of the [[hosts]] ({hosts})", names::quoted(.host))]
    UnknownHost {
        host: String,
        /// The configured hosts' names, joined by ", ".
        hosts: String,
    },
    #[error(
        "{} is not an IPv4 subnet: write ADDRESS/PREFIX, e.g. 198.18.0.0/24",
        names::quoted(.value)
    )]
    NotASubnet {
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
}

impl Located<'_> {
    /// The file's pools with `resources` as their defaults, or the default pool; checked each on
    /// its own, then together, with `default_pool` among them.
    pub(super) fn pools(
        &self,
        files: Vec<PoolFile>,
        resources: Resources,
        default_pool: Option<&Spanned<String>>,
        hosts: &[HostConfig],
    ) -> Result<Pools, FileError> {
        let mut pools = Vec::new();
        let mut spans = Vec::new();
        for (i, p) in files.into_iter().enumerate() {
            spans.push(p.spans());
            pools.push(self.pool(i, p, resources, hosts)?);
        }
        if pools.is_empty() {
            pools.push(Pool {
                resources,
                ..Pool::default_pool()
            });
        }
        Pools::new(pools, default_pool.map(|s| s.get_ref().as_str())).map_err(|e| match e {
            PoolsError::Empty => unreachable!("a config without pools gets the default pool"),
            PoolsError::UnknownDefault { .. } => {
                self.error(default_pool.map(Spanned::span), "default_pool", e)
            }
            _ => {
                let (index, field) = e.blame().expect("the other errors blame one pool");
                self.pool_error(index, &spans[index], field, e)
            }
        })
    }

    /// `memory_mib`, `vcpus` and `disk_gib` of a table, each named by `field`; what the table
    /// leaves out is `inherited`.
    pub(super) fn resources(
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
            check_pool_host(h, hosts)
        })?;
        let base = Pool::default_pool();
        let width: u8 = self
            .number(p.width.as_ref(), &field("width"), "width", WIDTH)?
            .unwrap_or(base.width);
        let number = |v: &Option<Spanned<i64>>, key: &'static str| {
            self.number(v.as_ref(), &field(key), key, NUMBER)
        };
        let public_subnet = match p.public_subnet {
            None => None,
            Some(s) => Some(s.get_ref().parse::<Ipv4Net>().map_err(|source| {
                self.error(
                    Some(s.span()),
                    &field("public_subnet"),
                    PoolValueError::NotASubnet {
                        value: s.get_ref().clone(),
                        source,
                    },
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
            .map_err(|problem| self.pool_error(i, &spans, problem.field(), problem))?;
        Ok(pool)
    }

    /// A problem of pool `i` about its key `key`, on that key's line, or on the pool's stem's
    /// when the key is not set (then the message says the default was used).
    fn pool_error(
        &self,
        i: usize,
        spans: &[(&str, Span)],
        key: &str,
        problem: impl Display,
    ) -> FileError {
        let field = format!("pool[{i}].{key}");
        match spans.iter().find(|(k, _)| *k == key) {
            Some((_, span)) => self.error(Some(span.clone()), &field, problem),
            None => self.error(
                spans.first().map(|(_, s)| s.clone()),
                &field,
                format_args!("{problem}; {key} is not set in this pool, so it has its default"),
            ),
        }
    }
}

/// One of a pool's `hosts`: a configured `[[hosts]]` name.
fn check_pool_host(host: &str, hosts: &[HostConfig]) -> Result<(), PoolValueError> {
    if hosts.iter().any(|c| c.name == host) {
        Ok(())
    } else if hosts.is_empty() {
        Err(PoolValueError::NoHosts { host: host.into() })
    } else {
        Err(PoolValueError::UnknownHost {
            host: host.into(),
            hosts: hosts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}
