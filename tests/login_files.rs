//! What `vnode ssh-config` and `vnode inventory` write, judged by the programs that read them:
//! generated hostile state directories (spaces, quotes, `#`, `=`, `%`, `$`, backslashes,
//! newlines...) and jump hosts go into every node's values, and either vnode refuses them
//! (exactly when ssh cannot be given the value: a control character, or `${` in a file name) or
//! - `ssh -G -F FILE NODE` gives exactly the node's options, and a name that is no node gets
//!   none of them (no injected `Host` block or option);
//! - `ansible-inventory -i FILE --list` (INI and YAML) gives exactly the nodes and their
//!   variables, and ssh given those variables the way Ansible gives them (`-o
//!   IdentityFile="KEY"` and the shlex-split `ansible_ssh_common_args`) gets exactly the options.
//!
//! Before the fix a state_dir with a quote injected an ssh option and one with a space broke
//! both files. `PROPTEST_CASES` sets the number of generated state directories (default 48).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use vnode::commands::inventory;
use vnode::ssh::config_file::{self, NodeLogin};

const NASTY: &[char] = &[
    ' ', '"', '\'', '#', '=', '%', '$', '{', '}', '\\', '*', '?', '!', ',', ';', '`', '~', '@',
    ':', '[', ']', 'h', 'd', 'ü', '😀', '\t', '\n', '\r', '\u{202e}',
];
const JUMPS: &[&str] = &[
    "root@h1",
    "ops@hv-2:2222",
    "ops@[fd00::7]:2200",
    "root\nHost *\n  ProxyCommand touch /tmp/pwned",
    "a b@h",
];

fn state_dir() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => proptest::sample::select(NASTY),
        2 => proptest::char::range('a', 'z'),
        1 => Just('/'),
    ];
    proptest::collection::vec(c, 1..16).prop_map(|cs| format!("/tmp/{}", String::from_iter(cs)))
}

/// A generated case: a state directory and three nodes (maybe behind jump hosts).
fn case() -> impl Strategy<Value = (String, Vec<(u8, Option<&'static str>)>)> {
    (
        state_dir(),
        proptest::collection::vec(
            (
                any::<u8>(),
                proptest::option::weighted(0.4, proptest::sample::select(JUMPS)),
            ),
            3,
        ),
    )
}

fn logins(case: usize, state: &str, nodes: &[(u8, Option<&'static str>)]) -> Vec<NodeLogin> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, (octet, jump))| NodeLogin {
            name: format!("vnode{case}x{i}"),
            address: format!("10.{i}.{case}.{octet}"),
            identity_file: Path::new(state).join("client_key"),
            known_hosts: Path::new(state).join("known_hosts"),
            proxy_jump: jump.map(String::from),
        })
        .collect()
}

/// Whether ssh cannot be given this node's values (what vnode must refuse).
fn unwritable(l: &NodeLogin) -> bool {
    let path = l.identity_file.to_string_lossy();
    path.chars().any(char::is_control)
        || path.contains("${")
        || l.proxy_jump
            .as_deref()
            .is_some_and(|j| j.contains(|c: char| c.is_whitespace()))
}

fn case_count() -> usize {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48)
}

/// The generated cases, each with its nodes; `(refused, written)`.
fn generate() -> (usize, Vec<Vec<NodeLogin>>) {
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
    );
    let strategy = case();
    let (mut refused, mut written) = (0, Vec::new());
    for i in 0..case_count() {
        let (state, nodes) = strategy.new_tree(&mut runner).unwrap().current();
        let logins = logins(i, &state, &nodes);
        let expect_refusal = logins.iter().any(unwritable);
        let rendered = config_file::ssh_config(&logins);
        let inventory = inventory::inventory_hosts(&logins);
        assert_eq!(
            rendered.is_err(),
            expect_refusal,
            "ssh-config of {logins:?}: {rendered:?}"
        );
        assert_eq!(inventory.is_err(), expect_refusal, "{logins:?}");
        if let Err(e) = rendered {
            let message = e.to_string();
            assert!(message.starts_with("vnode"), "names the node: {message}");
            assert!(!message.contains('\n'), "{message:?}");
            refused += 1;
        } else {
            written.push(logins);
        }
    }
    assert!(
        written.len() * 2 >= refused,
        "{} written, {refused} refused",
        written.len()
    );
    (refused, written)
}

/// `ssh -G` output: keyword → values (in order).
fn ssh_g(args: &[&str]) -> BTreeMap<String, Vec<String>> {
    let out = Command::new("ssh")
        .arg("-G")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh (Debian package openssh-client) is needed for this test");
    assert!(
        out.status.success(),
        "ssh -G {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_g(&String::from_utf8(out.stdout).unwrap())
}

fn parse_g(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    map
}

/// What ssh must end up with for `l`: `-G` prints IdentityFile before `%` expansion and
/// UserKnownHostsFile after it.
fn assert_options(g: &BTreeMap<String, Vec<String>>, l: &NodeLogin, via: &str) {
    let one = |k: &str| g.get(k).map(|v| v.join("\n"));
    let key = l.identity_file.to_string_lossy().replace('%', "%%");
    assert_eq!(one("identityfile"), Some(key), "{via}: {l:?}");
    let known = l.known_hosts.to_string_lossy().to_string();
    assert_eq!(one("userknownhostsfile"), Some(known), "{via}: {l:?}");
    assert_eq!(
        one("stricthostkeychecking").as_deref(),
        Some("true"),
        "{via}"
    );
    assert_eq!(one("hostkeyalias"), Some(l.name.clone()), "{via}");
    assert_eq!(one("proxyjump"), l.proxy_jump.clone(), "{via}: {l:?}");
    assert_eq!(one("user").as_deref(), Some("root"), "{via}");
    assert_eq!(one("proxycommand"), None, "{via}: {l:?}");
}

#[test]
fn ssh_reads_every_generated_ssh_config_as_meant() {
    let (refused, written) = generate();
    let dir = tempfile::tempdir().unwrap();
    for (i, logins) in written.iter().enumerate() {
        let file = dir.path().join(format!("config{i}"));
        std::fs::write(&file, config_file::ssh_config(logins).unwrap()).unwrap();
        let f = file.to_str().unwrap();
        for l in logins {
            let g = ssh_g(&["-F", f, &l.name]);
            assert_eq!(g["hostname"], std::slice::from_ref(&l.address), "{l:?}");
            assert_options(&g, l, "ssh-config");
        }
        // A name that is no node gets nothing of theirs (no injected `Host *` block).
        let g = ssh_g(&["-F", f, "stranger"]);
        assert_eq!(g["hostname"], ["stranger"]);
        for k in ["hostkeyalias", "proxyjump", "proxycommand"] {
            assert!(!g.contains_key(k), "{k} for a stranger: {logins:?}");
        }
    }
    eprintln!(
        "ssh-config: {} files read by ssh -G, {refused} refused",
        written.len()
    );
}

/// Runs `ansible-inventory --list` on `text`, then, for every host, ssh -G with the options
/// Ansible would give it; returns (the inventory, host → ssh -G output).
const ANSIBLE: &str = r#"
import json, shlex, subprocess, sys
inventory = json.loads(subprocess.run(
    ["ansible-inventory", "-i", sys.argv[1], "--list"],
    check=True, capture_output=True, text=True).stdout)
ssh = {}
for name, v in inventory["_meta"]["hostvars"].items():
    args = ["ssh", "-G", "-F", "/dev/null"] + shlex.split(v["ansible_ssh_common_args"]) + [
        "-o", 'IdentityFile="%s"' % v["ansible_ssh_private_key_file"], "-l", v["ansible_user"],
        v["ansible_host"]]
    ssh[name] = subprocess.run(args, check=True, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL).stdout
json.dump([inventory, ssh], sys.stdout)
"#;

fn ansible(file: &Path, tmp: &Path) -> (Value, BTreeMap<String, String>) {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", ANSIBLE])
        .arg(file)
        .env("ANSIBLE_LOCAL_TEMP", tmp)
        .env("ANSIBLE_HOME", tmp)
        .env("ANSIBLE_INVENTORY_ENABLED", "ini,yaml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-inventory (Debian package ansible-core) on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ansible_reads_every_generated_inventory_as_meant() {
    let (refused, written) = generate();
    let logins: Vec<NodeLogin> = written.into_iter().flatten().collect();
    let hosts = inventory::inventory_hosts(&logins).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, String); 2] = [
        ("inventory.ini", inventory::ini(&hosts)),
        ("inventory.yaml", inventory::yaml(&hosts).unwrap()),
    ];
    for (name, text) in files {
        let file = dir.path().join(name);
        std::fs::write(&file, &text).unwrap();
        let (got, ssh) = ansible(&file, dir.path());
        let mut names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        names.sort();
        let mut listed: Vec<&str> = got["vnode"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(listed, names, "{name}");
        let hostvars = got["_meta"]["hostvars"].as_object().unwrap();
        assert_eq!(hostvars.len(), hosts.len(), "{name}");
        for (h, l) in hosts.iter().zip(&logins) {
            let mut meant = serde_json::to_value(h).unwrap();
            meant.as_object_mut().unwrap().remove("name");
            assert_eq!(hostvars[&h.name], meant, "{name}:\n{text}");
            let g = parse_g(&ssh[&h.name]);
            assert_eq!(g["hostname"], std::slice::from_ref(&l.address), "{l:?}");
            assert_options(&g, l, name);
        }
    }
    eprintln!(
        "inventory: {} nodes read back by ansible-inventory (INI, YAML) and ssh, {refused} \
         cases refused",
        hosts.len()
    );
}
