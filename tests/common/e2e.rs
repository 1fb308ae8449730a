//! What the end-to-end tests with real VMs share: the Debian test image (built once per machine by
//! tests/image/build.sh and cached outside the clone), a site directory the qemu user can read, and
//! a vnode config for the lab.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::gate::{Needs, require_root_or_skip};
use super::lab::Lab;

/// What a test with real VMs starts from: the lab, configured for a site of its own, and the test
/// image. The lab goes down before the site is removed (field order).
pub struct VmLab {
    pub lab: Lab,
    pub site: Site,
    pub image: PathBuf,
}

impl VmLab {
    /// Passes the gate (`None` when VNODE_SKIP_VM_TESTS=1 skips the test), builds or finds the
    /// test image, makes the site and brings the lab up.
    pub fn up(tag: &str) -> Option<VmLab> {
        if require_root_or_skip(Needs::Vms) {
            return None;
        }
        let image = test_image();
        let site = Site::new(tag);
        let lab = Lab::with_config(tag, &site.config(""));
        Some(VmLab { lab, site, image })
    }

    /// Like [`VmLab::up`], with `hosts` hypervisor hosts in the lab (vnode runs on the site LAN
    /// with them as its `[[hosts]]`).
    pub fn up_hosts(tag: &str, hosts: u8) -> Option<VmLab> {
        if require_root_or_skip(Needs::Vms) {
            return None;
        }
        let image = test_image();
        let site = Site::new(tag);
        let lab = Lab::with_config_hosts(tag, &site.config(""), hosts);
        Some(VmLab { lab, site, image })
    }
}

/// Builds (or finds in its cache) the test image (variant `networkd`); returns its path.
pub fn test_image() -> PathBuf {
    test_image_variant("networkd")
}

/// Builds (or finds in its cache) the test image of a variant (`networkd`, `nm`, `netplan`: see
/// tests/image/build.sh); returns its path.
pub fn test_image_variant(variant: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/image/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(variant)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "building the test image failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("build.sh prints the path")
        .trim()
        .to_string();
    PathBuf::from(path)
}

/// Cache and node directories for one test, below /var/lib/vnode/test (the qemu user must be able
/// to traverse them, which /tmp's private temp dirs do not allow). Removed on drop.
pub struct Site {
    pub root: PathBuf,
    pub key: String,
}

impl Site {
    pub fn new(tag: &str) -> Site {
        let root = PathBuf::from(format!("/var/lib/vnode/test/{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in [root.clone(), root.join("images"), root.join("nodes")] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for a in root
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with("/var/lib/vnode"))
        {
            std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // A user key to authorize (vnode authorizes its own client key besides).
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
            .arg(root.join("id_ed25519"))
            .status()
            .expect("ssh-keygen (openssh-client) is installed");
        assert!(status.success());
        let key = std::fs::read_to_string(root.join("id_ed25519.pub"))
            .unwrap()
            .trim()
            .to_string();
        Site { root, key }
    }

    /// The vnode config for this site; `extra` is appended.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "virt_type = \"qemu\"\ncache_dir = \"{}\"\nstate_dir = \"{}\"\nssh_keys = [\"{}\"]\n\n[resources]\nmemory_mib = 512\nvcpus = 1\ndisk_gib = 4\n{extra}",
            self.root.join("images").display(),
            self.root.join("nodes").display(),
            self.key
        )
    }

    pub fn nodes(&self) -> PathBuf {
        self.root.join("nodes")
    }

    /// An empty qcow2 image in the site (`qemu-img create`): a disk with nothing to boot.
    pub fn blank_disk(&self, name: &str, size: &str) -> PathBuf {
        let path = self.root.join(name);
        qemu_img(
            &["create", "-q", "-f", "qcow2"],
            &[path.as_os_str(), size.as_ref()],
        );
        path
    }

    /// A qcow2 image whose boot sector halts the CPU for good (`cli; hlt; jmp`): its domain runs
    /// forever at idle without an OS, and the firmware never says the disk does not boot. For
    /// tests that need a running guest but not a booted one (a qemu to kill, a node still
    /// booting at Ctrl-C), at no CPU cost beside the real boots.
    pub fn halting_disk(&self, name: &str) -> PathBuf {
        let raw = self.root.join(format!("{name}.raw"));
        let mut disk = vec![0u8; 1 << 20];
        disk[..4].copy_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp short -3 (to hlt)
        disk[510..512].copy_from_slice(&[0x55, 0xaa]);
        std::fs::write(&raw, &disk).unwrap();
        let path = self.root.join(name);
        qemu_img(
            &["convert", "-q", "-f", "raw", "-O", "qcow2"],
            &[raw.as_os_str(), path.as_os_str()],
        );
        std::fs::remove_file(&raw).unwrap();
        path
    }
}

/// Runs `qemu-img ARGS FILES...` and asserts it succeeded.
fn qemu_img(args: &[&str], files: &[&std::ffi::OsStr]) {
    let status = Command::new("qemu-img")
        .args(args)
        .args(files)
        .status()
        .expect("qemu-img (qemu-utils) is installed");
    assert!(status.success(), "qemu-img {args:?} {files:?} failed");
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Nothing of a node left: no domain in the lab, no node directory (nor a half-made `.vnode*`
/// one) in the site, and none of libvirt's own objects that vnode or the tools it runs could have
/// made for a node: no storage pool whose directory is in the site (virt-install makes one for a
/// directory it finds a disk in), no volume whose file is there, no network beyond the lab's own
/// `default`.
pub fn assert_no_nodes(lab: &Lab, site: &Site) {
    let domains = lab.exec_ok(["virsh", "-q", "list", "--all", "--name"]);
    assert!(domains.trim().is_empty(), "domains left: {domains}");
    let left: Vec<_> = std::fs::read_dir(site.nodes())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vnode") || n.starts_with(".vnode"))
        .collect();
    assert!(left.is_empty(), "node files left: {left:?}");
    let networks = names(&lab.exec_ok(["virsh", "-q", "net-list", "--all", "--name"]));
    assert_eq!(networks, ["default"], "libvirt networks beyond the lab's");
    let mut pools = Vec::new();
    let mut volumes = Vec::new();
    for pool in names(&lab.exec_ok(["virsh", "-q", "pool-list", "--all", "--name"])) {
        let xml = lab.exec_ok(["virsh", "-q", "pool-dumpxml", &pool]);
        if pool_target(&xml).is_some_and(|t| t.starts_with(&site.root)) {
            pools.push(pool.clone());
        }
        // An inactive pool lists no volumes: the pool itself is what counts then.
        let out = lab.exec(["virsh", "-q", "vol-list", "--pool", &pool]);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(path) = line.split_whitespace().nth(1)
                && Path::new(path).starts_with(&site.root)
            {
                volumes.push(format!("{pool}: {}", line.trim()));
            }
        }
    }
    assert!(
        pools.is_empty(),
        "libvirt storage pools left for the site's directories: {pools:?}"
    );
    assert!(
        volumes.is_empty(),
        "libvirt volumes left in the site: {volumes:?}"
    );
}

/// `--name` listings: one name a line.
fn names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A pool's directory from `virsh pool-dumpxml`: the `<path>` inside `<target>`.
fn pool_target(xml: &str) -> Option<PathBuf> {
    let target = &xml[xml.find("<target>")?..];
    let path = &target[target.find("<path>")? + "<path>".len()..];
    Some(PathBuf::from(path[..path.find("</path>")?].trim()))
}
