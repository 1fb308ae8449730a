//! Checks for the whole command before anything is created: images cached, libvirt reachable,
//! networks active, bridges present. Each failure is one line that says what to do.

use std::collections::BTreeSet;
use std::path::Path;

use crate::images::{Cache, CachedImage};
use crate::libvirt::virsh::Virsh;
use crate::spec::NodeRequest;

/// The cached image of every request, in request order.
pub fn images(
    cache_dir: &Path,
    requests: &[NodeRequest],
) -> Result<Vec<CachedImage>, crate::error::Error> {
    let cache = Cache::open(cache_dir)?;
    let mut out = Vec::new();
    for r in requests {
        out.push(cache.require(&r.image)?);
    }
    Ok(out)
}

/// libvirt answers, every pool network is active, every pool bridge exists. All problems at once.
pub async fn host(virsh: &Virsh, requests: &[NodeRequest]) -> Result<(), Vec<String>> {
    if let Err(e) = virsh.ping().await {
        return Err(vec![e.to_string()]);
    }
    let mut problems = Vec::new();
    let networks: BTreeSet<&str> = requests.iter().map(|r| r.pool.network.as_str()).collect();
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
    let bridges: BTreeSet<&str> = requests.iter().map(|r| r.pool.bridge.as_str()).collect();
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
