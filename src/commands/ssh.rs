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
    let login = known_nodes::login(ctx, &host, &record).ok_or_else(|| CommandError::NoAddress {
        node: record.name.clone(),
    })?;
    let err = Command::new("ssh")
        .args(login.ssh_arguments().map_err(CommandError::from)?)
        .arg(format!("root@{}", login.address))
        .args(&args.command)
        .exec();
    Err(CommandError::Exec {
        program: "ssh",
        source: err,
        hint: "; install openssh-client",
    }
    .into())
}

/// An ssh_config block per ready node, every value quoted by ssh_config's rules.
pub fn config(ctx: &Context) -> Result<()> {
    let host = Hypervisor::local(&ctx.config);
    let logins: Vec<_> = known_nodes::ready(ctx, &host)
        .iter()
        .filter_map(|r| known_nodes::login(ctx, &host, r))
        .collect();
    print!(
        "{}",
        crate::ssh::config_file::ssh_config(&logins).map_err(CommandError::from)?
    );
    Ok(())
}
