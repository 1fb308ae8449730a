//! `vnode spawn --prepare-only` through the real binary: a temporary config, state directory and
//! image cache (with a base image made by qemu-img), and a literal ssh key.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cli::{Vnode, stderr, stdout};

/// A site with the base image `debian-12` in its cache; `vnode()` runs `vnode spawn` against it.
struct Prep {
    dir: tempfile::TempDir,
}

impl Prep {
    fn new() -> Prep {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let base = dir.path().join("base.qcow2");
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1G")
            .output()
            .expect("qemu-img is needed for this test (Debian package qemu-utils)");
        assert!(out.status.success());
        let key = vnode::node::host_key::HostKey::generate("me@host").unwrap();
        let config = format!(
            "state_dir = \"{}\"\ncache_dir = \"{}\"\nssh_keys = [\"{} me@host\"]\n\
             [resources]\nmemory_mib = 512\nvcpus = 1\ndisk_gib = 4\n",
            dir.path().join("state").display(),
            cache.display(),
            key.public
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        // The base image enters the cache as a user would bring it: `vnode images import`.
        let prep = Prep { dir };
        prep.cli()
            .args(["images", "import"])
            .args([&base])
            .args(["--name", "debian-12"])
            .ok();
        prep
    }

    fn cli(&self) -> Vnode {
        Vnode::at(self.dir.path()).config_file(self.dir.path().join("config.toml"))
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `vnode spawn ARGS...`.
    fn vnode(&self, args: &[&str]) -> Output {
        self.cli().args(["spawn"]).args(args).output()
    }
}

#[test]
fn prepare_only_lists_the_artifacts_and_the_virt_install_argv_as_json() {
    let p = Prep::new();
    let out = p.vnode(&[
        "--json",
        "--prepare-only",
        "--virt-type",
        "qemu",
        "3:debian-12",
        "vnode4:debian-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = common::json::stdout(&out);
    assert_eq!(v["virt_type"], "qemu");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for (node, name) in nodes.iter().zip(["vnode03", "vnode04"]) {
        assert_eq!(node["name"], name);
        let dir = p.state().join(name);
        assert_eq!(node["dir"], dir.to_str().unwrap());
        for key in ["overlay", "seed", "metadata"] {
            assert!(
                Path::new(node[key].as_str().unwrap()).is_file(),
                "{key}: {node}"
            );
        }
        let argv: Vec<&str> = node["virt_install"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(argv[0], "virt-install");
        assert!(argv.contains(&"--import") && argv.contains(&"./features/tcg/tb-cache=128"));
        let i = argv.iter().position(|a| *a == "--osinfo").unwrap();
        assert_eq!(argv[i + 1], node["osinfo"]["id"]);
        let i = argv.iter().position(|a| *a == "--memory").unwrap();
        assert_eq!(argv[i + 1], "512");
    }
    let check = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(nodes[0]["overlay"].as_str().unwrap())
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(info["virtual-size"], 4u64 << 30);
    let kh = std::fs::read_to_string(p.state().join("known_hosts")).unwrap();
    assert_eq!(kh.lines().count(), 2, "{kh}");
    // A fallback osinfo id is announced, once.
    if nodes[0]["osinfo"]["id"] != "debian12" {
        assert_eq!(
            stderr(&out).matches("does not know 'debian12'").count(),
            1,
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn prepare_only_prints_paths_and_a_copyable_command() {
    let p = Prep::new();
    let out = p.vnode(&["--prepare-only", "--virt-type", "kvm", "3:debian-12"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let dir = p.state().join("vnode03");
    assert!(
        text.contains(&format!("disk      {}", dir.join("disk.qcow2").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("seed      {}", dir.join("seed.iso").display())),
        "{text}"
    );
    assert!(
        text.contains("  virt-install --connect qemu:///system --name vnode03 "),
        "{text}"
    );
    assert!(text.contains("--virt-type kvm"), "{text}");
    assert!(!text.contains("tb-cache"), "{text}");
    assert!(
        text.contains("'description=vnode:v1 pool=vnode number=3 image=debian-12'"),
        "{text}"
    );
    assert!(text.contains("no VM was defined"), "{text}");
}

#[test]
fn an_uncached_image_is_an_error_and_nothing_is_created() {
    let p = Prep::new();
    let out = p.vnode(&["--prepare-only", "--virt-type", "qemu", "3:debian-13"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("vnode images pull debian-13"),
        "{}",
        stderr(&out)
    );
    assert!(!p.state().join("vnode03").exists());
}
