//! Everything vnode writes into a node's seed, read back by cloud-init's own loader: generated
//! hostile values go into every user-given field of the config (root's keys, literal and from a
//! key file, users' names, shells and keys, packages, runcmd, a pool's stem and domain); the
//! config either refuses them (naming the file, line and field, and the code point of a
//! character it refuses) or vnode renders `user-data`, `meta-data` and `network-config`, and
//! `cloudinit.util.load_yaml` of every release in `tests/cloud-init-releases` (22.4, 25.1, 26.2)
//! reads back exactly the document vnode meant. Before the fix, a DEL, C1 control or U+FFFE in
//! a runcmd entry or a key file's comment made 22.4 drop the whole cloud-config.
//!
//! All cases of a run go to one python process per release. `PROPTEST_CASES` sets how many
//! (default 128; the closing benchmark ran 10,000).

mod common;

use std::path::Path;

use common::cloud_init_releases::{CloudInit, releases};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use vnode::config::Config;
use vnode::node::cloud_init::{HostKeys, MetaData, NetworkConfig};
use vnode::plan::mac::Nic;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

/// Characters that break one format or another: YAML 1.1's unprintable ones and its line
/// breaks, JSON's and YAML's syntax, terminal escapes, bidi overrides.
const NASTY: &[char] = &[
    '\u{7f}', '\u{85}', '\u{86}', '\u{9b}', '\u{fffe}', '\u{ffff}', '\u{2028}', '\u{2029}',
    '\u{feff}', '\u{202e}', '\u{1b}', '\0', '\t', '\n', '\r', '"', '\\', '\'', ':', '#', '{', '}',
    '[', ']', ',', '&', '*', '!', '|', '>', '%', '@', '`', ' ', '-', '?', 'ü', '😀', '\u{a0}',
];

fn nasty_text(max: usize) -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::sample::select(NASTY),
        3 => proptest::char::range('a', 'z'),
        1 => any::<char>(),
    ];
    proptest::collection::vec(c, 0..max).prop_map(String::from_iter)
}

/// Text a terminal shows as itself, yet full of syntax: what a key comment may hold.
fn printable_text(max: usize) -> impl Strategy<Value = String> {
    let printable: Vec<char> = NASTY
        .iter()
        .copied()
        .filter(|c| !vnode::text::terminal::unsafe_to_show(*c) && !c.is_whitespace())
        .collect();
    let c = prop_oneof![
        2 => proptest::sample::select(printable),
        1 => proptest::char::range('a', 'z'),
    ];
    proptest::collection::vec(c, 1..max).prop_map(String::from_iter)
}

/// A value of a strict field (a name, a package): mostly valid, sometimes hostile.
fn mostly(valid: &'static str, max: usize) -> impl Strategy<Value = String> {
    prop_oneof![7 => Just(valid.to_string()), 1 => nasty_text(max)]
}

/// A key comment in the config: mostly printable, sometimes hostile.
fn comment() -> impl Strategy<Value = String> {
    prop_oneof![4 => printable_text(12), 1 => nasty_text(12)]
}

/// A TOML basic string literal holding exactly `s`.
fn toml(s: &str) -> String {
    common::toml_text::basic_string(s)
}

#[derive(Debug, Clone)]
struct Values {
    root_comment: String,
    file_comment: String,
    user: String,
    shell: String,
    user_comment: String,
    package: String,
    runcmd: Vec<String>,
    stem: String,
    domain: String,
}

fn values() -> impl Strategy<Value = Values> {
    (
        (comment(), nasty_text(12), mostly("alice", 6)),
        (mostly("/bin/bash", 8), comment(), mostly("vim", 6)),
        proptest::collection::vec(nasty_text(24), 1..3),
        (mostly("lab", 6), mostly("lab.example.org", 8)),
    )
        .prop_map(
            |(
                (root_comment, file_comment, user),
                (shell, user_comment, package),
                runcmd,
                (stem, domain),
            )| {
                Values {
                    root_comment,
                    file_comment,
                    user,
                    shell,
                    user_comment,
                    package,
                    runcmd,
                    stem,
                    domain,
                }
            },
        )
}

/// The config file that puts `v` in every user-given field; the key file holds `v.file_comment`.
fn config_text(v: &Values, key_file: &Path) -> String {
    let runcmd: Vec<String> = v.runcmd.iter().map(|c| toml(c)).collect();
    format!(
        "virt_type = \"qemu\"\n\
         ssh_keys = [{}, {}]\n\
         [cloud_init]\npackages = [{}]\nruncmd = [{}]\n\
         [[users]]\nname = {}\nshell = {}\nssh_keys = [{}]\n\
         [[pool]]\nstem = {}\ndomain = {}\n",
        toml(&format!("{KEY} {}", v.root_comment)),
        toml(&key_file.display().to_string()),
        toml(&v.package),
        runcmd.join(", "),
        toml(&v.user),
        toml(&v.shell),
        toml(&format!("{KEY} {}", v.user_comment)),
        toml(&v.stem),
        toml(&v.domain),
    )
}

/// A rendered case: each document's text and the value vnode meant it to hold.
type Documents = Vec<(&'static str, String, Value)>;

/// The documents of `v`'s config, or the refusal (checked to name where and what).
fn render(v: &Values, dir: &Path) -> Result<Documents, String> {
    let key_file = dir.join("key.pub");
    std::fs::write(&key_file, format!("{KEY} {}\n", v.file_comment)).unwrap();
    let path = dir.join("config.toml");
    let text = config_text(v, &key_file);
    let config = match Config::parse(&path, &text) {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("{}:", path.display())),
                "a refusal names the file and line: {message}"
            );
            assert!(
                !message.chars().any(vnode::text::terminal::unsafe_to_show),
                "a refusal shows the value escaped: {message:?}"
            );
            return Err(message);
        }
    };
    let pool = &config.pools.all()[0];
    let name = pool.node(pool.first).to_string();
    let host_keys = HostKeys {
        ed25519_private:
            "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n".into(),
        ed25519_public: KEY.into(),
    };
    let user_data = vnode::node::cloud_config(
        &config,
        name.clone(),
        pool.fqdn(pool.first),
        host_keys,
        format!("{KEY} vnode"),
    )
    .map_err(|e| e.to_string())?;
    let meta = MetaData {
        instance_id: format!("{name}-0123"),
        local_hostname: name,
    };
    let net = NetworkConfig::for_node(
        pool.mac(Nic::Public, pool.first),
        pool.mac(Nic::Private, pool.first),
    );
    let value = |v: serde_json::Result<Value>| v.unwrap();
    Ok(vec![
        (
            "user-data",
            user_data.render(),
            value(serde_json::to_value(&user_data)),
        ),
        (
            "meta-data",
            meta.render(),
            value(serde_json::to_value(&meta)),
        ),
        (
            "network-config",
            net.render(),
            value(serde_json::to_value(&net)),
        ),
    ])
}

/// Reads every document with the release's `cloudinit.util.load_yaml` (what the NoCloud
/// datasource and the cloud-config handler call); `null` where it gave up.
const LOADER: &str = r#"
import json, logging, sys
logging.disable(logging.CRITICAL)
from cloudinit import util
out = []
for docs in json.load(sys.stdin):
    out.append([util.load_yaml(text.encode("utf-8"), default=None) for text in docs])
json.dump(out, sys.stdout)
"#;

fn load_all(ci: &CloudInit, docs: &[Vec<String>]) -> Vec<Vec<Value>> {
    use std::io::Write;
    let mut child = ci
        .python()
        .args(["-c", LOADER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(docs).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "cloud-init {}'s loader failed: {}",
        ci.version,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn case_count() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128)
}

#[test]
fn every_user_given_value_reads_back_exactly_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[27; 32]),
    );
    let strategy = values();
    let (mut rendered, mut refused) = (Vec::new(), 0);
    for _ in 0..case_count() {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        match render(&v, dir.path()) {
            Ok(docs) => rendered.push((v, docs)),
            Err(e) => {
                if refused < 3 {
                    eprintln!("refused: {e}");
                }
                refused += 1;
            }
        }
    }
    assert!(
        rendered.len() * 4 >= refused,
        "too few cases get past the config ({} rendered, {refused} refused)",
        rendered.len()
    );
    let texts: Vec<Vec<String>> = rendered
        .iter()
        .map(|(_, docs)| docs.iter().map(|(_, text, _)| text.clone()).collect())
        .collect();
    for ci in releases() {
        let loaded = load_all(&ci, &texts);
        assert_eq!(loaded.len(), rendered.len());
        for ((v, docs), back) in rendered.iter().zip(&loaded) {
            for ((name, text, meant), got) in docs.iter().zip(back) {
                assert_eq!(
                    got, meant,
                    "cloud-init {} reads {name} otherwise than vnode meant\nvalues: {v:?}\n{text}",
                    ci.version
                );
            }
        }
    }
    eprintln!(
        "seeds: {} cases rendered and read back by every release, {refused} refused by the config",
        rendered.len()
    );
}

/// The finding, pinned: a runcmd entry and a key file's comment with DEL, C1 controls and
/// non-characters are written escaped, not raw (22.4 dropped the whole cloud-config).
#[test]
fn the_characters_that_made_cloud_init_drop_the_cloud_config_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let v = Values {
        root_comment: "me".into(),
        file_comment: "x\u{7f}\u{86}\u{9b}\u{fffe}\u{ffff}".into(),
        user: "alice".into(),
        shell: "/bin/bash".into(),
        user_comment: "a".into(),
        package: "vim".into(),
        runcmd: vec!["echo '\u{7f}\u{9b}\u{85}\u{2028}'".into()],
        stem: "lab".into(),
        domain: "lab.example.org".into(),
    };
    let docs = render(&v, dir.path()).unwrap();
    let user_data = &docs[0].1;
    for raw in [
        '\u{7f}', '\u{86}', '\u{9b}', '\u{fffe}', '\u{ffff}', '\u{85}', '\u{2028}',
    ] {
        assert!(!user_data.contains(raw), "{raw:?} raw in {user_data}");
    }
    assert!(
        user_data.contains(r"echo '\u007f\u009b\u0085\u2028'"),
        "{user_data}"
    );
}
