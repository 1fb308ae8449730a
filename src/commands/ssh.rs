//! `vnode ssh NODE [-- CMD]` and `vnode ssh-config`: the system ssh with vnode's known_hosts and
//! strict host key checking.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::known_nodes;
use crate::cli::SshArgs;
use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::hosts::hypervisor::Hypervisor;

pub fn run(ctx: &Context, args: &SshArgs) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let record = known_nodes::one_ready(ctx, &host, &args.node)?;
    let addr = record.address().ok_or_else(|| CommandError::NoAddress {
        node: record.name.clone(),
    })?;
    let jump = known_nodes::proxy_jump(ctx, &record);
    let err = Command::new("ssh")
        .args(known_nodes::ssh_options(
            &host,
            &record.name,
            jump.as_deref(),
        ))
        .arg(format!("root@{addr}"))
        .args(&args.command)
        .exec();
    Err(CommandError::Exec {
        program: "ssh",
        source: err,
        hint: "; install openssh-client",
    }
    .into())
}

/// An ssh_config block per ready node.
pub fn config(ctx: &Context) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    for r in known_nodes::ready(ctx, &host) {
        println!("Host {}", r.name);
        println!("  HostName {}", r.address().expect("ready nodes have one"));
        println!("  User root");
        println!("  IdentityFile {}", host.client_key().display());
        println!("  UserKnownHostsFile {}", host.known_hosts().display());
        println!("  StrictHostKeyChecking yes");
        println!("  HostKeyAlias {}", r.name);
        if let Some(jump) = known_nodes::proxy_jump(ctx, &r) {
            println!("  ProxyJump {jump}");
        }
        println!();
    }
    Ok(())
}
