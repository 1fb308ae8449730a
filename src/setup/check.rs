//! `vnode host check`: one verdict per concern (ok / warn / fail), each with what to do.
//! Verdicts are computed from [`HostFacts`] alone, so every branch is unit-tested.

use serde::Serialize;

use super::host_facts::{BridgeFacts, HostFacts, NetworkFacts, PathFacts};
use crate::config::VirtType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub check: String,
    pub level: Level,
    pub message: String,
    /// What to do about it (empty for ok).
    pub fix: String,
}

fn v(check: &str, level: Level, message: impl Into<String>, fix: impl Into<String>) -> Verdict {
    Verdict {
        check: check.into(),
        level,
        message: message.into(),
        fix: fix.into(),
    }
}

const GIB: u64 = 1 << 30;

/// Every check's verdict on the host's facts, in the order `vnode host check` shows them.
pub fn verdicts(f: &HostFacts) -> Vec<Verdict> {
    let mut out = vec![libvirt(f), virt_install(f), qemu_img(f)];
    out.extend(f.networks.iter().map(|n| network(f, n)));
    out.extend(f.bridges.iter().map(bridge));
    out.push(kvm(f));
    out.extend(
        [("image cache", &f.cache), ("node directory", &f.state)]
            .map(|(name, p)| directory(f, name, p)),
    );
    out.extend(disk_space(f));
    out.push(bridge_netfilter(f));
    out.push(ssh_key(f));
    out
}

/// Does the configured libvirt answer?
fn libvirt(f: &HostFacts) -> Verdict {
    use Level::*;
    match &f.libvirt {
        Result::Ok(version) => v(
            "libvirt",
            Ok,
            format!("{} answers: {version}", f.libvirt_uri),
            "",
        ),
        Err(e) => v(
            "libvirt",
            Fail,
            format!("{} does not answer: {e}", f.libvirt_uri),
            "start libvirtd (e.g. `systemctl start libvirtd`), or set libvirt_uri in the config",
        ),
    }
}

/// Is virt-install there?
fn virt_install(f: &HostFacts) -> Verdict {
    use Level::*;
    match &f.virt_install {
        Some(version) => v("virt-install", Ok, format!("virt-install {version}"), ""),
        None => v(
            "virt-install",
            Fail,
            "virt-install is missing",
            "apt-get install virtinst",
        ),
    }
}

/// Is qemu-img there (only for inspecting disks by hand)?
fn qemu_img(f: &HostFacts) -> Verdict {
    use Level::*;
    match &f.qemu_img {
        Some(version) => v("qemu-img", Ok, version.clone(), ""),
        None => v(
            "qemu-img",
            Warn,
            "qemu-img is missing (only needed to inspect disks by hand)",
            "apt-get install qemu-utils",
        ),
    }
}

/// Is a pool's libvirt network defined and active?
fn network(f: &HostFacts, n: &NetworkFacts) -> Verdict {
    use Level::*;

    let check = format!("network {}", n.name);
    match (f.libvirt.is_ok(), n.active) {
        (false, _) => v(
            &check,
            Fail,
            "cannot be checked: libvirt does not answer",
            "fix libvirt first",
        ),
        (true, Some(true)) => v(&check, Ok, "defined and active", ""),
        (true, Some(false)) => v(
            &check,
            Fail,
            "defined but not active",
            format!("virsh net-start {0} && virsh net-autostart {0}", n.name),
        ),
        (true, None) => v(
            &check,
            Fail,
            "not defined",
            "define it (Debian: package libvirt-daemon-config-network), or set the pool's `network`",
        ),
    }
}

/// Is a pool's bridge there, up and with an uplink?
fn bridge(b: &BridgeFacts) -> Verdict {
    use Level::*;

    let check = format!("bridge {}", b.name);
    if !b.exists {
        v(
            &check,
            Fail,
            "does not exist",
            format!("vnode host bridge create --uplink IFACE --name {}", b.name),
        )
    } else if !b.up {
        v(
            &check,
            Fail,
            "exists but is down",
            format!("ip link set {} up", b.name),
        )
    } else if b.uplinks.is_empty() {
        v(
            &check,
            Warn,
            "is up but has no uplink: guests' public NICs reach only each other and the host",
            format!("ip link set IFACE master {}", b.name),
        )
    } else {
        v(
            &check,
            Ok,
            format!("up, uplink {}", b.uplinks.join(", ")),
            "",
        )
    }
}

/// Can guests run under KVM, and does virt_type agree?
fn kvm(f: &HostFacts) -> Verdict {
    use Level::*;
    match (&f.kvm, f.virt_type) {
        (Result::Ok(()), VirtType::Qemu) => v(
            "kvm",
            Warn,
            "KVM works, but virt_type = \"qemu\" makes guests slow",
            "set virt_type = \"auto\" or \"kvm\"",
        ),
        (Result::Ok(()), _) => v("kvm", Ok, "a probe guest ran under KVM", ""),
        (Err(why), VirtType::Kvm) => v(
            "kvm",
            Fail,
            format!("virt_type = \"kvm\", but {why}"),
            "set virt_type = \"qemu\" (or \"auto\")",
        ),
        (Err(why), VirtType::Auto) => v(
            "kvm",
            Warn,
            format!("{why}: auto uses TCG (slow)"),
            "set virt_type = \"qemu\" to say so explicitly",
        ),
        (Err(why), VirtType::Qemu) => v("kvm", Ok, format!("virt_type = \"qemu\" ({why})"), ""),
    }
}

/// Can qemu read vnode's directory (the image cache or the node directory)?
fn directory(f: &HostFacts, name: &str, p: &PathFacts) -> Verdict {
    use Level::*;
    match (p.exists, p.qemu_can_read, &f.qemu_user) {
        (false, _, _) => v(
            name,
            Ok,
            format!("{} will be created on first use", p.path.display()),
            "",
        ),
        (true, Some(false), Some(user)) => v(
            name,
            Fail,
            format!(
                "{} is not readable by the qemu user {user}",
                p.path.display()
            ),
            format!(
                "chmod o+rx on {} and each directory above it",
                p.path.display()
            ),
        ),
        (true, _, _) => v(
            name,
            Ok,
            format!("{} readable by qemu", p.path.display()),
            "",
        ),
    }
}

/// Is there room for images where the cache lives (when that is known)?
fn disk_space(f: &HostFacts) -> Option<Verdict> {
    use Level::*;
    let free = f.cache.free_bytes?;
    Some(if free < 5 * GIB {
        v(
            "disk space",
            Warn,
            format!("{:.1} GiB free for images", free as f64 / GIB as f64),
            "free space where cache_dir lives (a cloud image is ~0.5-1 GiB)",
        )
    } else {
        v(
            "disk space",
            Ok,
            format!("{:.1} GiB free for images", free as f64 / GIB as f64),
            "",
        )
    })
}

/// Do bridged frames pass the host's FORWARD chain?
fn bridge_netfilter(f: &HostFacts) -> Verdict {
    use Level::*;
    match f.bridge_nf_call_iptables {
        None => v(
            "bridge netfilter",
            Ok,
            "br_netfilter is not loaded: bridged frames bypass iptables",
            "",
        ),
        Some(false) => v(
            "bridge netfilter",
            Ok,
            "bridge-nf-call-iptables = 0: bridged frames bypass iptables",
            "",
        ),
        Some(true) => v(
            "bridge netfilter",
            Warn,
            "bridge-nf-call-iptables = 1: guests' bridged traffic passes the host's FORWARD chain and may be dropped",
            "allow it narrowly: iptables -I FORWARD -m physdev --physdev-is-bridged -j ACCEPT (do not disable bridge netfilter globally)",
        ),
    }
}

/// Is there a public key to authorize for root?
fn ssh_key(f: &HostFacts) -> Verdict {
    use Level::*;
    match &f.ssh_keys {
        Result::Ok(n) => v(
            "ssh key",
            Ok,
            format!("{n} public key(s) to authorize for root"),
            "",
        ),
        Err(e) => v(
            "ssh key",
            Fail,
            e.to_string(),
            "ssh-keygen -t ed25519, or set ssh_keys in the config",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> HostFacts {
        HostFacts {
            libvirt_uri: "qemu:///system".into(),
            libvirt: Ok("libvirt 9.0.0".into()),
            virt_install: Some("4.1.0".into()),
            qemu_img: Some("qemu-img 7.2".into()),
            networks: vec![NetworkFacts {
                name: "default".into(),
                active: Some(true),
            }],
            bridges: vec![BridgeFacts {
                name: "br0".into(),
                exists: true,
                up: true,
                uplinks: vec!["eth0".into()],
            }],
            virt_type: VirtType::Auto,
            kvm: Ok(()),
            qemu_user: Some("libvirt-qemu".into()),
            cache: PathFacts {
                path: "/var/lib/vnode/images".into(),
                exists: true,
                qemu_can_read: Some(true),
                free_bytes: Some(100 * GIB),
            },
            state: PathFacts {
                path: "/var/lib/vnode/nodes".into(),
                exists: false,
                qemu_can_read: None,
                free_bytes: None,
            },
            bridge_nf_call_iptables: None,
            ssh_keys: Ok(1),
        }
    }

    fn level(f: &HostFacts, check: &str) -> Level {
        verdicts(f)
            .into_iter()
            .find(|v| v.check == check)
            .unwrap_or_else(|| panic!("no check {check}"))
            .level
    }

    #[test]
    fn a_healthy_host_is_all_ok() {
        let all = verdicts(&healthy());
        assert!(all.iter().all(|v| v.level == Level::Ok), "{all:#?}");
    }

    #[test]
    fn broken_setups_get_the_right_verdicts() {
        let mut f = healthy();
        f.libvirt = Err(crate::libvirt::LibvirtError::Tool {
            tool: "virsh".into(),
            message: "Failed to connect socket".into(),
        });
        assert_eq!(level(&f, "libvirt"), Level::Fail);
        assert_eq!(level(&f, "network default"), Level::Fail);
        let mut f = healthy();
        f.bridges[0].exists = false;
        let v = verdicts(&f)
            .into_iter()
            .find(|v| v.check == "bridge br0")
            .unwrap();
        assert_eq!(v.level, Level::Fail);
        assert!(v.fix.contains("vnode host bridge create"), "{v:?}");
        let mut f = healthy();
        f.bridges[0].uplinks.clear();
        assert_eq!(level(&f, "bridge br0"), Level::Warn);
        let mut f = healthy();
        f.cache.qemu_can_read = Some(false);
        assert_eq!(level(&f, "image cache"), Level::Fail);
        let mut f = healthy();
        f.kvm = Err(crate::hosts::kvm_probe::KvmError::Pvm);
        assert_eq!(level(&f, "kvm"), Level::Warn);
        f.virt_type = VirtType::Kvm;
        assert_eq!(level(&f, "kvm"), Level::Fail);
        f.virt_type = VirtType::Qemu;
        assert_eq!(level(&f, "kvm"), Level::Ok);
        let mut f = healthy();
        f.bridge_nf_call_iptables = Some(true);
        assert_eq!(level(&f, "bridge netfilter"), Level::Warn);
        f.ssh_keys = Err(crate::node::authorized_keys::KeysError::NoDefault(
            "~/.ssh".into(),
        ));
        assert_eq!(level(&f, "ssh key"), Level::Fail);
        f.cache.free_bytes = Some(GIB);
        assert_eq!(level(&f, "disk space"), Level::Warn);
    }

    #[test]
    fn readable_by_follows_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("cache");
        std::fs::create_dir(&inner).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = 65534;
        // /tmp itself is world-traversable, so the verdict depends on our directories only.
        assert!(crate::setup::host_facts::readable_by(
            &inner,
            nobody,
            &[nobody]
        ));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!crate::setup::host_facts::readable_by(
            &inner,
            nobody,
            &[nobody]
        ));
        assert!(crate::setup::host_facts::readable_by(&inner, 0, &[0]));
    }
}
