//! Generated configs, many of them hostile (commas, newlines, NUL, unicode, empty strings, huge
//! and negative numbers, overflowing offsets, clashing pools): reading one never panics (this
//! runs in a debug build, so an overflow would), every rejection says what and where, and every
//! accepted pool gives each of its numbers MACs, a public address inside its subnet and a valid
//! FQDN.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;
use vnode::config::Config;
use vnode::plan::mac::Nic;
use vnode::text::names::check_domain;

/// A TOML value as written in the file, e.g. `"br0"` or `42`.
type Literal = String;

/// A TOML basic string on one line, whatever `s` holds, so that every key is on the line its
/// value starts on (multi-line strings are covered by the unit tests).
fn string_literal(s: &str) -> Literal {
    common::toml_text::basic_string(s)
}

/// Strings that break one rule or another.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(",".to_string()),
        Just("br0,model=e1000".to_string()),
        Just("lab\nserver=1.1.1.1".to_string()),
        Just("a\0b".to_string()),
        Just("brü".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("-lab".to_string()),
        Just("lab.".to_string()),
        Just("a..b".to_string()),
        Just("a b".to_string()),
        Just("x".repeat(16)),
        Just("x".repeat(64)),
        Just(vec!["y".repeat(63); 4].join(".")),
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

/// Mostly values that `valid` draws, sometimes hostile ones, as a TOML string.
fn string_key(valid: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = Literal> {
    prop_oneof![30 => valid.boxed(), 1 => hostile().boxed()].prop_map(|s| string_literal(&s))
}

/// Mostly numbers in `valid`, sometimes extreme ones; rarely a literal TOML cannot hold.
fn number_key(valid: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = Literal> {
    prop_oneof![
        150 => valid.prop_map(|n| n.to_string()),
        4 => prop_oneof![
            Just(-1i64),
            Just(0),
            Just(u32::MAX.into()),
            Just(i64::from(u32::MAX) + 1),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>(),
        ]
        .prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999".to_string()),
    ]
}

fn maybe(value: impl Strategy<Value = Literal>) -> impl Strategy<Value = Option<Literal>> {
    prop::option::weighted(0.6, value)
}

fn list(value: impl Strategy<Value = Literal>) -> impl Strategy<Value = Option<Literal>> {
    prop::option::weighted(
        0.4,
        prop::collection::vec(value, 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
    )
}

/// `key = value` lines of the keys that are set.
fn table(keys: &[(&str, Option<Literal>)]) -> String {
    let mut out = String::new();
    for (key, value) in keys {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    out
}

fn stem() -> impl Strategy<Value = Literal> {
    string_key(prop_oneof![
        Just("vnode".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        "[a-z][a-z0-9-]{0,6}[a-z]-?",
    ])
}

fn subnet() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u8..=255).prop_map(|c| format!("198.18.{c}.0/24")),
        1 => Just("198.18.0.0/25".to_string()),
        1 => Just("10.0.0.0/8".to_string()),
        1 => Just("255.255.255.0/24".to_string()),
        1 => Just("198.18.0.0/31".to_string()),
        1 => Just("0.0.0.0/0".to_string()),
        2 => (any::<[u8; 4]>(), 0u8..=33)
            .prop_map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3])),
    ]
}

fn pool() -> impl Strategy<Value = String> {
    let ids = (
        stem(),
        maybe(number_key(1..=4)),
        maybe(number_key(0..=60)),
        maybe(prop_oneof![8 => number_key(0..=120), 1 => Just("9999".to_string())]),
        maybe(number_key(0..=3)),
    );
    let nets = (
        maybe(string_key(prop_oneof![
            Just("br0".to_string()),
            "[A-Za-z0-9_.-]{1,15}"
        ])),
        maybe(string_key(prop_oneof![
            Just("default".to_string()),
            "[a-z0-9]{1,15}"
        ])),
        maybe(string_key("([a-z0-9]{1,8}\\.){0,3}[a-z]{2,6}")),
        maybe(string_key(subnet())),
        maybe(prop_oneof![
            20 => number_key(0..=150),
            1 => Just(u32::MAX.to_string()),
            1 => Just(((1 << 24) - 1).to_string())
        ]),
    );
    let resources = (
        maybe(number_key(128..=8192)),
        maybe(number_key(1..=8)),
        maybe(number_key(1..=100)),
    );
    (ids, nets, resources).prop_map(
        |(
            (stem, width, first, last, mac_id),
            (bridge, network, domain, subnet, offset),
            (m, v, d),
        )| {
            let keys = [
                ("stem", Some(stem)),
                ("width", width),
                ("first", first),
                ("last", last),
                ("mac_id", mac_id),
                ("bridge", bridge),
                ("network", network),
                ("domain", domain),
                ("public_subnet", subnet),
                ("public_offset", offset),
                ("memory_mib", m),
                ("vcpus", v),
                ("disk_gib", d),
            ];
            format!("[[pool]]\n{}", table(&keys))
        },
    )
}

fn user() -> impl Strategy<Value = String> {
    (
        string_key(prop_oneof![
            1 => Just("alice".to_string()),
            1 => Just("root".to_string()),
            8 => "[a-z_][a-z0-9_-]{0,8}"
        ]),
        list(string_key(
            "ssh-ed25519 AAAA[A-Za-z0-9]{4} [a-z]{1,4}@[a-z]{1,4}",
        )),
        maybe(prop_oneof![
            Just("true".to_string()),
            Just("false".to_string())
        ]),
        maybe(string_key(prop_oneof![
            8 => Just("/bin/bash".to_string()),
            1 => Just("bash".to_string())
        ])),
    )
        .prop_map(|(name, keys, sudo, shell)| {
            let keys = [
                ("name", Some(name)),
                ("ssh_keys", keys),
                ("sudo", sudo),
                ("shell", shell),
            ];
            format!("[[users]]\n{}", table(&keys))
        })
}

fn config() -> impl Strategy<Value = String> {
    let top = (
        maybe(string_key(prop_oneof![
            Just("qemu:///system".to_string()),
            "qemu\\+ssh://[a-z]{1,6}/system"
        ])),
        maybe(string_key(prop_oneof![
            Just("auto".to_string()),
            Just("kvm".to_string()),
            Just("qemu".to_string())
        ])),
        maybe(string_key("/[a-z/]{0,16}")),
        maybe(string_key("/[a-z/]{0,16}")),
        list(string_key(
            "ssh-ed25519 AAAA[A-Za-z0-9]{4}|~/.ssh/id_ed25519.pub",
        )),
        maybe(string_key(prop_oneof![
            Just("f43".to_string()),
            Just("u24.04".to_string())
        ])),
        prop::option::weighted(0.2, stem()),
        maybe(string_key("/etc/[a-z]{1,8}.toml")),
    );
    let tables = (
        (
            maybe(number_key(128..=8192)),
            maybe(number_key(1..=8)),
            maybe(number_key(1..=100)),
        ),
        (
            list(string_key("[a-z0-9+-]{1,10}")),
            list(string_key("[ -~\n]{0,20}")),
        ),
        prop::collection::vec(user(), 0..3),
        prop::collection::vec(pool(), 0..4),
    );
    (top, tables).prop_map(
        |(
            (uri, virt, cache, state, keys, distro, default_pool, catalog),
            ((m, v, d), (pkgs, cmds), users, pools),
        )| {
            let mut text = table(&[
                ("libvirt_uri", uri),
                ("virt_type", virt),
                ("cache_dir", cache),
                ("state_dir", state),
                ("ssh_keys", keys),
                ("default_distro", distro),
                ("default_pool", default_pool),
                ("catalog", catalog),
            ]);
            text += "[resources]\n";
            text += &table(&[("memory_mib", m), ("vcpus", v), ("disk_gib", d)]);
            text += "[cloud_init]\n";
            text += &table(&[("packages", pkgs), ("runcmd", cmds)]);
            text += &users.concat();
            text += &pools.concat();
            text
        },
    )
}

/// `pool[1].mac_id` → `mac_id`, `ssh_keys[0]` → `ssh_keys`: the key as its line starts.
fn key_of(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

proptest! {
    // XorShift: in a debug build, proptest's default ChaCha generator takes most of the time.
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_configs_are_accepted_sound_or_rejected_with_a_located_message(text in config()) {
        let lines: Vec<&str> = text.lines().collect();
        match Config::parse(Path::new("c.toml"), &text) {
            Err(e) => {
                prop_assert!(!e.message.trim().is_empty(), "{e}");
                let line = e.line.ok_or_else(|| TestCaseError::fail(format!("no line: {e}")))?;
                prop_assert!((1..=lines.len()).contains(&line), "{e}");
                // Only text TOML itself cannot read has no field (here: an integer beyond i64).
                let Some(field) = e.field.as_deref() else {
                    prop_assert!(text.parse::<toml::Table>().is_err(), "no field: {e}");
                    return Ok(());
                };
                prop_assert!(!e.message.contains('\n'), "{e}");
                let at = lines[line - 1];
                let on_its_key = at.starts_with(&format!("{} = ", key_of(field)));
                let defaulted = at.starts_with("stem = ") && e.message.contains("is not set in this pool");
                prop_assert!(on_its_key || defaulted, "{e}\nline {line}: {at:?}");
            }
            Ok(config) => {
                for pool in config.pools.all() {
                    for n in pool.first..=pool.last {
                        let (_, _) = (pool.mac(Nic::Public, n), pool.mac(Nic::Private, n));
                        match (pool.public_subnet, pool.public_ip(n)) {
                            (None, ip) => prop_assert_eq!(ip, None),
                            (Some(net), None) => prop_assert!(false, "{} has no address in {net}", pool.node(n)),
                            (Some(net), Some(ip)) => prop_assert!(
                                net.contains(&ip) && ip != net.network() && ip != net.broadcast(),
                                "{ip} of {} is no host address of {net}", pool.node(n)
                            ),
                        }
                    }
                    if let Some(fqdn) = pool.fqdn(pool.last) {
                        prop_assert!(check_domain(&fqdn).is_ok(), "{fqdn}");
                    }
                }
            }
        }
    }
}
