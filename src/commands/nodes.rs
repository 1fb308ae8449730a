//! Verbs on existing nodes: list, destroy, ssh, console, log, ssh-config, inventory.

use crate::cli::{DestroyArgs, InventoryFormat, SshArgs};
use crate::context::Context;
use crate::error::Result;

pub fn list(_ctx: &Context) -> Result<()> {
    Err(crate::not_yet("list"))
}

pub fn destroy(_ctx: &Context, _args: &DestroyArgs) -> Result<()> {
    Err(crate::not_yet("destroy"))
}

pub fn ssh(_ctx: &Context, _args: &SshArgs) -> Result<()> {
    Err(crate::not_yet("ssh"))
}

pub fn console(_ctx: &Context, _node: &str) -> Result<()> {
    Err(crate::not_yet("console"))
}

pub fn log(_ctx: &Context, _node: &str) -> Result<()> {
    Err(crate::not_yet("log"))
}

pub fn ssh_config(_ctx: &Context) -> Result<()> {
    Err(crate::not_yet("ssh-config"))
}

pub fn inventory(_ctx: &Context, _format: InventoryFormat) -> Result<()> {
    Err(crate::not_yet("inventory"))
}
