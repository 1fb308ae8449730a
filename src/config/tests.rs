//! Whole config files, read and checked: defaults, sections and where each rejection points.

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
    assert_eq!(c.cloud_init.modules, ModuleLists::Needed);
    for bad in [
        "--name=x",
        "--connect",
        "--import",
        "",
        "-n",
        "-nx",
        "-n=x",
        "--nam",
        "--conn",
        "--print-x",
        "--noautoc",
        "--transien",
        "--nam=x",
        "-vn",
        "--metadata",
        "--",
    ] {
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
    let e =
        Config::parse(Path::new("c.toml"), "virt_type = \"qemu\"\nvirt_typo = 1\n").unwrap_err();
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
    let two =
        |a: &str, b: &str| format!("[[pool]]\nstem = \"a\"\n{a}\n[[pool]]\nstem = \"b\"\n{b}\n");
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
            "is not a libvirt URI: it contains U+0020; it must be non-empty, without whitespace, \
             control or format characters",
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
            "'/var/\\u{0}x' is not a path: it contains U+0000; it must be non-empty and one line",
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
        "is not a public key or a path to one: it contains U+000A; it must be non-empty and one line",
    );
    // What YAML 1.1 cannot carry raw, or a terminal would act on, is refused with its code point
    // in names, keys and shells.
    for (value, point) in [
        ("\\u007F", "U+007F"),
        ("\\u0086", "U+0086"),
        ("\\u009B", "U+009B"),
        ("\\uFFFE", "U+FFFE"),
        ("\\uFFFF", "U+FFFF"),
        ("\\u202E", "U+202E"),
    ] {
        let says = format!("it contains {point};");
        assert_rejected(
            &format!("ssh_keys = [\"ssh-ed25519 AAAA me{value}\"]\n"),
            1,
            "ssh_keys[0]",
            &says,
        );
        assert_rejected(
            &format!("[cloud_init]\npackages = [\"vim{value}\"]\n"),
            2,
            "cloud_init.packages[0]",
            &says,
        );
        assert_rejected(
            &format!("[[users]]\nname = \"bob\"\nshell = \"/bin/sh{value}\"\n"),
            3,
            "users[0].shell",
            &says,
        );
        // A runcmd entry is a shell script: anything but NUL, escaped in the seed.
        let c = Config::parse(
            Path::new("c.toml"),
            &format!("[cloud_init]\nruncmd = [\"echo {value}\"]\n"),
        )
        .unwrap();
        assert_eq!(c.cloud_init.runcmd.len(), 1);
    }
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
        "is not a login shell: it contains U+000A; it must be non-empty, without whitespace",
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

/// A `[[hosts]]` URI is refused at the config when, decoded, its user or host would break the
/// lines vnode writes from them (`vnode ssh-config`, the inventory, ssh's own command line), or
/// when it asks libvirt to run a program or to skip host verification.
#[test]
fn a_host_uri_that_injects_or_runs_or_skips_verification_is_refused() {
    let config = |uri: &str| {
        let text = format!("[[hosts]]\nname = \"h1\"\nuri = \"{uri}\"\n");
        Config::parse(Path::new("c.toml"), &text).map(|_| ())
    };
    for good in [
        "qemu+ssh://root@lab-host.example.org/system",
        "qemu+ssh://admin.user_1@192.0.2.7:2222/system?keyfile=~/.ssh/id_lab&known_hosts=/etc/x",
        "qemu+ssh://root@[2001:db8::7]/system",
        "qemu+tls://h1.example/system",
    ] {
        assert!(config(good).is_ok(), "{good}: {:?}", config(good));
    }
    let refused = [
        (
            "qemu+ssh://root%0AHost%20*%0A%20%20ProxyCommand%20sh@h/system",
            "is not a login name",
        ),
        (
            "qemu+ssh://root@h%0AHost%20*/system",
            "is not a DNS name or an IP address",
        ),
        (
            "qemu+ssh://root@h%20-oProxyCommand=x/system",
            "is not a DNS name",
        ),
        (
            "qemu+ssh://-oProxyCommand=x@h/system",
            "is not a login name",
        ),
        (
            "qemu+ssh://root@h/system?command=/tmp/evil",
            "the parameter 'command'",
        ),
        (
            "qemu+ssh://root@h/system?%63ommand=/tmp/evil",
            "the parameter 'command'",
        ),
        (
            "qemu+libssh://root@h/system?known_hosts=/k&no_verify=1",
            "the parameter 'no_verify'",
        ),
        (
            "qemu+tls://h/system?NO_VERIFY=1",
            "the parameter 'no_verify'",
        ),
    ];
    for (uri, says) in refused {
        let e = config(uri).unwrap_err().to_string();
        assert!(
            e.contains("c.toml:3") && e.contains("hosts[0].uri") && e.contains(says),
            "{uri}: {e}"
        );
        assert!(!e.contains('\n'), "{uri}: the message is one line: {e}");
    }
}

#[test]
fn max_image_mib_defaults_to_64_gib_and_is_range_checked() {
    assert_eq!(Config::defaults().max_image_mib, 65_536);
    let c = Config::parse(Path::new("c.toml"), "max_image_mib = 2048\n").unwrap();
    assert_eq!(c.max_image_mib, 2048);
    for bad in ["0", "-1", "16777217"] {
        assert_rejected(
            &format!("cache_dir = \"/c\"\nmax_image_mib = {bad}\n"),
            2,
            "max_image_mib",
            "between 1 and 16777216 MiB (16 TiB)",
        );
    }
}

#[test]
fn fresh_states_default_auto_and_their_cap_is_range_checked() {
    use crate::config::FreshStates;
    let d = Config::defaults();
    assert_eq!(d.fresh_states, FreshStates::Auto);
    assert_eq!(d.fresh_states_cap_gib, 50);
    let c = Config::parse(
        Path::new("c.toml"),
        "fresh_states = true\nfresh_states_cap_gib = 0\n",
    )
    .unwrap();
    assert_eq!(c.fresh_states, FreshStates::On);
    assert_eq!(c.fresh_states_cap_gib, 0);
    for (text, want) in [("false", FreshStates::Off), ("\"auto\"", FreshStates::Auto)] {
        let c = Config::parse(Path::new("c.toml"), &format!("fresh_states = {text}\n")).unwrap();
        assert_eq!(c.fresh_states, want, "{text}");
    }
    // auto saves only nodes that wait for cloud-init anyway; on and off, all or none.
    assert!(FreshStates::Auto.saves(true) && !FreshStates::Auto.saves(false));
    assert!(FreshStates::On.saves(false) && !FreshStates::Off.saves(true));
    for bad in ["\"yes\"", "1"] {
        let e = Config::parse(Path::new("c.toml"), &format!("fresh_states = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fresh_states") && e.contains("auto"),
            "{bad}: {e}"
        );
    }
    for bad in ["-1", "1048577"] {
        assert_rejected(
            &format!("cache_dir = \"/c\"\nfresh_states_cap_gib = {bad}\n"),
            2,
            "fresh_states_cap_gib",
            "between 0 and 1048576 GiB (1 PiB)",
        );
    }
}
