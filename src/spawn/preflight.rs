//! Checks of the host for the whole command before anything is created: libvirt reachable,
//! networks active, bridges present. Each failure is one line that says what to do. (That every
//! image is cached was settled when the nodes were planned.)

use std::collections::BTreeSet;
use std::path::Path;

use crate::libvirt::virsh::Virsh;
use crate::planned::PlannedNode;

/// libvirt answers, every pool network is active, every pool bridge exists. All problems at once.
pub async fn host(virsh: &Virsh, nodes: &[PlannedNode]) -> Result<(), Vec<String>> {
    if let Err(e) = virsh.ping().await {
        return Err(vec![e.to_string()]);
    }
    let mut problems = Vec::new();
    let networks: BTreeSet<&str> = nodes.iter().map(|n| n.id.network.as_str()).collect();
    for net in networks {
        match virsh.network_active(net).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => problems.push(format!(
                "libvirt network '{net}' is not active; start it with `virsh net-start {net}`"
            )),
            Ok(None) => problems.push(format!(
                "libvirt network '{net}' does not exist; define it, or set the pool's `network`"
            )),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let bridges: BTreeSet<&str> = nodes.iter().map(|n| n.id.bridge.as_str()).collect();
    for br in bridges {
        if !Path::new("/sys/class/net").join(br).join("bridge").exists() {
            problems.push(format!(
                "bridge '{br}' does not exist; create it with `vnode host bridge create --uplink IFACE --name {br}`, \
                 or set the pool's `bridge`"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
