//! The node spec grammar: `[STEM]NUMBER[-NUMBER][:DISTRO][@HOST]`.
//!
//! `vnode 3:f33 vnode4 vnode18:u18.04 20-22:u20.04` names vnode03 (Fedora 33), vnode04 (the default
//! image), vnode18 (Ubuntu 18.04) and vnode20..vnode22 (Ubuntu 20.04). Numbers are normalized to the
//! pool's width (`3`, `vnode3` and `vnode003` all mean `vnode03`). `@HOST` places the nodes on one
//! of the config's `[[hosts]]` (`3:f43@h2`, `10-19@h1`).
//!
//! Parsing happens in two steps: [`parse`] checks the syntax of one spec alone, [`resolve`] checks
//! specs against the pools and the catalog and expands ranges into [`NodeRequest`]s.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::images::catalog::{Catalog, ImageRef};
use crate::plan::pool::{NodeName, Pool, Pools};
use crate::text::names::quoted;

/// The grammar of a node spec, as every help text, man page and document shows it (tests hold the
/// README and docs/ to it).
pub const GRAMMAR: &str = "[STEM]NUMBER[-NUMBER][:DISTRO][@HOST]";

/// At most this many nodes in one command; a typo like `0-9999` should not define thousands of VMs.
pub const MAX_NODES: usize = 1000;

/// One spec, syntactically valid, not yet checked against pools or the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Lowercased stem, or `None` for a bare number (the default pool).
    pub stem: Option<String>,
    pub first: u32,
    /// Inclusive end of a range (`3-7`).
    pub last: Option<u32>,
    pub distro: Option<String>,
    /// `@HOST`: the `[[hosts]]` entry the nodes go to.
    pub host: Option<String>,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.stem.as_deref().unwrap_or(""), self.first)?;
        if let Some(last) = self.last {
            write!(f, "-{last}")?;
        }
        if let Some(d) = &self.distro {
            write!(f, ":{d}")?;
        }
        if let Some(h) = &self.host {
            write!(f, "@{h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("{}: {problem}; a node spec is {GRAMMAR}, e.g. 3, vnode4, 3-7:u24.04, 5@h2", quoted(.spec))]
    Syntax { spec: String, problem: String },
    #[error("{}: no pool has the stem {}; known stems: {known}", quoted(.spec), quoted(.stem))]
    UnknownStem {
        spec: String,
        stem: String,
        known: String,
    },
    #[error("{}: {number} is outside pool {} ({first}..={last})", quoted(.spec), quoted(.stem))]
    OutOfRange {
        spec: String,
        stem: String,
        number: u64,
        first: u32,
        last: u32,
    },
    #[error("{}: {problem}", quoted(.spec))]
    Distro { spec: String, problem: String },
    #[error("{node} is named twice ({} and {}); name each node once", quoted(.first), quoted(.second))]
    Duplicate {
        node: String,
        first: String,
        second: String,
    },
    #[error("{} names {count} nodes; at most {MAX_NODES} in one command", quoted(.spec))]
    TooMany { spec: String, count: u64 },
    #[error("no node specs given; name nodes like 3 or vnode4:f43 (see `vnode --help`)")]
    Empty,
}

fn syntax(spec: &str, problem: impl Into<String>) -> SpecError {
    SpecError::Syntax {
        spec: spec.to_string(),
        problem: problem.into(),
    }
}

/// Parses one spec's syntax. Never panics, whatever the input.
pub fn parse(input: &str) -> Result<Spec, SpecError> {
    let (rest, host) = match input.split_once('@') {
        Some((_, "")) => return Err(syntax(input, "the host after '@' is empty")),
        Some((_, h)) if h.contains('@') => return Err(syntax(input, "more than one '@'")),
        Some((r, h)) => {
            crate::text::names::check_host_name(h).map_err(|p| syntax(input, p.to_string()))?;
            (r, Some(h.to_string()))
        }
        None => (input, None),
    };
    let (node, distro) = match rest.split_once(':') {
        Some((_, "")) => return Err(syntax(input, "the distro after ':' is empty")),
        Some((_, d)) if d.contains(':') => return Err(syntax(input, "more than one ':'")),
        Some((n, d)) => (n, Some(d.to_ascii_lowercase())),
        None => (rest, None),
    };
    if node.is_empty() {
        return Err(syntax(input, "the node number is missing"));
    }
    if !node.is_ascii() {
        return Err(syntax(
            input,
            "only ASCII letters, digits and '-' may name a node",
        ));
    }
    let node = node.to_ascii_lowercase();
    // The trailing run of digits is the (last) number.
    let digits_at = node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits_at == node.len() {
        return Err(syntax(input, "the node number is missing"));
    }
    let tail = number(input, &node[digits_at..])?;
    let head = &node[..digits_at];
    // `A-B`: the head ends in '-' preceded by digits.
    let (stem, first, last) = match head.strip_suffix('-') {
        Some(before) if before.ends_with(|c: char| c.is_ascii_digit()) => {
            let at = before.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let first = number(input, &before[at..])?;
            if tail < first {
                return Err(syntax(input, format!("the range {first}-{tail} is empty")));
            }
            (&before[..at], first, Some(tail))
        }
        _ => (head, tail, None),
    };
    let stem = if stem.is_empty() {
        None
    } else {
        crate::plan::pool::check_stem(stem).map_err(|p| syntax(input, p.to_string()))?;
        Some(stem.to_string())
    };
    if let Some(d) = &distro {
        crate::images::catalog::check_name(d).map_err(|p| syntax(input, p.to_string()))?;
    }
    Ok(Spec {
        stem,
        first,
        last,
        distro,
        host,
    })
}

fn number(spec: &str, digits: &str) -> Result<u32, SpecError> {
    digits
        .parse::<u32>()
        .map_err(|_| syntax(spec, format!("the number {digits} is too large")))
}

/// A node to create: its pool, name and image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeRequest {
    pub name: NodeName,
    #[serde(skip)]
    pub pool: Pool,
    pub image: ImageRef,
    /// `@HOST` of its spec.
    pub host: Option<String>,
}

/// Checks specs against pools and the catalog; expands ranges; rejects a node named twice.
///
/// `distro` is the `-d/--distro` default, `local` the non-catalog images in the cache.
pub fn resolve(
    specs: &[String],
    pools: &Pools,
    catalog: &Catalog,
    distro: Option<&str>,
    local: &[String],
) -> Result<Vec<NodeRequest>, SpecError> {
    if specs.is_empty() {
        return Err(SpecError::Empty);
    }
    let default_image = match distro {
        Some(d) => catalog.resolve(d, local).map_err(|e| SpecError::Distro {
            spec: format!("--distro {d}"),
            problem: e.to_string(),
        })?,
        None => {
            let e = catalog.default_image();
            ImageRef {
                name: e.name.clone(),
                kind: crate::images::catalog::ImageKind::Catalog,
            }
        }
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for input in specs {
        let spec = parse(input)?;
        let pool = match &spec.stem {
            None => pools.default_pool(),
            Some(stem) => pools.by_stem(stem).ok_or_else(|| SpecError::UnknownStem {
                spec: input.clone(),
                stem: stem.clone(),
                known: pools.stems(),
            })?,
        };
        let last = spec.last.unwrap_or(spec.first);
        for n in [spec.first, last] {
            if !pool.contains(n) {
                return Err(SpecError::OutOfRange {
                    spec: input.clone(),
                    stem: pool.stem.clone(),
                    number: u64::from(n),
                    first: pool.first,
                    last: pool.last,
                });
            }
        }
        let count = u64::from(last - spec.first) + 1;
        if count + out.len() as u64 > MAX_NODES as u64 {
            return Err(SpecError::TooMany {
                spec: input.clone(),
                count,
            });
        }
        let image = match &spec.distro {
            None => default_image.clone(),
            Some(d) => catalog.resolve(d, local).map_err(|e| SpecError::Distro {
                spec: input.clone(),
                problem: e.to_string(),
            })?,
        };
        for number in spec.first..=last {
            let name = pool.node(number);
            if let Some(first) = seen.insert(name.to_string(), input.clone()) {
                return Err(SpecError::Duplicate {
                    node: name.to_string(),
                    first,
                    second: input.clone(),
                });
            }
            out.push(NodeRequest {
                name,
                pool: pool.clone(),
                image: image.clone(),
                host: spec.host.clone(),
            });
        }
    }
    Ok(out)
}

/// Resolves specs to node names only (for verbs that act on existing nodes: destroy, ssh, plan).
/// A distro part is not allowed there.
pub fn resolve_names(specs: &[String], pools: &Pools) -> Result<Vec<(Pool, NodeName)>, SpecError> {
    for input in specs {
        let spec = parse(input)?;
        if spec.distro.is_some() || spec.host.is_some() {
            return Err(syntax(
                input,
                "a distro or host makes no sense here; name nodes only",
            ));
        }
    }
    let catalog = Catalog::load(None).expect("the built-in catalog is valid");
    Ok(resolve(specs, pools, &catalog, None, &[])?
        .into_iter()
        .map(|r| (r.pool, r.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    fn run(specs: &[&str]) -> Result<Vec<(String, String)>, SpecError> {
        let c = Config::defaults();
        let cat = Catalog::load(None).unwrap();
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        Ok(resolve(&specs, &c.pools, &cat, None, &[])?
            .into_iter()
            .map(|r| (r.name.to_string(), r.image.name))
            .collect())
    }

    #[test]
    fn the_readme_example() {
        let got = run(&["3:f33", "vnode4", "vnode18:u18.04", "20:u20.04"]).unwrap();
        let want = [
            ("vnode03", "fedora-33"),
            ("vnode04", "fedora-43"),
            ("vnode18", "ubuntu-18.04"),
            ("vnode20", "ubuntu-20.04"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn numbers_are_normalized() {
        for s in ["3", "vnode3", "vnode003", "VNODE03", "vnode0000003"] {
            assert_eq!(run(&[s]).unwrap()[0].0, "vnode03", "{s}");
        }
    }

    #[test]
    fn ranges_expand() {
        let got = run(&["vnode3-7:u24.04"]).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], ("vnode07".to_string(), "ubuntu-24.04".to_string()));
        assert_eq!(run(&["3-3"]).unwrap().len(), 1);
    }

    #[test]
    fn bad_specs_name_themselves() {
        for bad in [
            ":f33",
            "vnode",
            "3:",
            "3-1",
            "x7",
            "99999999999999999999",
            "vnode99x:f99",
            "",
            "3::f",
            "3:f 3",
            "-3",
            "vnode-3",
            "3-",
        ] {
            let e = run(&[bad]).expect_err(bad).to_string();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
        assert!(matches!(run(&["x7"]), Err(SpecError::UnknownStem { .. })));
        assert!(matches!(run(&["100"]), Err(SpecError::OutOfRange { .. })));
        assert!(matches!(run(&["3:f99"]), Err(SpecError::Distro { .. })));
        assert!(
            run(&["3:f99"])
                .unwrap_err()
                .to_string()
                .contains("did you mean")
        );
        assert_eq!(run(&[]), Err(SpecError::Empty));
    }

    #[test]
    fn a_node_named_twice_is_refused() {
        let e = run(&["3", "vnode2-4"]).unwrap_err();
        assert_eq!(
            e,
            SpecError::Duplicate {
                node: "vnode03".into(),
                first: "3".into(),
                second: "vnode2-4".into()
            }
        );
    }

    #[test]
    fn a_spec_may_name_its_host() {
        let s = parse("3-5:f43@h2").unwrap();
        assert_eq!(
            (s.first, s.last, s.distro.as_deref()),
            (3, Some(5), Some("f43"))
        );
        assert_eq!(s.host.as_deref(), Some("h2"));
        assert_eq!(
            parse("vnode4@hv-1.lab").unwrap().host.as_deref(),
            Some("hv-1.lab")
        );
        for (bad, says) in [
            ("3@", "the host after '@' is empty"),
            ("3@a@b", "more than one '@'"),
            ("3@-x", "is not a host name"),
            ("@h1", "the node number is missing"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("[@HOST]"), "{bad}: {e}");
        }
        let pools = crate::config::Config::defaults().pools;
        let e = resolve_names(&["3@h1".into()], &pools)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a distro or host makes no sense here"), "{e}");
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(s in "\\PC{0,30}") {
            let _ = parse(&s);
        }

        #[test]
        fn the_parser_never_panics_on_spec_like_input(s in "[a-z0-9:.@-]{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn printed_specs_parse_back(
            stem in proptest::option::of("[a-z][a-z0-9-]{0,8}[a-z-]"),
            first in 0u32..100_000,
            len in proptest::option::of(0u32..100),
            distro in proptest::option::of("[a-z0-9][a-z0-9._-]{0,12}"),
            host in proptest::option::of("[A-Za-z0-9][A-Za-z0-9._-]{0,12}"),
        ) {
            prop_assume!(stem.as_deref().is_none_or(|s| crate::plan::pool::check_stem(s).is_ok()));
            let spec = Spec { stem, first, last: len.map(|l| first + l), distro, host };
            prop_assert_eq!(parse(&spec.to_string()), Ok(spec));
        }
    }
}
