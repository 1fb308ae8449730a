//! `vnode config show`.

use crate::context::Context;
use crate::error::Result;

pub fn show(ctx: &Context) -> Result<()> {
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "source": ctx.source, "config": ctx.config }));
        return Ok(());
    }
    let c = &ctx.config;
    println!("# config: {}", ctx.source);
    println!("libvirt_uri = {:?}", c.libvirt_uri);
    println!("virt_type = {:?}", c.virt_type.to_string());
    println!("cache_dir = {:?}", c.cache_dir.display().to_string());
    println!("state_dir = {:?}", c.state_dir.display().to_string());
    println!("ssh_keys = {:?}", c.ssh_keys);
    if let Some(d) = &c.default_distro {
        println!("default_distro = {d:?}");
    }
    println!("default image = {:?}", ctx.catalog.default_image().name);
    println!("default_pool = {:?}", c.pools.default_pool().stem);
    for u in &c.users {
        println!(
            "\n[[users]]\nname = {:?}\nsudo = {}\nssh_keys = {:?}",
            u.name, u.sudo, u.ssh_keys
        );
    }
    for p in c.pools.all() {
        println!("\n[[pool]]");
        println!(
            "stem = {:?}\nwidth = {}\nfirst = {}\nlast = {}\nmac_id = {}",
            p.stem, p.width, p.first, p.last, p.mac_id
        );
        println!("bridge = {:?}\nnetwork = {:?}", p.bridge, p.network);
        if let Some(d) = &p.domain {
            println!("domain = {d:?}");
        }
        if let Some(n) = &p.public_subnet {
            println!(
                "public_subnet = \"{n}\"\npublic_offset = {}",
                p.public_offset
            );
        }
        let r = p.resources;
        println!(
            "memory_mib = {}\nvcpus = {}\ndisk_gib = {}",
            r.memory_mib, r.vcpus, r.disk_gib
        );
    }
    Ok(())
}
