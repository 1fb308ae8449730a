//! Verbs on existing nodes: list, destroy, ssh, console, log, ssh-config, inventory.
//!
//! A node is what vnode made: a directory under the state directory, and usually a libvirt domain
//! of the same name.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

use crate::cli::{DestroyArgs, InventoryFormat, SshArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::libvirt::virsh::Virsh;
use crate::mac::Nic;
use crate::node;
use crate::pool::Pools;
use crate::spawn::record::ReadyRecord;
use crate::table::Table;

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(e.to_string()))?;
    Ok(rt.block_on(f))
}

/// Names of the nodes vnode has state for.
pub(crate) fn node_names(ctx: &Context) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(&ctx.config.state_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| !n.starts_with('.') && in_a_pool(&ctx.config.pools, n))
        .collect();
    names.sort();
    names
}

fn in_a_pool(pools: &Pools, name: &str) -> bool {
    crate::spec::resolve_names(&[name.to_string()], pools).is_ok()
}

#[derive(Debug, Serialize)]
struct ListedNode {
    name: String,
    state: String,
    image: Option<String>,
    public_mac: String,
    private_mac: String,
    private_ip: Option<std::net::Ipv4Addr>,
    public_ip: Option<std::net::Ipv4Addr>,
    os: Option<String>,
    age_seconds: Option<u64>,
}

pub fn list(ctx: &Context) -> Result<()> {
    let virsh = Virsh::new(&ctx.config.libvirt_uri);
    let names = node_names(ctx);
    let now = std::time::SystemTime::now();
    let mut nodes = Vec::new();
    for name in names {
        let (pool, node) =
            crate::spec::resolve_names(std::slice::from_ref(&name), &ctx.config.pools)?.remove(0);
        let state = block_on(virsh.domain_state(&name))?
            .map_err(Error::from)?
            .unwrap_or_else(|| "no domain".into());
        let record = ReadyRecord::load(&ctx.config.state_dir, &name);
        let age = std::fs::metadata(ctx.config.state_dir.join(&name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs());
        nodes.push(ListedNode {
            name,
            state,
            image: record.as_ref().map(|r| r.image.clone()),
            public_mac: pool.mac(Nic::Public, node.number).to_string(),
            private_mac: pool.mac(Nic::Private, node.number).to_string(),
            private_ip: record.as_ref().and_then(|r| r.private_ip),
            public_ip: record.as_ref().and_then(|r| r.public_ip),
            os: record.and_then(|r| r.os),
            age_seconds: age,
        });
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "nodes": nodes }));
        return Ok(());
    }
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut t = Table::new([
        "NODE",
        "STATE",
        "IMAGE",
        "PRIVATE IP",
        "PUBLIC IP",
        "PUBLIC MAC",
        "OS",
        "AGE",
    ]);
    for n in &nodes {
        t.row([
            n.name.clone(),
            n.state.clone(),
            dash(n.image.clone()),
            dash(n.private_ip.map(|i| i.to_string())),
            dash(n.public_ip.map(|i| i.to_string())),
            n.public_mac.clone(),
            dash(n.os.clone()),
            dash(n.age_seconds.map(human_age)),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub fn destroy(ctx: &Context, args: &DestroyArgs) -> Result<()> {
    let virsh = Virsh::new(&ctx.config.libvirt_uri);
    let nodes = crate::spec::resolve_names(&args.specs, &ctx.config.pools)?;
    let mut failed = Vec::new();
    for (_, node) in nodes {
        let name = node.to_string();
        let dir = ctx.config.state_dir.join(&name);
        let domain = block_on(virsh.domain_state(&name))?.map_err(Error::from)?;
        if domain.is_none() && !dir.exists() {
            eprintln!("{name}: no such node (no domain, no files); nothing to do");
            continue;
        }
        let result = block_on(async {
            virsh.destroy(&name).await?;
            virsh.undefine(&name).await
        })?;
        if let Err(e) = result {
            failed.push(format!("{name}: {e}"));
            continue;
        }
        let removed = if args.keep_disk {
            node::remove_keeping_disk(&ctx.config, &name)
        } else {
            node::remove_if_present(&ctx.config, &name)
        };
        match removed {
            Ok(()) => eprintln!(
                "{name}: destroyed{}",
                if args.keep_disk { " (disk kept)" } else { "" }
            ),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(failed.join("\n")))
    }
}

/// The one node a verb acts on, with what spawn recorded about it.
fn one_node(ctx: &Context, spec: &str) -> Result<(String, ReadyRecord)> {
    let (_, node) = crate::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?.remove(0);
    let name = node.to_string();
    let record = ReadyRecord::load(&ctx.config.state_dir, &name).ok_or_else(|| {
        Error::Failed(format!(
            "{name} is not a ready vnode node (no record in {}); `vnode list` shows the nodes",
            ctx.config.state_dir.display()
        ))
    })?;
    Ok((name, record))
}

fn client_key(ctx: &Context) -> PathBuf {
    ctx.config.state_dir.join("client_ed25519")
}

fn known_hosts(ctx: &Context) -> PathBuf {
    ctx.config.state_dir.join("known_hosts")
}

/// ssh options that make the system ssh verify the node's pinned host key.
fn ssh_options(ctx: &Context, name: &str) -> Vec<String> {
    vec![
        "-i".into(),
        client_key(ctx).display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts(ctx).display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("HostKeyAlias={name}"),
    ]
}

pub fn ssh(ctx: &Context, args: &SshArgs) -> Result<()> {
    let (name, record) = one_node(ctx, &args.node)?;
    let addr = record
        .address()
        .ok_or_else(|| Error::Failed(format!("{name} has no known address")))?;
    let err = Command::new("ssh")
        .args(ssh_options(ctx, &name))
        .arg(format!("root@{addr}"))
        .args(&args.command)
        .exec();
    Err(Error::Failed(format!(
        "cannot run ssh: {err}; install openssh-client"
    )))
}

pub fn console(ctx: &Context, spec: &str) -> Result<()> {
    let (_, node) = crate::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?.remove(0);
    let err = Command::new("virsh")
        .args(["-c", &ctx.config.libvirt_uri, "console", &node.to_string()])
        .exec();
    Err(Error::Failed(format!("cannot run virsh: {err}")))
}

pub fn log(ctx: &Context, spec: &str) -> Result<()> {
    let (_, node) = crate::spec::resolve_names(&[spec.to_string()], &ctx.config.pools)?.remove(0);
    let path = ctx
        .config
        .state_dir
        .join(node.to_string())
        .join("console.log");
    let text = std::fs::read(&path)
        .map_err(|e| Error::Failed(format!("{node}: cannot read {}: {e}", path.display())))?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&text);
    Ok(())
}

fn ready_nodes(ctx: &Context) -> Vec<ReadyRecord> {
    node_names(ctx)
        .iter()
        .filter_map(|n| ReadyRecord::load(&ctx.config.state_dir, n))
        .filter(|r| r.address().is_some())
        .collect()
}

pub fn ssh_config(ctx: &Context) -> Result<()> {
    for r in ready_nodes(ctx) {
        println!("Host {}", r.name);
        println!("  HostName {}", r.address().expect("filtered"));
        println!("  User root");
        println!("  IdentityFile {}", client_key(ctx).display());
        println!("  UserKnownHostsFile {}", known_hosts(ctx).display());
        println!("  StrictHostKeyChecking yes");
        println!("  HostKeyAlias {}\n", r.name);
    }
    Ok(())
}

pub fn inventory(ctx: &Context, format: InventoryFormat) -> Result<()> {
    let nodes = ready_nodes(ctx);
    let key = client_key(ctx).display().to_string();
    let common = format!(
        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        known_hosts(ctx).display()
    );
    match format {
        InventoryFormat::Ini => {
            println!("[vnode]");
            for r in &nodes {
                println!(
                    "{} ansible_host={} ansible_user=root ansible_ssh_private_key_file={key} ansible_ssh_common_args='{common} -o HostKeyAlias={}'",
                    r.name,
                    r.address().expect("filtered"),
                    r.name
                );
            }
        }
        InventoryFormat::Yaml => {
            #[derive(Serialize)]
            struct Host {
                ansible_host: String,
                ansible_user: &'static str,
                ansible_ssh_private_key_file: String,
                ansible_ssh_common_args: String,
            }
            let hosts: std::collections::BTreeMap<String, Host> = nodes
                .iter()
                .map(|r| {
                    let host = Host {
                        ansible_host: r.address().expect("filtered").to_string(),
                        ansible_user: "root",
                        ansible_ssh_private_key_file: key.clone(),
                        ansible_ssh_common_args: format!("{common} -o HostKeyAlias={}", r.name),
                    };
                    (r.name.clone(), host)
                })
                .collect();
            let doc = serde_json::json!({ "all": { "children": { "vnode": { "hosts": hosts } } } });
            print!(
                "{}",
                serde_norway::to_string(&doc).map_err(|e| Error::Failed(e.to_string()))?
            );
        }
    }
    Ok(())
}
