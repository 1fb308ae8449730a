//! Checks for the whole command before anything is created: images cached, libvirt reachable,
//! networks active, bridges present. Each failure is one line that says what to do.

use std::collections::BTreeSet;
use std::path::Path;

use crate::catalog::ImageKind;
use crate::context::Context;
use crate::images::Cache;
use crate::libvirt::virsh::Virsh;
use crate::node::BaseImage;
use crate::spec::NodeRequest;

/// The cached base image of every request, in request order. Offline-first: an image that is not
/// cached is an error that says how to get it. The osinfo id is the image's own (imported images),
/// else its catalog entry's, else its base's (derived images).
pub fn base_images(
    ctx: &Context,
    requests: &[NodeRequest],
) -> Result<Vec<BaseImage>, crate::error::Error> {
    let cache = Cache::open(&ctx.config.cache_dir)?;
    let mut out = Vec::new();
    for r in requests {
        let cached = cache.require(&r.image)?;
        // qemu runs as its own user: the base image must be readable by it, or the boot fails late.
        cache.check_qemu_access(Some(&cached))?;
        let catalog_name = match &r.image.kind {
            ImageKind::Derived { base, .. } => base.as_str(),
            _ => r.image.name.as_str(),
        };
        let osinfo = cached
            .meta
            .osinfo
            .clone()
            .or_else(|| ctx.catalog.get(catalog_name).map(|e| e.osinfo.clone()))
            .or_else(|| {
                cached
                    .meta
                    .parent
                    .as_deref()
                    .and_then(|p| ctx.catalog.get(p))
                    .map(|e| e.osinfo.clone())
            })
            .unwrap_or_default();
        out.push(BaseImage {
            path: cached.path,
            osinfo,
            digest: cached.meta.digest,
        });
    }
    Ok(out)
}

/// `spawn --pull`: downloads the catalog images of `requests` that are not cached yet.
pub fn pull_missing(ctx: &Context, requests: &[NodeRequest]) -> Result<(), crate::error::Error> {
    let cache = Cache::open(&ctx.config.cache_dir)?;
    let mut missing: Vec<crate::catalog::CatalogEntry> = Vec::new();
    for r in requests {
        if r.image.kind == ImageKind::Catalog
            && cache.find(&r.image.name).is_none()
            && !missing.iter().any(|e| e.name == r.image.name)
        {
            missing.extend(ctx.catalog.get(&r.image.name).cloned());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::error::Error::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(crate::images::pull(
        &cache,
        &missing,
        false,
        &crate::images::Progress::auto(),
    ))?;
    Ok(())
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
