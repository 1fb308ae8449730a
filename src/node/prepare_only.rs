//! `vnode spawn --prepare-only SPECS...`: create the nodes' artifacts and show them with the
//! virt-install command that would boot each, without calling virt-install.

use std::ffi::OsString;
use std::process::ExitCode;

use serde::Serialize;

use crate::catalog::{ImageKind, ImageRef};
use crate::config::VirtType;
use crate::context::Context;
use crate::error::Result;
use crate::images::ImageError;
use crate::spec::NodeRequest;

use super::{BaseImage, NodeArtifacts};

#[derive(Serialize)]
struct Prepared<'a> {
    #[serde(flatten)]
    artifacts: &'a NodeArtifacts,
    /// `virt-install` and its arguments.
    virt_install: Vec<String>,
}

pub fn run(ctx: &Context, requests: &[NodeRequest], virt_type: VirtType) -> Result<ExitCode> {
    let (virt_type, how) = resolve_virt_type(virt_type);
    if let Some(how) = how {
        eprintln!("vnode: {how}");
    }
    let mut prepared = Vec::with_capacity(requests.len());
    let mut notes: Vec<String> = Vec::new();
    for r in requests {
        let base = cached_base(ctx, &r.image)?;
        let a = super::prepare(&ctx.config, r, &base, virt_type)?;
        if let Some(n) = &a.osinfo.note
            && !notes.contains(n)
        {
            eprintln!("vnode: {n}");
            notes.push(n.clone());
        }
        prepared.push(a);
    }
    if ctx.json {
        let nodes: Vec<Prepared> = prepared
            .iter()
            .map(|a| Prepared {
                artifacts: a,
                virt_install: command(a)
                    .into_iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect(),
            })
            .collect();
        ctx.print_json(&serde_json::json!({ "virt_type": virt_type, "nodes": nodes }));
        return Ok(ExitCode::SUCCESS);
    }
    for a in &prepared {
        println!("{}  {}", a.name, a.dir.display());
        println!("  disk      {}", a.overlay.display());
        println!("  seed      {}", a.seed.display());
        println!("  console   {}", a.console_log.display());
        println!("  metadata  {}", a.metadata.display());
        println!("  host key  {}", a.host_public_key);
        let shown: Vec<String> = command(a).iter().map(|s| shell_quote(s)).collect();
        println!("  {}", shown.join(" "));
    }
    println!(
        "(prepared {} node(s); no VM was defined; host keys are in {})",
        prepared.len(),
        super::known_hosts_path(&ctx.config.state_dir).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn command(a: &NodeArtifacts) -> Vec<OsString> {
    let mut c = vec![OsString::from("virt-install")];
    c.extend(a.virt_install.argv());
    c
}

/// `auto` becomes kvm when /dev/kvm can be opened, else qemu. This is a guess: only booting
/// a guest proves KVM works (the spawn pipeline's probe), so the output says how it was chosen.
fn resolve_virt_type(v: VirtType) -> (VirtType, Option<String>) {
    if v != VirtType::Auto {
        return (v, None);
    }
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let chosen = if kvm { VirtType::Kvm } else { VirtType::Qemu };
    (
        chosen,
        Some(format!(
            "virt type auto: using {chosen} ({}); pass --virt-type to choose",
            if kvm {
                "/dev/kvm opens, not proven to run guests"
            } else {
                "/dev/kvm cannot be opened"
            }
        )),
    )
}

/// Until the image cache lands, a stand-in for `Cache::require`: the image is
/// `<cache_dir>/<name>.qcow2`, its osinfo id the catalog's (a derived image's base's), its
/// digest unknown.
fn cached_base(ctx: &Context, image: &ImageRef) -> Result<BaseImage> {
    let path = ctx.config.cache_dir.join(format!("{}.qcow2", image.name));
    if !path.is_file() {
        return Err(ImageError::NotCached {
            name: image.name.clone(),
            dir: ctx.config.cache_dir.display().to_string(),
        }
        .into());
    }
    let catalog_name = match &image.kind {
        ImageKind::Derived { base, .. } => base.as_str(),
        _ => image.name.as_str(),
    };
    let osinfo = ctx
        .catalog
        .get(catalog_name)
        .map_or_else(|| "linux2022".to_string(), |e| e.osinfo.clone());
    Ok(BaseImage {
        path,
        osinfo,
        digest: "unknown".into(),
    })
}

/// For display only: the argument as a POSIX shell word.
fn shell_quote(arg: &std::ffi::OsStr) -> String {
    let s = arg.to_string_lossy();
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if safe {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_for_display() {
        assert_eq!(
            shell_quote("path=/a/b,format=qcow2".as_ref()),
            "path=/a/b,format=qcow2"
        );
        assert_eq!(
            shell_quote("description=vnode:v1 pool=x".as_ref()),
            "'description=vnode:v1 pool=x'"
        );
        assert_eq!(shell_quote("it's".as_ref()), r"'it'\''s'");
        assert_eq!(shell_quote("".as_ref()), "''");
    }

    #[test]
    fn explicit_virt_types_are_kept() {
        assert_eq!(resolve_virt_type(VirtType::Qemu), (VirtType::Qemu, None));
        let (v, how) = resolve_virt_type(VirtType::Auto);
        assert_ne!(v, VirtType::Auto);
        assert!(how.unwrap().contains("auto"));
    }
}
