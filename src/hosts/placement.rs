//! Where new nodes go. A node named with `@HOST` goes there; `--host NAME` sends every node of
//! the command there; a node that already exists stays where it is; every other node goes, one
//! at a time in spec order, to the allowed host with the fewest vnode nodes (counting those
//! placed so far), then the most free memory (minus what the nodes placed so far take), then the
//! first in the config — except a node with a fresh state, which goes back to the host that holds
//! it when that host has room. So a plan is deterministic and shown by `--dry-run` before anything
//! runs.

use std::collections::HashMap;

use super::capabilities::HostFacts;
use crate::plan::planned_node::{HostName, PlannedNode};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error(
        "{node}: host {host} ({uri}) does not answer ({why}); leave it out with --skip-host {host} \
         (or send the nodes to one host with --host OTHER), or fix it (`virsh -c {uri} version`)"
    )]
    Unreachable {
        node: String,
        host: String,
        uri: String,
        why: String,
    },
    #[error(
        "{node}: pool '{pool}' may only use hosts {allowed}, not {host} (the pool's `hosts` in the config)"
    )]
    NotAllowed {
        node: String,
        pool: String,
        host: String,
        allowed: String,
    },
    #[error(
        "{node}: host {host} is full (max_nodes {max}: {there} vnode nodes there or placed before it); \
         place it elsewhere with @HOST or raise max_nodes"
    )]
    Full {
        node: String,
        host: String,
        max: u32,
        there: u32,
    },
    #[error("{node}: no host may take it ({why})")]
    NoHost { node: String, why: String },
    #[error("'{name}' is not one of the hosts ({known})")]
    Unknown { name: String, known: String },
}

impl PlacementError {
    /// A host that cannot take nodes now is a failure (1); asking for the impossible is bad
    /// input (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            PlacementError::Unreachable { .. } | PlacementError::NoHost { .. } => {
                crate::exit::EXIT_FAILED
            }
            _ => crate::exit::EXIT_BAD_INPUT,
        }
    }
}

/// What placement asks of a node besides its pool: its `@HOST`, and the host that holds its
/// fresh state.
pub struct Wish<'a> {
    pub pinned: Option<&'a str>,
    pub state_on: Option<&'a str>,
}

struct Load {
    nodes: u32,
    free_mib: i64,
}

/// Sets `host` of every node. `facts` are the hosts', in config order; `all_to` is `--host`.
pub fn place(
    nodes: &mut [PlannedNode],
    wishes: &[Wish],
    all_to: Option<&str>,
    facts: &[HostFacts],
) -> Result<(), PlacementError> {
    let mut placer = Placer::new(facts);
    for (node, wish) in nodes.iter_mut().zip(wishes) {
        let chosen = if let Some(h) = wish.pinned.or(all_to) {
            placer.pinned(node, h)?
        } else if let Some(&i) = placer.existing.get(node.name().as_str()) {
            // It exists: it stays where it is (and is left alone, or replaced with --force).
            node.host = HostName::named(&facts[i].name);
            continue;
        } else if let Some(i) = wish.state_on.and_then(|h| placer.room_on(node, h)) {
            // Its fresh state is there: restored rather than booted.
            i
        } else {
            placer.least_loaded(node)?
        };
        placer.take(node, chosen)?;
    }
    Ok(())
}

/// The hosts and their load as placement goes on.
struct Placer<'a> {
    facts: &'a [HostFacts],
    loads: Vec<Load>,
    /// The hosts' vnode nodes, with the index of their host.
    existing: HashMap<&'a str, usize>,
}

impl<'a> Placer<'a> {
    fn new(facts: &'a [HostFacts]) -> Placer<'a> {
        let loads = facts
            .iter()
            .map(|f| Load {
                nodes: f.nodes.len() as u32,
                // In whole GiB: hosts whose free memory differs by less are equal, and the
                // config's order decides (a plan that does not flip between two runs for a few
                // MiB).
                free_mib: f.free_mib.map_or(0, |m| (m as i64 / 1024) * 1024),
            })
            .collect();
        let existing = facts
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.nodes.iter().map(move |n| (n.as_str(), i)))
            .collect();
        Placer {
            facts,
            loads,
            existing,
        }
    }

    /// May `node`'s pool use host `i`?
    fn allowed(&self, node: &PlannedNode, i: usize) -> bool {
        node.pool.hosts.is_empty() || node.pool.hosts.contains(&self.facts[i].name)
    }

    /// The host `@HOST` or `--host` names, which the node's pool must allow.
    fn pinned(&self, node: &PlannedNode, host: &str) -> Result<usize, PlacementError> {
        let facts = self.facts;
        let i =
            facts
                .iter()
                .position(|f| f.name == host)
                .ok_or_else(|| PlacementError::Unknown {
                    name: host.into(),
                    known: facts
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        if !self.allowed(node, i) {
            return Err(PlacementError::NotAllowed {
                node: node.name(),
                pool: node.pool.stem.clone(),
                host: host.into(),
                allowed: node.pool.hosts.join(", "),
            });
        }
        Ok(i)
    }

    /// Host `host`, when it is one of them, answers, allows the node's pool and has room.
    fn room_on(&self, node: &PlannedNode, host: &str) -> Option<usize> {
        let i = self.facts.iter().position(|f| f.name == host)?;
        let f = &self.facts[i];
        let room = f.max_nodes.is_none_or(|m| self.loads[i].nodes < m);
        (self.allowed(node, i) && f.reachable() && room).then_some(i)
    }

    /// The allowed host with the fewest nodes (then the most free memory, then the config's
    /// order) that has room.
    fn least_loaded(&self, node: &PlannedNode) -> Result<usize, PlacementError> {
        let (facts, loads) = (self.facts, &self.loads);
        // A host that does not answer is not silently passed over: the spread would then
        // depend on the network's mood. The user leaves it out (--skip-host) or fixes it.
        if let Some(f) = (0..facts.len())
            .filter(|&i| self.allowed(node, i))
            .map(|i| &facts[i])
            .find(|f| f.unreachable.is_some())
        {
            return Err(PlacementError::Unreachable {
                node: node.name(),
                host: f.name.clone(),
                uri: f.uri.clone(),
                why: f.unreachable.clone().unwrap_or_default(),
            });
        }
        let fits = |i: &usize| {
            self.allowed(node, *i)
                && facts[*i].reachable()
                && facts[*i].max_nodes.is_none_or(|m| loads[*i].nodes < m)
        };
        let candidates: Vec<usize> = (0..facts.len()).filter(fits).collect();
        match candidates
            .iter()
            .min_by_key(|&&i| (loads[i].nodes, -loads[i].free_mib, i))
        {
            Some(&i) => Ok(i),
            None => Err(PlacementError::NoHost {
                node: node.name(),
                why: why_none(node, facts, loads),
            }),
        }
    }

    /// Puts `node` on host `chosen`, which must answer and have room (a node replaced where it
    /// is takes no more room).
    fn take(&mut self, node: &mut PlannedNode, chosen: usize) -> Result<(), PlacementError> {
        let name = node.name();
        let f = &self.facts[chosen];
        if let Some(why) = &f.unreachable {
            return Err(PlacementError::Unreachable {
                node: name,
                host: f.name.clone(),
                uri: f.uri.clone(),
                why: why.clone(),
            });
        }
        let load = &mut self.loads[chosen];
        let replacing_here = self.existing.get(name.as_str()) == Some(&chosen);
        if let Some(max) = f.max_nodes
            && !replacing_here
            && load.nodes >= max
        {
            return Err(PlacementError::Full {
                node: name,
                host: f.name.clone(),
                max,
                there: load.nodes,
            });
        }
        if !replacing_here {
            load.nodes += 1;
        }
        load.free_mib -= i64::from(node.resources.memory_mib);
        node.host = HostName::named(&f.name);
        Ok(())
    }
}

fn why_none(node: &PlannedNode, facts: &[HostFacts], loads: &[Load]) -> String {
    facts
        .iter()
        .zip(loads)
        .map(|(f, l)| {
            let why = if !(node.pool.hosts.is_empty() || node.pool.hosts.contains(&f.name)) {
                format!("not in pool '{}' hosts", node.pool.stem)
            } else if let Some(u) = &f.unreachable {
                format!("does not answer: {u}")
            } else if let Some(m) = f.max_nodes {
                format!("full, {} of max_nodes {m}", l.nodes)
            } else {
                "?".into()
            };
            format!("{}: {why}", f.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::images::catalog::Catalog;

    fn facts(name: &str, nodes: &[&str], free_mib: u64) -> HostFacts {
        HostFacts {
            name: name.into(),
            uri: format!("qemu+ssh://root@{name}/system"),
            unreachable: None,
            libvirt_version: None,
            hypervisor: None,
            virt_types: vec![],
            cpus: Some(2),
            memory_mib: Some(8192),
            free_mib: Some(free_mib),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            base_images: Some(vec![]),
            max_nodes: None,
        }
    }

    fn planned(specs: &[&str]) -> (Vec<PlannedNode>, Vec<Option<String>>) {
        let config = Config::defaults();
        let catalog = Catalog::load(None).unwrap();
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        let r = crate::plan::spec::resolve(&specs, &config.pools, &catalog, None, &[]).unwrap();
        let pins = r.iter().map(|r| r.host.clone()).collect();
        (
            crate::plan::planned_node::plan(r, None, &catalog, &HostName::local()),
            pins,
        )
    }

    fn run(
        specs: &[&str],
        all_to: Option<&str>,
        hosts: &[HostFacts],
    ) -> Result<Vec<String>, PlacementError> {
        let (mut nodes, pins) = planned(specs);
        let wishes: Vec<Wish> = pins
            .iter()
            .map(|p| Wish {
                pinned: p.as_deref(),
                state_on: None,
            })
            .collect();
        place(&mut nodes, &wishes, all_to, hosts)?;
        Ok(nodes
            .iter()
            .map(|n| format!("{}@{}", n.name(), n.host))
            .collect())
    }

    #[test]
    fn a_node_goes_back_to_the_host_of_its_fresh_state_when_it_has_room() {
        let mut hosts = [facts("h1", &["vnode20"], 4000), facts("h2", &[], 8000)];
        let (mut nodes, _) = planned(&["3-4"]);
        let wish = |state_on| Wish {
            pinned: None,
            state_on,
        };
        let wishes = [wish(Some("h1")), wish(Some("h9"))];
        place(&mut nodes, &wishes, None, &hosts).unwrap();
        let placed: Vec<String> = nodes.iter().map(|n| n.host.to_string()).collect();
        assert_eq!(placed, ["h1", "h2"]);
        // A full host does not take it: it goes where a new node would.
        hosts[0].max_nodes = Some(1);
        let (mut nodes, _) = planned(&["3"]);
        place(&mut nodes, &[wish(Some("h1"))], None, &hosts).unwrap();
        assert_eq!(nodes[0].host.to_string(), "h2");
    }

    #[test]
    fn nodes_spread_evenly_then_by_free_memory_then_config_order() {
        let hosts = [
            facts("h1", &[], 4000),
            facts("h2", &[], 8000),
            facts("h3", &[], 8000),
        ];
        assert_eq!(
            run(&["3-8"], None, &hosts).unwrap(),
            [
                "vnode03@h2",
                "vnode04@h3",
                "vnode05@h1",
                "vnode06@h2",
                "vnode07@h3",
                "vnode08@h1"
            ]
        );
        // A host that already has nodes gets new ones last.
        let hosts = [
            facts("h1", &["vnode20", "vnode21"], 9000),
            facts("h2", &[], 1000),
        ];
        assert_eq!(
            run(&["3-5"], None, &hosts).unwrap(),
            ["vnode03@h2", "vnode04@h2", "vnode05@h1"]
        );
    }

    #[test]
    fn pins_and_the_host_flag_win_and_existing_nodes_stay() {
        let hosts = [facts("h1", &["vnode03"], 4000), facts("h2", &[], 8000)];
        assert_eq!(
            run(&["3", "4@h1", "5"], None, &hosts).unwrap(),
            ["vnode03@h1", "vnode04@h1", "vnode05@h2"]
        );
        assert_eq!(
            run(&["3@h2", "6"], Some("h1"), &hosts).unwrap(),
            ["vnode03@h2", "vnode06@h1"]
        );
        let e = run(&["3@h9"], None, &hosts).unwrap_err().to_string();
        assert!(e.contains("'h9' is not one of the hosts (h1, h2)"), "{e}");
    }

    #[test]
    fn full_unreachable_and_disallowed_hosts_are_refused_by_name() {
        let mut h1 = facts("h1", &["vnode10"], 4000);
        h1.max_nodes = Some(2);
        let mut h2 = facts("h2", &[], 8000);
        h2.unreachable = Some("libvirt is not reachable".into());
        let hosts = [h1.clone(), h2];
        // A host that does not answer is not passed over: the spread refuses, naming it.
        let e = run(&["3"], None, &hosts).unwrap_err().to_string();
        assert!(
            e.contains("vnode03: host h2 (qemu+ssh://root@h2/system) does not answer")
                && e.contains("--skip-host h2")
                && e.contains("`virsh -c qemu+ssh://root@h2/system version`"),
            "{e}"
        );
        // Left out (as --skip-host does), the other host takes what fits.
        let only_h1 = [h1];
        assert_eq!(run(&["3"], None, &only_h1).unwrap(), ["vnode03@h1"]);
        let e = run(&["3-4"], None, &only_h1).unwrap_err().to_string();
        assert!(
            e.contains("vnode04: no host may take it") && e.contains("h1: full, 2 of max_nodes 2"),
            "{e}"
        );
        let e = run(&["3@h2"], None, &hosts).unwrap_err().to_string();
        assert!(
            e.contains("host h2 (qemu+ssh://root@h2/system) does not answer")
                && e.contains("--host"),
            "{e}"
        );
        let e = run(&["3-4@h1"], None, &hosts).unwrap_err().to_string();
        assert!(e.contains("vnode04: host h1 is full (max_nodes 2"), "{e}");

        let (mut nodes, _) = planned(&["3"]);
        nodes[0].pool.hosts = vec!["h2".into()];
        let e = place(
            &mut nodes,
            &[Wish {
                pinned: Some("h1"),
                state_on: None,
            }],
            None,
            &hosts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pool 'vnode' may only use hosts h2, not h1"),
            "{e}"
        );
    }
}
