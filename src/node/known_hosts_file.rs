//! vnode's own known_hosts file (`<state_dir>/known_hosts`), in OpenSSH's format:
//! `vnode03,vnode03.lab.example,192.168.122.7 ssh-ed25519 AAAA...`.
//!
//! A node's line starts with its name; its addresses are added once they are known. Every change
//! rewrites the file atomically under an exclusive lock (`known_hosts.lock`), so nodes prepared
//! in parallel threads or processes do not lose each other's lines. Lines vnode did not write
//! (comments, markers, hashed names) are kept as they are.

use std::io;
use std::path::{Path, PathBuf};

use super::fsutil::{self, Lock};

/// Sets the host key of the node `names[0]` (also known as `names[1..]`): its old lines go, one
/// line with the new key is appended.
pub fn add(path: &Path, names: &[&str], key: &str) -> io::Result<()> {
    let Some(name) = names.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no host name"));
    };
    if names.iter().any(|n| !valid_host(n)) || key.split_whitespace().count() != 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a known_hosts entry: {names:?} {key}"),
        ));
    }
    edit(path, |lines| {
        lines.retain(|l| !owned_by(l, name));
        lines.push(format!("{} {key}", names.join(",")));
        Ok(())
    })
}

/// Adds `addr` to the node's line; an address moves, so it is dropped from other nodes' lines.
/// Fails with `NotFound` if the node has no line.
pub fn add_address(path: &Path, name: &str, addr: &str) -> io::Result<()> {
    if !valid_host(addr) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{addr}' is not a host address"),
        ));
    }
    edit(path, |lines| {
        if !lines.iter().any(|l| owned_by(l, name)) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} has no host key in {}", path.display()),
            ));
        }
        let mut out = Vec::with_capacity(lines.len());
        for line in lines.drain(..) {
            let Some((hosts, rest)) = split_hosts(&line) else {
                out.push(line);
                continue;
            };
            let mut hosts: Vec<&str> = hosts.split(',').collect();
            if hosts[0] == name {
                if !hosts.contains(&addr) {
                    hosts.push(addr);
                }
            } else {
                hosts.retain(|h| *h != addr);
            }
            if !hosts.is_empty() {
                out.push(format!("{} {rest}", hosts.join(",")));
            }
        }
        *lines = out;
        Ok(())
    })
}

/// Removes the node's lines. Returns whether there were any.
pub fn remove(path: &Path, name: &str) -> io::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut removed = false;
    edit(path, |lines| {
        let before = lines.len();
        lines.retain(|l| !owned_by(l, name));
        removed = lines.len() != before;
        Ok(())
    })?;
    Ok(removed)
}

/// The host list and the rest of a plain line; `None` for comments, markers and hashed names.
fn split_hosts(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') || t.starts_with('@') || t.starts_with('|') {
        return None;
    }
    t.split_once(char::is_whitespace)
        .map(|(h, rest)| (h, rest.trim_start()))
}

fn owned_by(line: &str, name: &str) -> bool {
    split_hosts(line).is_some_and(|(hosts, _)| hosts.split(',').next() == Some(name))
}

/// Names and addresses vnode writes: no separators, wildcards or markers of the format.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    p.into()
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<String>) -> io::Result<()>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _lock = Lock::acquire(&lock_path(path))?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    change(&mut lines)?;
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    fsutil::write_atomic(path, out, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY3";
    const K4: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY4";

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn add_replaces_a_nodes_key_and_keeps_foreign_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        std::fs::write(&p, "# mine\n|1|abc=|def= ssh-ed25519 AAAAX\n").unwrap();
        add(&p, &["vnode03", "vnode03.lab.test"], K3).unwrap();
        add(&p, &["vnode04"], K4).unwrap();
        add(&p, &["vnode03"], K4).unwrap();
        assert_eq!(
            read(&p),
            format!("# mine\n|1|abc=|def= ssh-ed25519 AAAAX\nvnode04 {K4}\nvnode03 {K4}\n")
        );
        assert!(add(&p, &["bad name"], K3).is_err());
        assert!(add(&p, &["x"], "ssh-ed25519").is_err());
    }

    #[test]
    fn addresses_are_added_once_and_move_between_nodes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        add(&p, &["vnode03"], K3).unwrap();
        add(&p, &["vnode04"], K4).unwrap();
        add_address(&p, "vnode03", "192.168.122.7").unwrap();
        add_address(&p, "vnode03", "192.168.122.7").unwrap();
        add_address(&p, "vnode03", "198.18.0.3").unwrap();
        assert_eq!(
            read(&p),
            format!("vnode03,192.168.122.7,198.18.0.3 {K3}\nvnode04 {K4}\n")
        );
        // A stale lease: vnode04 now has vnode03's old private address.
        add_address(&p, "vnode04", "192.168.122.7").unwrap();
        assert_eq!(
            read(&p),
            format!("vnode03,198.18.0.3 {K3}\nvnode04,192.168.122.7 {K4}\n")
        );
        let e = add_address(&p, "vnode05", "10.0.0.5").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_drops_only_that_nodes_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        assert!(!remove(&p, "vnode03").unwrap());
        add(&p, &["vnode03"], K3).unwrap();
        add(&p, &["vnode030"], K4).unwrap();
        add_address(&p, "vnode03", "10.0.0.3").unwrap();
        assert!(remove(&p, "vnode03").unwrap());
        assert_eq!(read(&p), format!("vnode030 {K4}\n"));
        assert!(!remove(&p, "vnode03").unwrap());
    }

    #[test]
    fn ssh_keygen_finds_names_and_addresses() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        let key = super::super::host_key::HostKey::generate("vnode03").unwrap();
        add(&p, &["vnode03"], &key.public).unwrap();
        add_address(&p, "vnode03", "192.168.122.7").unwrap();
        for host in ["vnode03", "192.168.122.7"] {
            let out = std::process::Command::new("ssh-keygen")
                .args(["-F", host, "-f"])
                .arg(&p)
                .output()
                .expect("ssh-keygen is needed for this test");
            assert!(out.status.success(), "ssh-keygen -F {host} found nothing");
            assert!(String::from_utf8_lossy(&out.stdout).contains(&key.public));
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(usize, usize),
        Address(usize, usize),
        Remove(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..4usize, 0..3usize).prop_map(|(n, k)| Op::Add(n, k)),
            (0..4usize, 0..3usize).prop_map(|(n, a)| Op::Address(n, a)),
            (0..4usize).prop_map(Op::Remove),
        ]
    }

    proptest::proptest! {
        // 64 cases unless PROPTEST_CASES says otherwise (benches/hostile_input.sh).
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)))]

        /// Any sequence of changes leaves one line per node, with its latest key, and each
        /// address on the line of the node that got it last.
        #[test]
        fn the_file_follows_a_simple_model(ops in proptest::collection::vec(op(), 0..24)) {
            use std::collections::BTreeMap;
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("known_hosts");
            let keys = [K3, K4, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEY5"];
            let mut model: BTreeMap<String, (&str, Vec<String>)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Add(n, k) => {
                        add(&p, &[&format!("n{n}")], keys[k]).unwrap();
                        model.insert(format!("n{n}"), (keys[k], vec![]));
                    }
                    Op::Address(n, a) => {
                        let (name, addr) = (format!("n{n}"), format!("10.0.0.{a}"));
                        let r = add_address(&p, &name, &addr);
                        if model.contains_key(&name) {
                            r.unwrap();
                            for (other, (_, addrs)) in model.iter_mut() {
                                if *other == name {
                                    if !addrs.contains(&addr) {
                                        addrs.push(addr.clone());
                                    }
                                } else {
                                    addrs.retain(|x| *x != addr);
                                }
                            }
                        } else {
                            proptest::prop_assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
                        }
                    }
                    Op::Remove(n) => {
                        let had = model.remove(&format!("n{n}")).is_some();
                        proptest::prop_assert_eq!(remove(&p, &format!("n{n}")).unwrap(), had);
                    }
                }
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let mut seen: BTreeMap<String, (&str, Vec<String>)> = BTreeMap::new();
            for line in text.lines() {
                let (hosts, key) = line.split_once(' ').unwrap();
                let mut hosts = hosts.split(',').map(str::to_string);
                let name = hosts.next().unwrap();
                let key = keys.iter().find(|k| **k == key).unwrap();
                proptest::prop_assert!(seen.insert(name, (*key, hosts.collect())).is_none());
            }
            proptest::prop_assert_eq!(seen, model);
        }
    }

    #[test]
    fn parallel_writers_lose_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("known_hosts");
        std::thread::scope(|s| {
            for i in 0..16 {
                let p = &p;
                s.spawn(move || add(p, &[&format!("n{i:02}")], K3).unwrap());
            }
        });
        assert_eq!(read(&p).lines().count(), 16);
    }
}
