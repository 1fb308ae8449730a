//! Checks of a host for the whole command before anything is created: libvirt reachable,
//! networks active, bridges present; on a `[[hosts]]` host also its vnode storage pool and its
//! sshd (that guests are reached through). Each failure is one line that says what to do. (That
//! every image is cached was settled when the nodes were planned.)

use std::collections::BTreeSet;
use std::path::Path;

use super::WaitOn;
use crate::hosts::hypervisor::Hypervisor;
use crate::plan::planned_node::PlannedNode;

/// libvirt answers, every pool network is active, every pool bridge exists (here; a remote
/// host's bridges are judged by virt-install), the storage pool and the host's sshd work. All
/// problems at once.
pub async fn host(
    host: &Hypervisor,
    nodes: &[PlannedNode],
    wait_on: WaitOn,
) -> Result<(), Vec<String>> {
    let virsh = host.virsh();
    if let Err(e) = virsh.ping().await {
        return Err(vec![e.to_string()]);
    }
    let mut problems = Vec::new();
    let networks: BTreeSet<&str> = nodes.iter().map(|n| n.id.network.as_str()).collect();
    for net in networks {
        match virsh.network_active(net).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => problems.push(format!(
                "libvirt network '{net}' is not active; start it with `virsh -c {} net-start {net}`",
                host.uri()
            )),
            Ok(None) => problems.push(format!(
                "libvirt network '{net}' does not exist; define it, or set the pool's `network`"
            )),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if host.host_config().is_none() {
        let bridges: BTreeSet<&str> = nodes.iter().map(|n| n.id.bridge.as_str()).collect();
        for br in bridges {
            if !Path::new("/sys/class/net").join(br).join("bridge").exists() {
                problems.push(format!(
                    "bridge '{br}' does not exist; create it with `vnode host bridge create --uplink IFACE --name {br}`, \
                     or set the pool's `bridge`"
                ));
            }
        }
    }
    if let Some(storage) = host.storage()
        && let Err(e) = storage.ensure_pool().await
    {
        problems.push(e.to_string());
    }
    if wait_on == WaitOn::Private
        && let Some(jump) = host.jump()
        && let Err(e) = jump.check().await
    {
        problems.push(format!(
            "its sshd, which vnode reaches the guests through, refuses: {e}; or wait on the public \
             addresses with --wait-on public"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
