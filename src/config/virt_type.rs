//! `virt_type`: which hypervisor acceleration guests run under.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text::names;

/// Which hypervisor acceleration guests run under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    /// Probe the host: use KVM only when a guest can really run under it, else TCG.
    #[default]
    Auto,
    /// Hardware virtualization.
    Kvm,
    /// Software emulation (TCG): slow, but works everywhere.
    Qemu,
}

impl fmt::Display for VirtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VirtType::Auto => "auto",
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        })
    }
}

/// A `virt_type` that is none of the three.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a virt_type: use auto, kvm or qemu", names::quoted(.value))]
pub struct UnknownVirtType {
    pub value: String,
}

impl VirtType {
    /// The virt type as the config writes it.
    pub fn parse(value: &str) -> Result<VirtType, UnknownVirtType> {
        [VirtType::Auto, VirtType::Kvm, VirtType::Qemu]
            .into_iter()
            .find(|v| v.to_string() == value)
            .ok_or_else(|| UnknownVirtType {
                value: value.into(),
            })
    }
}
