//! `vnode console NODE` (the serial console, through `virsh console`) and `vnode log NODE` (what
//! the console printed, from its log file).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::commands::CommandError;
use crate::context::Context;
use crate::error::Result;
use crate::process::runtime::{self, Flavor};

pub fn console(ctx: &Context, spec: &str) -> Result<()> {
    let name = super::known_nodes::one(ctx, spec)?.name.to_string();
    let host = super::known_nodes::host_of(ctx, &name)?;
    let err = Command::new("virsh")
        .args(["-c", host.uri(), "console", &name])
        .exec();
    Err(CommandError::Exec {
        program: "virsh",
        source: err,
        hint: "",
    }
    .into())
}

pub fn log(ctx: &Context, spec: &str) -> Result<()> {
    let name = super::known_nodes::one(ctx, spec)?.name.to_string();
    let host = super::known_nodes::host_of(ctx, &name)?;
    let path = runtime::block_on(Flavor::CurrentThread, host.console_log(&name))?;
    let text = std::fs::read(&path).map_err(|source| CommandError::ReadConsoleLog {
        node: name.clone(),
        path: path.clone(),
        source,
    })?;
    let _ = std::io::stdout().write_all(&text);
    Ok(())
}
