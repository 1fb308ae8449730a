//! What makes a state "the same fresh node": every input that shapes the node's first-ready
//! moment, and their digest. A state is restored only when its inputs equal the node's now; when
//! they differ, the fields that changed are named.

use serde::{Deserialize, Serialize};

/// The key's format: a state of another format never matches.
pub const FORMAT: u32 = 1;

/// Everything a node's first-ready state depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub format: u32,
    pub name: String,
    pub image: String,
    pub base_digest: String,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub disk_gib: u32,
    /// sha256 over the seed's documents (user-data, network-config, meta-data: host key, users,
    /// keys, MACs, instance id).
    pub documents: String,
    pub osinfo: String,
    /// `kvm` or `qemu`.
    pub virt_type: String,
    /// The host that runs the node (`local`, or the `[[hosts]]` entry).
    pub host: String,
    /// The user's virt-install arguments.
    pub virt_install_args: Vec<String>,
    /// `virsh version`'s library and hypervisor versions on that host.
    pub libvirt: String,
    pub qemu: String,
}

impl KeyInputs {
    /// The key: sha256 of the inputs' JSON.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("plain data serializes");
        hex::encode(sha2::Sha256::digest(&json))
    }

    /// The names of the inputs that differ between `self` (the state's) and `now`.
    pub fn changed(&self, now: &KeyInputs) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut differ = |name: &'static str, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        differ("state format", self.format != now.format);
        differ("name", self.name != now.name);
        differ("image", self.image != now.image);
        differ("image digest", self.base_digest != now.base_digest);
        differ("memory", self.memory_mib != now.memory_mib);
        differ("vcpus", self.vcpus != now.vcpus);
        differ("disk size", self.disk_gib != now.disk_gib);
        differ("seed documents", self.documents != now.documents);
        differ("osinfo", self.osinfo != now.osinfo);
        differ("virt type", self.virt_type != now.virt_type);
        differ("host", self.host != now.host);
        differ(
            "virt-install arguments",
            self.virt_install_args != now.virt_install_args,
        );
        differ("libvirt version", self.libvirt != now.libvirt);
        differ("QEMU version", self.qemu != now.qemu);
        changed
    }
}

/// libvirt's and QEMU's versions from `virsh version`: ("9.0.0", "7.2.0"); unknown parts empty.
pub fn parse_versions(text: &str) -> (String, String) {
    let after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().last())
            .map(String::from)
            .unwrap_or_default()
    };
    (after("Using library:"), after("Running hypervisor:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            format: FORMAT,
            name: "vnode03".into(),
            image: "debian-12".into(),
            base_digest: "sha256:ab".into(),
            memory_mib: 512,
            vcpus: 1,
            disk_gib: 10,
            documents: "cd".into(),
            osinfo: "debian12".into(),
            virt_type: "qemu".into(),
            host: "local".into(),
            virt_install_args: vec![],
            libvirt: "9.0.0".into(),
            qemu: "7.2.0".into(),
        }
    }

    #[test]
    fn a_changed_input_changes_the_key_and_is_named() {
        let a = inputs();
        let mut b = inputs();
        assert_eq!(a.digest(), b.digest());
        assert!(a.changed(&b).is_empty());
        b.memory_mib = 1024;
        b.qemu = "8.0.0".into();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.changed(&b), ["memory", "QEMU version"]);
    }

    #[test]
    fn versions_are_read_from_virsh_version() {
        let text = "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n\
                    Using API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.0\n";
        assert_eq!(parse_versions(text), ("9.0.0".into(), "7.2.0".into()));
        assert_eq!(
            parse_versions("\u{0}garbage"),
            (String::new(), String::new())
        );
    }
}
