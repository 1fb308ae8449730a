//! Per-node artifacts, judged by their real consumers: `qemu-img` (overlay), `isoinfo` and
//! `blkid` (seed), `cloud-init schema` and `cloud-init devel net-convert` (documents),
//! `ssh-keygen` (host key, known_hosts) and `virt-install --print-xml` on libvirt's test driver
//! (the domain). Nothing here starts libvirtd or a VM.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vnode::config::Config;
use vnode::hosts::hypervisor::Hypervisor;
use vnode::images::BaseImage;
use vnode::images::catalog::Catalog;
use vnode::libvirt::VirtInstall;
use vnode::libvirt::virt_install::Accel;
use vnode::node::{self, NodeArtifacts, NodeError};
use vnode::plan::planned_node::{self, HostName, PlannedNode};
use vnode::plan::spec;

/// A state directory, an image cache with a small base image, and a config pointing at both.
struct Site {
    dir: tempfile::TempDir,
    config: Config,
    base: BaseImage,
}

/// A valid public key for the config (generated, so no key material is committed).
fn public_key(comment: &str) -> String {
    let k = node::host_key::HostKey::generate(comment).unwrap();
    format!("{} {comment}", k.public)
}

fn run(program: &str, args: &[&str], paths: &[&Path]) -> Output {
    Command::new(program)
        .args(args)
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (see .ci/install-deps): {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Site {
    fn new() -> Site {
        Site::with("")
    }

    /// `extra` is appended to the config (pools, users, cloud_init...).
    fn with(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let base = cache.join("debian-12.qcow2");
        let out = run(
            "qemu-img",
            &["create", "-q", "-f", "qcow2"],
            &[&base, Path::new("1G")],
        );
        assert!(out.status.success(), "{}", text(&out));
        let toml = format!(
            "state_dir = \"{}\"\ncache_dir = \"{}\"\nlibvirt_uri = \"qemu:///system\"\n\
             ssh_keys = [\"{}\"]\n[resources]\nmemory_mib = 256\nvcpus = 1\ndisk_gib = 2\n{extra}",
            dir.path().join("state").display(),
            cache.display(),
            public_key("me@host"),
        );
        let config = Config::parse(Path::new("test.toml"), &toml).unwrap();
        Site {
            dir,
            config,
            base: BaseImage {
                path: base,
                osinfo: "debian12".into(),
                digest: "sha512:0123".into(),
            },
        }
    }

    fn planned(&self, spec: &str) -> PlannedNode {
        let catalog = Catalog::load(None).unwrap();
        let r =
            spec::resolve(&[spec.to_string()], &self.config.pools, &catalog, None, &[]).unwrap();
        planned_node::plan(
            r,
            Some(vec![self.base.clone()]),
            &catalog,
            &HostName::local(),
        )
        .remove(0)
    }

    fn host(&self) -> Hypervisor {
        Hypervisor::local(&self.config)
    }

    fn try_prepare(&self, spec: &str) -> Result<NodeArtifacts, NodeError> {
        let (node, host) = (self.planned(spec), self.host());
        node::prepare(
            &self.config,
            &node,
            &host.node_paths(&node.name()),
            &host.known_hosts(),
            None,
        )
    }

    /// The virt-install command spawn would run for the node of `spec` prepared as `a`.
    fn command(&self, spec: &str, a: &NodeArtifacts) -> VirtInstall {
        vnode::spawn::stages::virt_install(&self.host(), &self.planned(spec), a, Accel::Tcg, &[])
    }

    fn prepare(&self, spec: &str) -> NodeArtifacts {
        self.try_prepare(spec).unwrap()
    }

    fn state(&self) -> PathBuf {
        self.config.state_dir.clone()
    }

    /// A file of the seed ISO, extracted with isoinfo (Rock Ridge names).
    fn seed_file(&self, a: &NodeArtifacts, name: &str) -> String {
        let out = run(
            "isoinfo",
            &["-R", "-x", &format!("/{name}"), "-i"],
            &[&a.seed],
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// virt-install, logging into the scratch directory rather than ~/.cache.
    fn virt_install(&self, args: &[&str]) -> Output {
        Command::new("virt-install")
            .args(args)
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .output()
            .expect("virt-install is needed for this test (Debian package virtinst)")
    }

    /// Writes `contents` into the scratch directory.
    fn scratch(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Entries of the state directory, sorted.
    fn state_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.state())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn user_data_json(text: &str) -> serde_json::Value {
    let body = text
        .strip_prefix("#cloud-config\n")
        .expect("user-data starts with #cloud-config");
    serde_json::from_str(body).unwrap()
}

#[test]
fn a_node_directory_has_every_file_with_the_right_mode() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    assert_eq!(a.name, "vnode03");
    assert_eq!(a.dir, site.state().join("vnode03"));
    assert_eq!(mode(&a.dir), 0o711);
    assert_eq!(mode(&a.overlay), 0o600);
    assert_eq!(
        mode(&a.seed),
        0o600,
        "the seed carries the private host key"
    );
    assert_eq!(mode(&a.dir.join(node::files::HOST_KEY_PUB)), 0o644);
    assert!(!a.console_log.exists(), "virtlogd creates the console log");
    assert_eq!(a.console_log, a.dir.join("console.log"));
    let pubkey = std::fs::read_to_string(a.dir.join(node::files::HOST_KEY_PUB)).unwrap();
    assert_eq!(pubkey, format!("{} vnode03\n", a.host_public_key));

    let m = node::metadata::NodeMetadata::load(&a.dir).unwrap();
    assert_eq!(
        (m.name.as_str(), m.pool.as_str(), m.number),
        ("vnode03", "vnode", 3)
    );
    assert_eq!(m.image, "debian-12");
    assert_eq!(m.base, site.base.path.canonicalize().unwrap());
    assert_eq!(m.base_digest, "sha512:0123");
    assert_eq!(m.public_mac.to_string(), "52:54:00:00:00:03");
    assert_eq!(m.private_mac.to_string(), "52:54:00:10:00:03");
    assert_eq!(m.instance_id, a.instance_id);
    assert_eq!(m.host_key, a.host_public_key);
    assert!(m.created.ends_with('Z') && m.created_unix > 1_700_000_000);

    let kh = std::fs::read_to_string(site.state().join("known_hosts")).unwrap();
    assert_eq!(kh, format!("vnode03 {}\n", a.host_public_key));
}

#[test]
fn the_overlay_passes_qemu_img_check_and_shows_its_backing_file() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    let check = run("qemu-img", &["check"], &[&a.overlay]);
    assert!(check.status.success(), "qemu-img check: {}", text(&check));
    assert!(
        text(&check).contains("No errors were found"),
        "{}",
        text(&check)
    );
    let info = run("qemu-img", &["info", "--output=json"], &[&a.overlay]);
    assert!(info.status.success(), "{}", text(&info));
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let base = site.base.path.canonicalize().unwrap();
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["virtual-size"], 2u64 << 30, "the pool's disk_gib");
    assert_eq!(v["backing-filename"], base.to_str().unwrap());
    assert_eq!(v["backing-filename-format"], "qcow2");
    assert!(
        v["actual-size"].as_u64().unwrap() < 1 << 20,
        "a fresh overlay is small: {v}"
    );
}

#[test]
fn a_disk_smaller_than_the_image_is_refused_and_nothing_is_left() {
    let site = Site::with("[[pool]]\nstem = \"tiny\"\ndisk_gib = 1\n[[pool]]\nstem = \"vnode\"\n");
    // Grow the base beyond the tiny pool's 1 GiB.
    let out = run(
        "qemu-img",
        &["resize", "-q"],
        &[&site.base.path, Path::new("3G")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e = site.try_prepare("tiny3:debian-12").unwrap_err();
    assert!(matches!(e, NodeError::DiskTooSmall { .. }), "{e}");
    assert!(e.to_string().contains("raise disk_gib"), "{e}");
    assert_eq!(e.exit_code(), 2);
    assert!(!site.state().join("tiny3").exists());
    // The default pool's 2 GiB is also too small now; equal or larger is fine.
    assert!(site.try_prepare("vnode3:debian-12").is_err());
    let out = run(
        "qemu-img",
        &["resize", "-q", "--shrink"],
        &[&site.base.path, Path::new("2G")],
    );
    assert!(out.status.success(), "{}", text(&out));
    site.prepare("vnode3:debian-12");
}

#[test]
fn the_seed_is_a_cidata_iso_with_the_three_documents() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    let info = run("isoinfo", &["-d", "-i"], &[&a.seed]);
    assert!(text(&info).contains("Volume id: cidata"), "{}", text(&info));
    let blkid = run("blkid", &["-o", "export"], &[&a.seed]);
    assert!(text(&blkid).contains("LABEL=cidata"), "{}", text(&blkid));
    assert!(text(&blkid).contains("TYPE=iso9660"), "{}", text(&blkid));

    let meta: serde_json::Value = serde_json::from_str(&site.seed_file(&a, "meta-data")).unwrap();
    assert_eq!(meta["instance-id"], a.instance_id.as_str());
    assert_eq!(meta["local-hostname"], "vnode03");

    let ud = user_data_json(&site.seed_file(&a, "user-data"));
    assert_eq!(ud["hostname"], "vnode03");
    assert_eq!(ud["disable_root"], false);
    assert_eq!(ud["ssh_pwauth"], false);
    assert_eq!(ud["ssh_deletekeys"], true);
    assert_eq!(ud["prefer_fqdn_over_hostname"], false);
    assert_eq!(
        ud["ssh_authorized_keys"][0],
        site.config.ssh_keys[0].as_str()
    );
    assert_eq!(ud["ssh_keys"]["ed25519_public"], a.host_public_key.as_str());
    // The private key in the seed is the public key's other half.
    let private = site.scratch(
        "host_key",
        ud["ssh_keys"]["ed25519_private"].as_str().unwrap(),
    );
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let derived = run("ssh-keygen", &["-y", "-f"], &[&private]);
    assert!(derived.status.success(), "{}", text(&derived));
    assert!(String::from_utf8_lossy(&derived.stdout).starts_with(&a.host_public_key));

    let net: serde_json::Value =
        serde_json::from_str(&site.seed_file(&a, "network-config")).unwrap();
    assert_eq!(net["version"], 2);
    assert_eq!(
        net["ethernets"]["public"]["match"]["macaddress"],
        "52:54:00:00:00:03"
    );
    assert_eq!(
        net["ethernets"]["private"]["match"]["macaddress"],
        "52:54:00:10:00:03"
    );
}

/// `cloud-init schema` on the node's user-data: valid, no deprecations. A broken copy is
/// refused, so the check does read the file.
#[test]
fn cloud_init_schema_accepts_the_user_data() {
    let site = Site::with(&format!(
        "[[pool]]\nstem = \"vnode\"\ndomain = \"lab.test\"\n\
         [[users]]\nname = \"alice\"\nssh_keys = [\"{}\"]\nsudo = true\nshell = \"/bin/bash\"\n\
         [cloud_init]\npackages = [\"curl\", \"yes\"]\nruncmd = [\"touch /root/marker\", \"on\"]\n",
        public_key("alice@host")
    ));
    let a = site.prepare("3:debian-12");
    let user_data = site.seed_file(&a, "user-data");
    let ud = user_data_json(&user_data);
    assert_eq!(ud["fqdn"], "vnode03.lab.test");
    assert_eq!(ud["users"][0], "default");
    assert_eq!(ud["users"][1]["name"], "alice");
    assert_eq!(ud["users"][1]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
    assert_eq!(ud["packages"], serde_json::json!(["curl", "yes"]));
    // vnode's NetworkManager route-metric fix first (tests/renderers.rs), then the config's.
    assert!(
        ud["runcmd"][0].as_str().unwrap().contains("nmcli"),
        "{ud:#}"
    );
    assert_eq!(ud["runcmd"][1], "touch /root/marker");
    assert_eq!(
        ud["write_files"][0]["path"],
        "/etc/NetworkManager/conf.d/90-vnode-route-metrics.conf"
    );

    let file = site.scratch("user-data", &user_data);
    let out = run("cloud-init", &["schema", "--config-file"], &[&file]);
    assert!(out.status.success(), "cloud-init schema: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Valid cloud-config"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("DEPRECATED"), "{}", text(&out));

    let broken = site.scratch(
        "broken",
        &user_data.replacen("\"users\": [", "\"users\": 3, \"x\": [", 1),
    );
    let out = run("cloud-init", &["schema", "--config-file"], &[&broken]);
    assert!(
        !out.status.success(),
        "a broken copy passed: {}",
        text(&out)
    );
}

/// `cloud-init devel net-convert` renders the network-config for networkd (Debian) and netplan
/// (Ubuntu): both NICs matched by MAC, DHCP on both, the public one preferred for the default
/// route.
#[test]
fn net_convert_renders_both_nics_by_mac_with_the_public_route_preferred() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    let nc = site.scratch("network-config", &site.seed_file(&a, "network-config"));
    let out_dir = site.dir.path().join("networkd");
    let out = run(
        "cloud-init",
        &[
            "devel",
            "net-convert",
            "-k",
            "yaml",
            "-D",
            "debian",
            "-O",
            "networkd",
            "-p",
        ],
        &[&nc, Path::new("-d"), &out_dir],
    );
    assert!(out.status.success(), "{}", text(&out));
    let dir = out_dir.join("etc/systemd/network");
    let public = std::fs::read_to_string(dir.join("10-cloud-init-public.network")).unwrap();
    let private = std::fs::read_to_string(dir.join("10-cloud-init-private.network")).unwrap();
    assert!(public.contains("MACAddress=52:54:00:00:00:03"), "{public}");
    assert!(
        private.contains("MACAddress=52:54:00:10:00:03"),
        "{private}"
    );
    for f in [&public, &private] {
        assert!(f.contains("DHCP=ipv4"), "{f}");
    }
    assert!(public.contains("RouteMetric=100"), "{public}");
    assert!(private.contains("RouteMetric=200"), "{private}");

    let out_dir = site.dir.path().join("netplan");
    let out = run(
        "cloud-init",
        &[
            "devel",
            "net-convert",
            "-k",
            "yaml",
            "-D",
            "ubuntu",
            "-O",
            "netplan",
            "-p",
        ],
        &[&nc, Path::new("-d"), &out_dir],
    );
    assert!(out.status.success(), "{}", text(&out));
    let plan = std::fs::read_to_string(out_dir.join("etc/netplan/50-cloud-init.yaml")).unwrap();
    let v: serde_json::Value = serde_norway::from_str(&plan).unwrap();
    let eth = &v["network"]["ethernets"];
    assert_eq!(
        eth["public"]["match"]["macaddress"], "52:54:00:00:00:03",
        "{plan}"
    );
    assert_eq!(
        eth["private"]["match"]["macaddress"], "52:54:00:10:00:03",
        "{plan}"
    );
    assert_eq!(eth["public"]["dhcp4"], true);
    assert_eq!(eth["private"]["dhcp4"], true);
    assert_eq!(eth["public"]["dhcp4-overrides"]["route-metric"], 100);
    assert_eq!(eth["private"]["dhcp4-overrides"]["route-metric"], 200);
}

/// net-convert on the host cannot show what happens in a guest: there cloud-init 22.4 names each
/// NIC by looking its MAC up among the real devices (`enp1s0`), and its networkd renderer then
/// finds the dhcp4-overrides only under a config key equal to that name. This drives cloud-init's
/// own code with the MAC lookup answered as in a q35 guest, and shows why the NICs have
/// `set-name`: with it the route metrics survive, without it (the lab's boot) they are dropped.
#[test]
fn in_a_guest_cloud_init_networkd_keeps_the_route_metrics_thanks_to_set_name() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    let ours = site.scratch("network-config", &site.seed_file(&a, "network-config"));
    let rendered = render_in_guest(&site, &ours);
    assert!(rendered.contains("== public\n"), "{rendered}");
    assert!(rendered.contains("RouteMetric=100"), "{rendered}");
    assert!(rendered.contains("RouteMetric=200"), "{rendered}");
    assert!(
        rendered.contains("MACAddress=52:54:00:00:00:03"),
        "{rendered}"
    );

    // Control: the same config without set-name loses the metrics in the guest.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    for nic in ["public", "private"] {
        v["ethernets"][nic]
            .as_object_mut()
            .unwrap()
            .remove("set-name");
    }
    let without = site.scratch("without-set-name", &v.to_string());
    let rendered = render_in_guest(&site, &without);
    assert!(rendered.contains("== enp2s0\n"), "{rendered}");
    assert!(!rendered.contains("RouteMetric"), "{rendered}");
}

/// cloud-init's networkd renderer run by cloud-init's Python, with the guest's MAC → device
/// lookup (private NIC enp1s0, public enp2s0, as virt-install's q35 machine has them).
fn render_in_guest(site: &Site, network_config: &Path) -> String {
    let launcher = std::fs::read_to_string("/usr/bin/cloud-init")
        .expect("cloud-init is needed for this test (see .ci/install-deps)");
    let python = launcher
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(str::trim)
        .expect("cloud-init's launcher names its python");
    let script = site.scratch(
        "in_guest.py",
        r#"import sys
from unittest import mock
from cloudinit import safeyaml
from cloudinit.net import network_state, networkd
config = safeyaml.load(open(sys.argv[1]).read())
macs = {"52:54:00:10:00:03": "enp1s0", "52:54:00:00:00:03": "enp2s0"}
with mock.patch.object(network_state, "get_interfaces_by_mac", return_value=macs), \
     mock.patch.object(network_state, "find_interface_name_from_mac",
                       side_effect=lambda m: macs.get(m.lower())):
    state = network_state.parse_net_config_data(config)
for name, text in sorted(networkd.network_state_to_networkd(state).items()):
    print("==", name)
    print(text)
"#,
    );
    let out = run(python, &[], &[&script, network_config]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The `<tag ...> ... </tag>` blocks of an XML text.
fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag} "), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let end = rest[start..].find(&close).expect("closed") + start + close.len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// The builder's argv on libvirt's test driver: `--connect test:///default` instead of the
/// config's URI, and no `--virt-type` (the test driver has only its own domain type).
#[test]
fn virt_install_print_xml_on_the_test_driver_has_both_nics_and_both_disks() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    let mut argv: Vec<String> = site
        .command("3:debian-12", &a)
        .print_xml_argv()
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    let i = argv.iter().position(|s| s == "--connect").unwrap();
    argv[i + 1] = "test:///default".into();
    let i = argv.iter().position(|s| s == "--virt-type").unwrap();
    assert_eq!(argv.drain(i..i + 2).nth(1).as_deref(), Some("qemu"));
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = site.virt_install(&args);
    assert!(out.status.success(), "virt-install: {}", text(&out));
    let xml = String::from_utf8(out.stdout).unwrap();

    let nics = blocks(&xml, "interface");
    assert_eq!(nics.len(), 2, "{xml}");
    assert!(nics[0].contains("type=\"network\""), "{}", nics[0]);
    assert!(
        nics[0].contains("<source network=\"default\"/>"),
        "{}",
        nics[0]
    );
    assert!(
        nics[0].contains("<mac address=\"52:54:00:10:00:03\"/>"),
        "{}",
        nics[0]
    );
    assert!(nics[1].contains("type=\"bridge\""), "{}", nics[1]);
    assert!(nics[1].contains("<source bridge=\"br0\"/>"), "{}", nics[1]);
    assert!(
        nics[1].contains("<mac address=\"52:54:00:00:00:03\"/>"),
        "{}",
        nics[1]
    );
    for nic in &nics {
        assert!(nic.contains("<model type=\"virtio\"/>"), "{nic}");
    }

    let disks = blocks(&xml, "disk");
    assert_eq!(disks.len(), 2, "{xml}");
    let overlay = format!("<source file=\"{}\"/>", a.overlay.display());
    let seed = format!("<source file=\"{}\"/>", a.seed.display());
    assert!(disks[0].contains("device=\"disk\""), "{}", disks[0]);
    assert!(disks[0].contains(&overlay), "{}", disks[0]);
    assert!(disks[0].contains("bus=\"virtio\""), "{}", disks[0]);
    assert!(disks[1].contains("device=\"cdrom\""), "{}", disks[1]);
    assert!(disks[1].contains(&seed), "{}", disks[1]);
    assert!(disks[1].contains("bus=\"scsi\""), "{}", disks[1]);
    assert!(disks[1].contains("<readonly/>"), "{}", disks[1]);

    assert!(xml.contains("<name>vnode03</name>"), "{xml}");
    assert!(xml.contains("<memory>262144</memory>"), "{xml}");
    // The firmware's messages reach the serial console (a disk that does not boot says so).
    assert!(xml.contains("<bios useserial=\"yes\"/>"), "{xml}");
    assert!(
        xml.contains("<tb-cache unit=\"MiB\">128</tb-cache>"),
        "{xml}"
    );
    let console = format!("<log file=\"{}\" append=\"off\"/>", a.console_log.display());
    assert!(xml.contains(&console), "{xml}");
    let description = xml
        .split("<description>")
        .nth(1)
        .and_then(|s| s.split("</description>").next())
        .expect("a description");
    let m = vnode::libvirt::DomainMetadata::from_description(description).unwrap();
    assert_eq!(
        (m.pool.as_str(), m.number, m.image.as_str()),
        ("vnode", 3, "debian-12")
    );
}

#[test]
fn the_osinfo_id_falls_back_when_the_host_does_not_know_it() {
    let site = Site::new();
    let a = site.prepare("3:debian-12");
    // Debian bookworm's osinfo-db has no debian12.
    assert_eq!(a.osinfo.requested, "debian12");
    let known = site.virt_install(&["--osinfo", "list"]);
    if String::from_utf8_lossy(&known.stdout)
        .lines()
        .any(|l| l.split(", ").any(|id| id == "debian12"))
    {
        assert_eq!(a.osinfo.id, "debian12");
    } else {
        assert_eq!(a.osinfo.id, "debian11");
        assert!(a.osinfo.note.as_deref().unwrap().contains("debian12"));
    }
    assert_eq!(site.command("3:debian-12", &a).osinfo, a.osinfo.id);
}

#[test]
fn preparing_again_replaces_the_node_cleanly() {
    let site = Site::with("[[pool]]\nstem = \"vnode\"\ndomain = \"lab.test\"\n");
    let first = site.prepare("3:debian-12");
    let other = site.prepare("4:debian-12");
    node::known_hosts_file::add_address(
        &node::files::known_hosts(&site.state()),
        "vnode03",
        "10.0.0.3",
    )
    .unwrap();
    std::fs::write(first.console_log.clone(), "old boot\n").unwrap();
    let second = site.prepare("3:debian-12");
    assert_ne!(first.instance_id, second.instance_id);
    assert_ne!(first.host_public_key, second.host_public_key);
    assert!(
        !second.console_log.exists(),
        "the old node's files are gone"
    );
    let kh = std::fs::read_to_string(site.state().join("known_hosts")).unwrap();
    assert_eq!(
        kh,
        format!(
            "vnode04,vnode04.lab.test {}\nvnode03,vnode03.lab.test {}\n",
            other.host_public_key, second.host_public_key
        )
    );
    let check = run("qemu-img", &["check"], &[&second.overlay]);
    assert!(check.status.success(), "{}", text(&check));
    // Only the nodes, vnode's known_hosts and its caches: no staging directories left behind.
    let entries = site.state_entries();
    assert!(
        entries.iter().all(|e| [
            "vnode03",
            "vnode04",
            "known_hosts",
            "known_hosts.lock",
            ".osinfo-ids",
            ".virt-install",
            "client_ed25519",
            "client_ed25519.pub"
        ]
        .contains(&e.as_str())),
        "{entries:?}"
    );
}

#[test]
fn a_failure_half_way_leaves_the_old_node_in_place() {
    let site = Site::new();
    let first = site.prepare("3:debian-12");
    // known_hosts cannot be written once the new directory is complete and swapped in.
    let kh = node::files::known_hosts(&site.state());
    std::fs::remove_file(&kh).unwrap();
    std::fs::create_dir(&kh).unwrap();
    let e = site.try_prepare("3:debian-12").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("vnode03: cannot record the host key"),
        "{e}"
    );
    let m = node::metadata::NodeMetadata::load(&first.dir).unwrap();
    assert_eq!(m.instance_id, first.instance_id, "the old node is back");
    // A new node that fails the same way leaves nothing.
    assert!(site.try_prepare("4:debian-12").is_err());
    assert!(!site.state().join("vnode04").exists());
    let entries = site.state_entries();
    assert!(
        !entries.iter().any(|e| e.starts_with(".vnode")),
        "{entries:?}"
    );
}

#[test]
fn remove_takes_the_directory_and_the_known_hosts_lines() {
    let site = Site::new();
    site.prepare("3:debian-12");
    let four = site.prepare("4:debian-12");
    node::remove(&site.state(), "vnode03").unwrap();
    assert!(!site.state().join("vnode03").exists());
    let kh = std::fs::read_to_string(site.state().join("known_hosts")).unwrap();
    assert_eq!(kh, format!("vnode04 {}\n", four.host_public_key));
    let e = node::remove(&site.state(), "vnode03").unwrap_err();
    assert!(matches!(e, NodeError::NotFound { .. }), "{e}");
    assert!(node::remove(&site.state(), "../etc").is_err());
    assert!(node::remove(&site.state(), ".osinfo-ids").is_err());
}

#[test]
fn without_configured_keys_the_invoking_users_keys_are_used_or_a_clear_error() {
    let mut site = Site::new();
    site.config.ssh_keys.clear();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let has_keys = home.is_some_and(|h| {
        std::fs::read_dir(h.join(".ssh")).is_ok_and(|d| {
            d.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("id_") && n.ends_with(".pub")
            })
        })
    });
    match site.try_prepare("3:debian-12") {
        Ok(_) => assert!(has_keys || std::env::var_os("SUDO_USER").is_some()),
        Err(e) => {
            assert!(matches!(e, NodeError::Keys(_)), "{e}");
            assert!(e.to_string().contains("ssh-keygen -t ed25519"), "{e}");
            assert_eq!(e.exit_code(), 2);
            assert!(!site.state().join("vnode03").exists());
        }
    }
}

#[test]
fn nodes_prepared_in_parallel_threads_all_get_their_key_recorded() {
    let site = Site::new();
    let all: Vec<NodeArtifacts> = std::thread::scope(|s| {
        let handles: Vec<_> = (10..18)
            .map(|n| {
                let site = &site;
                s.spawn(move || site.prepare(&format!("{n}:debian-12")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let kh = std::fs::read_to_string(site.state().join("known_hosts")).unwrap();
    assert_eq!(kh.lines().count(), 8, "{kh}");
    for a in &all {
        assert!(
            kh.contains(&format!("{} {}", a.name, a.host_public_key)),
            "{kh}"
        );
        assert!(a.overlay.is_file() && a.seed.is_file());
    }
}
