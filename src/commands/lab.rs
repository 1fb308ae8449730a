//! `vnode lab ...`.

use crate::cli::LabCommand;
use crate::context::Context;
use crate::error::Result;

pub fn run(_ctx: &Context, cmd: LabCommand) -> Result<()> {
    match cmd {
        LabCommand::Up => Err(crate::not_yet("lab up")),
        LabCommand::Down => Err(crate::not_yet("lab down")),
        LabCommand::Status => Err(crate::not_yet("lab status")),
        LabCommand::Exec { .. } => Err(crate::not_yet("lab exec")),
    }
}
