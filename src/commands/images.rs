//! `vnode images ...`.

use crate::cli::ImagesCommand;
use crate::context::Context;
use crate::error::Result;
use crate::table::Table;

pub fn run(ctx: &Context, cmd: ImagesCommand) -> Result<()> {
    match cmd {
        ImagesCommand::List { available: true } => available(ctx),
        ImagesCommand::List { available: false } => Err(crate::not_yet("images list")),
        ImagesCommand::Pull { .. } => Err(crate::not_yet("images pull")),
        ImagesCommand::Import { .. } => Err(crate::not_yet("images import")),
        ImagesCommand::Rm { .. } => Err(crate::not_yet("images rm")),
        ImagesCommand::Verify { .. } => Err(crate::not_yet("images verify")),
        ImagesCommand::Derive { .. } => Err(crate::not_yet("images derive")),
    }
}

/// `vnode images list --available`: the catalog.
fn available(ctx: &Context) -> Result<()> {
    let entries = ctx.catalog.entries();
    if ctx.json {
        ctx.print_json(&entries);
        return Ok(());
    }
    let mut t = Table::new(["NAME", "ALIASES", "FAMILY", "VERSION", "OSINFO", "DEFAULT"]);
    let default = &ctx.catalog.default_image().name;
    for e in entries {
        let mark = if &e.name == default {
            "default"
        } else if e.family_default {
            "family"
        } else {
            ""
        };
        t.row([
            e.name.clone(),
            e.aliases.join(","),
            e.family.clone(),
            e.version.clone(),
            e.osinfo.clone(),
            mark.into(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
