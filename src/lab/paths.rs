//! Where a lab keeps its files. Everything a lab writes is below its directory, so `lab down`
//! removes it all with the directory (the image cache lives elsewhere and is kept).
//!
//! ```text
//! /var/lib/vnode/lab/NAME.lock     serializes up/down/status of one lab
//! /var/lib/vnode/lab/NAME/
//!   state.json                     what `up` started (see state.rs)
//!   holder.log                     the namespace holder's output
//!   libvirt/{etc,lib,run,log,cache}  bind-mounted over libvirt's directories inside the lab
//!   public/                        the site DHCP/DNS: dnsmasq.conf, plan.conf, pid, leases, log
//!   xdg-cache/                     XDG_CACHE_HOME of everything run in the lab (virt-install's log)
//!   kvm                            /dev/kvm as the lab sees it (root:kvm 0660)
//!   controller-ssh/                a lab with hosts: the site's /root/.ssh (id_ed25519, known_hosts)
//!   hosts/h1/                      a lab with hosts: host h1, laid out like the lab's own machine
//!     holder.log libvirt/ xdg-cache/ kvm   (as above, for h1's namespaces and libvirtd)
//!     sshd_config sshd.log sshd.pid ssh_host_ed25519_key{,.pub} authorized_keys
//! ```
//!
//! The lab's own files for its namespaces (holder.log, libvirt/, xdg-cache/, kvm) and each
//! host's are the same layout below another root: a [`MachineDir`].

use std::path::{Path, PathBuf};

use super::LabName;

pub const LAB_ROOT: &str = "/var/lib/vnode/lab";

/// libvirt's probe of each qemu binary (~6 s each under TCG on a small host), kept across labs
/// like the image cache: libvirt re-probes by itself when qemu or libvirt have changed.
pub const QEMU_CAPS_CACHE: &str = "/var/cache/vnode/lab/qemu-capabilities";

/// Where libvirt keeps that probe, below the lab's copy of /var/cache/libvirt.
pub const QEMU_CAPS_SUB: &str = "qemu/capabilities";

/// libvirt's directories and the lab's copy that replaces each inside the lab's mount namespace.
/// The holder bind-mounts them; `seed` is copied into a fresh lab (config, default network).
pub struct LibvirtDir {
    pub target: &'static str,
    pub sub: &'static str,
    pub seed: bool,
}

pub const LIBVIRT_DIRS: [LibvirtDir; 5] = [
    LibvirtDir {
        target: "/etc/libvirt",
        sub: "etc",
        seed: true,
    },
    LibvirtDir {
        target: "/var/lib/libvirt",
        sub: "lib",
        seed: true,
    },
    LibvirtDir {
        target: "/run/libvirt",
        sub: "run",
        seed: false,
    },
    LibvirtDir {
        target: "/var/log/libvirt",
        sub: "log",
        seed: false,
    },
    LibvirtDir {
        target: "/var/cache/libvirt",
        sub: "cache",
        seed: false,
    },
];

#[derive(Clone, Debug)]
pub struct LabDir {
    root: PathBuf,
}

impl LabDir {
    pub fn of(name: &LabName) -> LabDir {
        LabDir {
            root: Path::new(LAB_ROOT).join(name.as_str()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock(&self) -> PathBuf {
        self.root.with_extension("lock")
    }

    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn public(&self, file: &str) -> PathBuf {
        self.root.join("public").join(file)
    }

    /// The site's machine: its namespaces' files are the lab directory's own.
    pub fn site(&self) -> MachineDir {
        MachineDir {
            root: self.root.clone(),
        }
    }

    /// Host `host` of a lab with hosts.
    pub fn host(&self, host: &str) -> MachineDir {
        MachineDir {
            root: self.root.join("hosts").join(host),
        }
    }

    /// The site's /root/.ssh in a lab with hosts: the controller's key and the hosts' keys.
    pub fn controller_ssh(&self) -> PathBuf {
        self.root.join("controller-ssh")
    }
}

/// The files of one machine of a lab (the site or a host): its holder's log, its copies of
/// libvirt's directories, its XDG_CACHE_HOME, its /dev/kvm and, for a host, its sshd's files.
#[derive(Clone, Debug)]
pub struct MachineDir {
    root: PathBuf,
}

impl MachineDir {
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn holder_log(&self) -> PathBuf {
        self.root.join("holder.log")
    }

    /// The machine's copy of one of libvirt's directories (`sub` of [`LIBVIRT_DIRS`]).
    pub fn libvirt(&self, sub: &str) -> PathBuf {
        self.root.join("libvirt").join(sub)
    }

    /// A file in libvirt's /run/libvirt as seen from outside the lab.
    pub fn libvirt_run(&self, file: &str) -> PathBuf {
        self.libvirt("run").join(file)
    }

    /// A file in libvirt's /var/log/libvirt as seen from outside the lab.
    pub fn libvirt_log(&self, file: &str) -> PathBuf {
        self.libvirt("log").join(file)
    }

    /// The machine's /dev/kvm (see machine.rs).
    pub fn kvm(&self) -> PathBuf {
        self.root.join("kvm")
    }

    pub fn xdg_cache(&self) -> PathBuf {
        self.root.join("xdg-cache")
    }

    /// A file of the host's sshd (config, log, pidfile, host key, authorized_keys).
    pub fn sshd(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
}

/// Names of the labs below `root` that `up` has written state for (up, or down after a crash).
pub fn existing_labs(root: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| LabName::new(n).is_ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_labs_are_the_directories_with_state() {
        let root = tempfile::tempdir().unwrap();
        for (name, state) in [("vnode", true), ("other", true), ("half", false)] {
            std::fs::create_dir(root.path().join(name)).unwrap();
            if state {
                std::fs::write(root.path().join(name).join("state.json"), "{}").unwrap();
            }
        }
        std::fs::write(root.path().join("vnode.lock"), "").unwrap();
        assert_eq!(existing_labs(root.path()), ["other", "vnode"]);
        assert!(existing_labs(&root.path().join("missing")).is_empty());
    }

    /// vnode's default storage pool directory on a `[[hosts]]` host is below one of libvirt's
    /// directories, which every machine of a lab has its own copy of: each lab host has its own.
    #[test]
    fn the_default_pool_path_is_each_machines_own() {
        let pool = Path::new(crate::config::DEFAULT_POOL_PATH);
        let d = LIBVIRT_DIRS
            .iter()
            .find(|d| pool.starts_with(d.target))
            .expect("below a directory the lab replaces");
        let dir = LabDir::of(&LabName::new("t").unwrap());
        let (h1, h2) = (dir.host("h1").libvirt(d.sub), dir.host("h2").libvirt(d.sub));
        assert_ne!(h1, h2);
        assert_eq!(h1, Path::new("/var/lib/vnode/lab/t/hosts/h1/libvirt/lib"));
    }
}
