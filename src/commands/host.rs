//! `vnode host ...`.

use crate::cli::HostCommand;
use crate::context::Context;
use crate::error::Result;

pub fn run(_ctx: &Context, cmd: HostCommand) -> Result<()> {
    match cmd {
        HostCommand::Check => Err(crate::not_yet("host check")),
        HostCommand::Bridge(_) => Err(crate::not_yet("host bridge")),
    }
}
