//! Resolving `virt_type = "auto"`: run guests under KVM only when they really can, else TCG.
//!
//! Three checks, cheapest first:
//! 1. `/dev/kvm` must open read-write.
//! 2. A PVM host (the `kvm_pvm` module, as on some nested cloud machines) runs only PVM-aware guest
//!    kernels; stock cloud images hang under it, so TCG it is.
//! 3. A 512-byte boot sector that writes to qemu's isa-debug-exit port must finish under KVM within
//!    a few seconds (a broken KVM hangs or fails here).
//!
//! Check 3 proves a guest executes under KVM, not that every guest kernel will; set
//! `virt_type = "kvm"` or `"qemu"` explicitly when the probe is wrong for your host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::VirtType;

/// The decision and why it was taken.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub virt_type: VirtType,
    pub reason: String,
}

impl Resolved {
    /// The decision as a domain's acceleration (`resolve` never leaves `auto`).
    pub fn accel(&self) -> crate::libvirt::Accel {
        crate::libvirt::Accel::from_virt_type(self.virt_type).expect("resolve never returns auto")
    }
}

/// Resolves `requested`; `Kvm` and `Qemu` are taken as given.
pub fn resolve(requested: VirtType) -> Resolved {
    match requested {
        VirtType::Kvm | VirtType::Qemu => Resolved {
            virt_type: requested,
            reason: "set in config or by --virt-type".into(),
        },
        VirtType::Auto => match kvm_usable() {
            Ok(()) => Resolved {
                virt_type: VirtType::Kvm,
                reason: "a probe guest ran under KVM".into(),
            },
            Err(why) => Resolved {
                virt_type: VirtType::Qemu,
                reason: format!("{why}; guests run under TCG (slow)"),
            },
        },
    }
}

/// Resolves `requested` for a `[[hosts]]` host, whose KVM vnode cannot probe from here: with
/// `auto`, KVM when the host's libvirt offers it (`virt_types` from its capabilities), else TCG.
pub fn resolve_remote(requested: VirtType, host: &str, virt_types: &[String]) -> Resolved {
    match requested {
        VirtType::Kvm | VirtType::Qemu => resolve(requested),
        VirtType::Auto if virt_types.iter().any(|t| t == "kvm") => Resolved {
            virt_type: VirtType::Kvm,
            reason: format!(
                "libvirt on {host} offers kvm (set virt_type = \"qemu\" if its guests hang under it)"
            ),
        },
        VirtType::Auto => Resolved {
            virt_type: VirtType::Qemu,
            reason: format!("libvirt on {host} offers no kvm; guests run under TCG (slow)"),
        },
    }
}

/// Why KVM cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error("/dev/kvm is not usable ({0})")]
    DevKvm(#[source] std::io::Error),
    #[error("KVM here is PVM (module kvm_pvm), which runs only PVM-aware guest kernels")]
    Pvm,
    /// The probe's disk or its wait.
    #[error("{0}")]
    Probe(#[source] std::io::Error),
    #[error("cannot run qemu-system-x86_64 for the KVM probe ({0})")]
    NoQemu(#[source] std::io::Error),
    #[error("the KVM probe guest failed (qemu exit {0:?})")]
    ProbeFailed(Option<i32>),
    #[error("the KVM probe guest hung for 10 s")]
    ProbeHung,
}

/// Why KVM cannot be used, if it cannot.
pub fn kvm_usable() -> Result<(), KvmError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(KvmError::DevKvm)?;
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Err(KvmError::Pvm);
    }
    probe_guest()
}

/// The probe guest: `mov al,1; out 0xf4,al; hlt; jmp $` as a boot sector. isa-debug-exit makes
/// qemu exit with status (1 << 1) | 1 = 3 when the guest ran.
const BOOT_SECTOR: [u8; 7] = [0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFE];

fn probe_guest() -> Result<(), KvmError> {
    let dir = tempfile::Builder::new()
        .prefix("vnode-kvm-probe")
        .tempdir()
        .map_err(KvmError::Probe)?;
    let disk = dir.path().join("probe.img");
    let mut image = vec![0u8; 1 << 20];
    image[..BOOT_SECTOR.len()].copy_from_slice(&BOOT_SECTOR);
    image[510] = 0x55;
    image[511] = 0xAA;
    std::fs::write(&disk, image).map_err(KvmError::Probe)?;
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "kvm",
            "-machine",
            "pc",
            "-m",
            "16",
            "-nodefaults",
            "-display",
            "none",
        ])
        .args(["-serial", "none", "-monitor", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=ide", disk.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(KvmError::NoQemu)?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(KvmError::Probe)? {
            return match status.code() {
                Some(3) => Ok(()),
                other => Err(KvmError::ProbeFailed(other)),
            };
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(KvmError::ProbeHung);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_types_are_kept() {
        assert_eq!(resolve(VirtType::Qemu).virt_type, VirtType::Qemu);
        assert_eq!(resolve(VirtType::Kvm).virt_type, VirtType::Kvm);
    }

    #[test]
    fn auto_never_answers_auto() {
        let r = resolve(VirtType::Auto);
        assert_ne!(r.virt_type, VirtType::Auto);
        // On a PVM host (this project's CI) auto must choose TCG.
        if Path::new("/sys/module/kvm_pvm").exists() {
            assert_eq!(r.virt_type, VirtType::Qemu, "{}", r.reason);
            assert!(r.reason.contains("PVM"), "{}", r.reason);
        }
    }
}
