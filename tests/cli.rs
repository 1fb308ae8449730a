//! The foundation through the real binary: spec grammar, dry runs, plans (checked by the real
//! dnsmasq and dhcpd), config and catalog errors.

mod common;

use common::cli::Vnode;

#[test]
fn the_readme_dry_run_prints_four_nodes() {
    let out = Vnode::new()
        .args([
            "--dry-run",
            "3:f33",
            "vnode4",
            "vnode18:u18.04",
            "20:u20.04",
            "--json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = nodes
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap(),
                n["image"]["name"].as_str().unwrap(),
                n["public_mac"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("vnode03", "fedora-33", "52:54:00:00:00:03"),
            ("vnode04", "fedora-43", "52:54:00:00:00:04"),
            ("vnode18", "ubuntu-18.04", "52:54:00:00:00:18"),
            ("vnode20", "ubuntu-20.04", "52:54:00:00:00:20"),
        ]
    );
    assert_eq!(nodes[2]["private_mac"], "52:54:00:10:00:18");
    assert_eq!(nodes[0]["bridge"], "br0");
    assert_eq!(nodes[0]["network"], "default");
}

#[test]
fn spawn_subcommand_and_bare_specs_agree() {
    let a = Vnode::new()
        .args(["--dry-run", "--json", "3-5:u24.04"])
        .ok();
    let b = Vnode::new()
        .args(["spawn", "--dry-run", "--json", "vnode3-5:ubuntu-24.04"])
        .ok();
    assert_eq!(a, b);
}

#[test]
fn distro_flag_sets_the_default() {
    let out = Vnode::new()
        .args(["--dry-run", "--json", "-d", "d12", "3", "4:f43"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodes"][0]["image"]["name"], "debian-12");
    assert_eq!(v["nodes"][1]["image"]["name"], "fedora-43");
}

#[test]
fn every_bad_spec_exits_2_naming_it() {
    for bad in [
        ":f33",
        "vnode",
        "3:",
        "3-1",
        "x7",
        "99999999999999999999",
        "vnode99x:f99",
        "3:f99",
        "100",
        "vnode-3",
    ] {
        let (code, stderr) = Vnode::new().args(["--dry-run", bad]).fails();
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains(&format!("'{bad}'")), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
    }
    let (code, stderr) = Vnode::new().args(["--dry-run", "3", "vnode03"]).fails();
    assert_eq!(code, 2);
    assert!(stderr.contains("vnode03 is named twice"), "{stderr}");
    let (code, stderr) = Vnode::new().args(["--dry-run"]).fails();
    assert_eq!(code, 2);
    assert!(stderr.contains("no node specs"), "{stderr}");
}

#[test]
fn a_spec_with_terminal_escapes_and_bidi_overrides_is_shown_escaped() {
    for (bad, shown) in [
        ("3:f\u{202e}34\u{1b}[2J", "'3:f\\u{202e}34\\u{1b}[2J'"),
        ("\u{1b}]0;owned\u{7}3", "'\\u{1b}]0;owned\\u{7}3'"),
        ("3@h\u{2028}\u{9b}x", "'3@h\\u{2028}\\u{9b}x'"),
        ("vnode\u{2066}3", "'vnode\\u{2066}3'"),
    ] {
        let (code, stderr) = Vnode::new().args(["--dry-run", bad]).fails();
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stderr.contains(shown), "{bad:?}: {stderr}");
        for raw in [
            '\u{1b}', '\u{202e}', '\u{2028}', '\u{9b}', '\u{7}', '\u{2066}',
        ] {
            assert!(
                !stderr.contains(raw),
                "{bad:?}: {raw:?} reached the terminal: {stderr:?}"
            );
        }
    }
}

#[test]
fn parallel_takes_a_positive_number_auto_or_all() {
    for (bad, says) in [
        (
            "0",
            "0 nodes at a time would boot none: give 1 or more, `auto` or `all`",
        ),
        (
            "four",
            "\"four\" is not a number of nodes: give a number (1 or more), `auto` or `all`",
        ),
        ("-1", "\"-1\" is not a number of nodes"),
        ("2.5", "\"2.5\" is not a number of nodes"),
        ("", "\"\" is not a number of nodes"),
    ] {
        let (code, stderr) = Vnode::new()
            .args(["--dry-run", "3", &format!("--parallel={bad}")])
            .fails();
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        let whole = format!("invalid value '{bad}' for '--parallel <N|auto|all>': {says}");
        assert!(stderr.contains(&whole), "{bad:?}: {stderr}");
    }
    for good in ["1", "4", "auto", "all"] {
        Vnode::new()
            .args(["--dry-run", "3", "--parallel", good])
            .ok();
    }
    let (code, stderr) = Vnode::new()
        .config("parallel_boots = 0\n")
        .args(["--dry-run", "3"])
        .fails();
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "config.toml:1: parallel_boots: parallel_boots 0 is not between 1 and 100000 nodes"
        ),
        "{stderr}"
    );
}

#[test]
fn unknown_distro_suggests() {
    let (_, stderr) = Vnode::new().args(["--dry-run", "3:u24.4"]).fails();
    assert!(
        stderr.contains("did you mean") && stderr.contains("u24.04"),
        "{stderr}"
    );
}

const LAB_CONFIG: &str = r#"
[[pool]]
stem = "vnode"
domain = "pub.test"
public_subnet = "198.18.0.0/24"

[[pool]]
stem = "big"
width = 3
last = 120
public_subnet = "198.18.1.0/24"
"#;

/// `vnode plan 0-30 --format FORMAT` with the default config and with LAB_CONFIG.
fn plans(format: &str) -> [String; 2] {
    let args = ["plan", "0-30", "--format", format];
    [
        Vnode::new().args(args).ok(),
        Vnode::new().config(LAB_CONFIG).args(args).ok(),
    ]
}

#[test]
fn plan_for_dnsmasq_is_accepted_by_dnsmasq() {
    for plan in plans("dnsmasq") {
        assert_eq!(
            plan.lines().filter(|l| l.starts_with("dhcp-host=")).count(),
            31
        );
        common::consumers::dnsmasq_accepts(&plan);
    }
    let plan = Vnode::new()
        .config(LAB_CONFIG)
        .args(["plan", "--format", "dnsmasq"])
        .ok();
    assert!(
        plan.contains("dhcp-host=52:54:00:01:01:20,big120,198.18.1.220\n"),
        "{plan}"
    );
    assert!(
        plan.contains("host-record=vnode07.pub.test,vnode07,198.18.0.107\n"),
        "{plan}"
    );
}

#[test]
fn plan_for_isc_dhcpd_is_accepted_by_dhcpd() {
    for plan in plans("isc-dhcpd") {
        assert_eq!(plan.matches("hardware ethernet").count(), 31);
        common::consumers::dhcpd_accepts(&plan);
    }
}

#[test]
fn plan_formats_and_pool_selection() {
    let csv = Vnode::new()
        .config(LAB_CONFIG)
        .args(["plan", "--pool", "big", "--format", "csv"])
        .ok();
    assert_eq!(csv.lines().count(), 1 + 121);
    assert_eq!(
        csv.lines().nth(1),
        Some("big000,big,0,52:54:00:01:00:00,198.18.1.100,,52:54:00:11:00:00,br0")
    );
    let hosts = Vnode::new()
        .config(LAB_CONFIG)
        .args(["plan", "3", "--format", "hosts"])
        .ok();
    assert!(
        hosts.contains("198.18.0.103\tvnode03.pub.test vnode03\n"),
        "{hosts}"
    );
    let (code, stderr) = Vnode::new()
        .args(["plan", "3", "--format", "hosts"])
        .fails();
    assert_eq!(code, 2);
    assert!(stderr.contains("has no public_subnet"), "{stderr}");
    let json = Vnode::new().args(["--json", "plan", "18"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["entries"][0]["public_mac"], "52:54:00:00:00:18");
    let (code, stderr) = Vnode::new().args(["plan", "--pool", "nope"]).fails();
    assert_eq!(code, 2);
    assert!(stderr.contains("no pool 'nope'"), "{stderr}");
}

#[test]
fn config_show_names_its_source_and_example_is_valid() {
    let example = Vnode::new().args(["config", "example"]).ok();
    let shown = Vnode::new().config(&example).args(["config", "show"]).ok();
    assert!(shown.contains("(from --config)"), "{shown}");
    assert!(shown.contains("stem = \"big\""), "{shown}");
    let defaults = Vnode::new().args(["config", "show"]).ok();
    assert!(defaults.contains("built-in defaults"), "{defaults}");
}

#[test]
fn bad_config_exits_2_naming_file_and_line() {
    let (code, stderr) = Vnode::new()
        .config("virt_type = \"qemu\"\n[[pool]]\nstem = \"a\"\nmac_id = 12\n")
        .args(["plan"])
        .fails();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("config.toml:4: pool[0].mac_id: mac_id 12 is not between 0 and 9"),
        "{stderr}"
    );
    let (code, stderr) = Vnode::new()
        .config("[[pool]]\nstem = \"a\"\nbridge = \"br0,model=e1000\"\n")
        .args(["plan"])
        .fails();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("config.toml:3: pool[0].bridge: 'br0,model=e1000' is not an interface name (it contains ',')"),
        "{stderr}"
    );
    let (code, stderr) = Vnode::new()
        .args(["--config", "/nonexistent/vnode.toml", "plan"])
        .fails();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/vnode.toml: no such config file"),
        "{stderr}"
    );
}

/// vnode with a config whose `catalog` is a file holding `text`, named `name`.
fn with_catalog(name: &str, text: &str) -> Vnode {
    let v = Vnode::new();
    let catalog = v.write(name, text);
    v.config(&format!("catalog = {catalog:?}\n"))
}

#[test]
fn user_catalog_extends_the_builtin_one() {
    let out = with_catalog("mine.toml", "[[image]]\nname = \"alma-9\"\naliases = [\"a9\"]\nfamily = \"alma\"\nversion = \"9\"\nosinfo = \"almalinux9\"\nurl = \"https://example.invalid/a.qcow2\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n")
        .args(["--dry-run", "--json", "3:a9"])
        .ok();
    assert!(out.contains("\"alma-9\""), "{out}");
    let (code, stderr) = with_catalog("bad.toml", "[[image]]\nfamily = \"x\"\nname = \"Bad Name\"\nversion = \"1\"\nosinfo = \"x\"\nurl = \"https://e/x\"\nsha256 = \"00\"\n")
        .args(["--dry-run", "3"])
        .fails();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml:3: image[0].name: 'Bad Name' is not a valid image name"),
        "{stderr}"
    );
}

/// A user catalog cannot silently replace a signed built-in entry; `images list --available`
/// says where each entry comes from and how far it is trusted.
#[test]
fn a_user_catalog_entry_shadowing_a_builtin_one_must_say_so() {
    let entry = |extra: &str| {
        format!(
            "[[image]]\nname = \"fedora-43\"\n{extra}family = \"fedora\"\nversion = \"43\"\n\
             osinfo = \"fedora43\"\nurl = \"http://mirror.example/f.qcow2\"\n\
             sha256 = \"{}\"\nfamily_default = true\n",
            "0".repeat(64)
        )
    };
    let (code, stderr) = with_catalog("mine.toml", &entry(""))
        .args(["images", "list", "--available"])
        .fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("mine.toml:2: image[0].name: 'fedora-43' would replace the built-in entry fedora-43 (signed checksums)")
            && stderr.contains("add `replaces_builtin = true`"),
        "{stderr}"
    );
    let v = with_catalog("mine.toml", &entry("replaces_builtin = true\n"));
    let catalog = v.dir().join("mine.toml");
    let out = v.args(["images", "list", "--available"]).ok();
    let header = out.lines().next().unwrap();
    assert!(
        header.contains("TRUST") && header.contains("SOURCE"),
        "{header}"
    );
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let f43 = row("fedora-43");
    let shown = catalog.display().to_string();
    assert!(
        f43.ends_with(&["digest", shown.as_str(), "default"]),
        "{f43:?}"
    );
    let u24 = row("ubuntu-24.04");
    assert!(u24.ends_with(&["signed", "built-in", "family"]), "{u24:?}");
}

#[test]
fn images_list_available_shows_the_catalog() {
    let out = Vnode::new().args(["images", "list", "--available"]).ok();
    let f43 = out.lines().find(|l| l.starts_with("fedora-43")).unwrap();
    assert!(f43.ends_with("default"), "{f43}");
    assert!(out.lines().any(|l| l.starts_with("ubuntu-26.04")));
    assert!(out.lines().any(|l| l.starts_with("debian-13")));
}

/// As OpenSSH's StrictModes: a config file, catalog, cache or state directory that others may
/// write is refused (exit 2), naming it and the fix, before vnode reads or writes anything.
#[test]
fn files_and_directories_others_may_write_are_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let cache = dir.join("cache");
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o777);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "cache_dir = {cache:?}\nstate_dir = {:?}\n",
            dir.join("state")
        ),
    )
    .unwrap();
    let run = |args: &[&str]| Vnode::at(dir).config_file(&config).args(args);
    let (code, stderr) = run(&["images", "list"]).fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing the image cache (cache_dir) {}",
            cache.display()
        )) && stderr.contains(&format!("chmod go-w {}", cache.display())),
        "{stderr}"
    );
    // Planning touches neither directory.
    run(&["plan", "3"]).ok();
    chmod(&config, 0o666);
    let (code, stderr) = run(&["plan", "3"]).fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("refusing the config file {}", config.display())),
        "{stderr}"
    );
}

#[test]
fn reset_of_nodes_vnode_does_not_know_exits_2_touching_nothing() {
    let v = Vnode::new();
    let (state, images) = (v.dir().join("nodes"), v.dir().join("images"));
    let config = format!(
        "state_dir = \"{}\"\ncache_dir = \"{}\"\n",
        state.display(),
        images.display()
    );
    let (code, stderr) = v.config(&config).args(["reset", "3", "vnode04"]).fails();
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("vnode03, vnode04: no such node") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(!state.join(".fresh-states").exists());
}

#[test]
fn states_lists_none_and_its_cap_and_warm_needs_specs() {
    let v = Vnode::new();
    let (state, images) = (v.dir().join("nodes"), v.dir().join("images"));
    let config = format!(
        "state_dir = \"{}\"\ncache_dir = \"{}\"\nfresh_states_cap_gib = 7\n",
        state.display(),
        images.display()
    );
    let v = v.config(&config);
    let path = v.dir().join("config.toml");
    let out = Vnode::new().config_file(&path).args(["states"]).ok();
    assert!(
        out.contains("0 state(s), 0 MiB of the cap's 7 GiB"),
        "{out}"
    );
    let (code, _) = Vnode::new().config_file(&path).args(["warm"]).fails();
    assert_eq!(code, 2);
    drop(v);
}
